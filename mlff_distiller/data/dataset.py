"""Reading, merging and converting labelled datasets.

>>> frames = read_dataset("data.h5")                    # doctest: +SKIP
>>> frames[0].get_forces().shape                        # doctest: +SKIP
(9, 3)
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from pathlib import Path
from typing import Any

import numpy as np
from ase import Atoms
from ase.calculators.singlepoint import SinglePointCalculator
from ase.stress import full_3x3_to_voigt_6_stress

from .. import __version__
from ..errors import InputError
from ..files import atomic_path
from ..teachers import teacher_key
from ._hdf5 import DatasetError, FrameBlock, read_hdf5, to_json, write_hdf5
from .labeling import teacher_atom_energies


def read_dataset(path: str | os.PathLike) -> list[Atoms]:
    """Every frame of a dataset as ``ase.Atoms`` with the teacher's labels.

    Labels sit on a ``SinglePointCalculator`` (``get_potential_energy()``, ``get_forces()``,
    for periodic frames ``get_stress()``, and ``get_potential_energies()`` where the teacher
    gave per-atom energies). ``atoms.info`` holds the frame's provenance
    (``source``, ``group``, ``sampling``...) plus ``teacher`` and ``source_index``.
    """
    block, attrs = read_hdf5(path)
    teacher = (attrs.get("teacher") or {}).get("name", "unknown")
    frames = []
    for k in range(len(block)):
        atoms = Atoms(
            numbers=block.numbers[k],
            positions=block.positions[k],
            cell=block.cell[k],
            pbc=block.pbc[k],
        )
        atoms.info.update(json.loads(block.info[k]))
        atoms.info["teacher"] = teacher
        atoms.info["source_index"] = block.source_index[k]
        results: dict[str, Any] = {
            "energy": block.energy[k],
            "free_energy": block.energy[k],
            "forces": block.forces[k],
        }
        if not np.isnan(block.stress[k]).any():
            results["stress"] = block.stress[k]
        if np.isfinite(block.atom_energies[k]).all():
            results["energies"] = block.atom_energies[k]
        atoms.calc = SinglePointCalculator(atoms, **results)
        frames.append(atoms)
    return frames


def dataset_metadata(path: str | os.PathLike) -> dict[str, Any]:
    """The dataset's attributes: format, units, teacher, provenance, shard, counts."""
    return read_hdf5(path)[1]


def merge_datasets(
    paths: list[str | os.PathLike],
    out: str | os.PathLike,
    *,
    overwrite: bool = False,
    allow_partial: bool = False,
) -> Path:
    """Join the shards of one labeling job (``label(..., shard="i/N")``) into one dataset.

    All shards must come from the same inputs and the same teacher; each shard may appear
    once. Missing shards are an error unless ``allow_partial``.
    """
    out = Path(out)
    if out.exists() and not overwrite:
        raise FileExistsError(f"{out} already exists; pass overwrite=True (--overwrite)")
    if not paths:
        raise InputError("merge needs at least one shard")
    merged = FrameBlock()
    first: dict[str, Any] | None = None
    seen: dict[int, str] = {}
    for path in paths:
        block, attrs = read_hdf5(path)
        shard = attrs.get("shard")
        if not shard:
            raise DatasetError(f"{path} is not a shard (it was labelled without --shard)")
        if first is None:
            first = attrs
        for key in ("inputs_fingerprint", "teacher", "max_force"):
            if json.dumps(attrs.get(key), sort_keys=True) != json.dumps(
                first.get(key), sort_keys=True
            ):
                raise DatasetError(
                    f"{path} was labelled with a different {key.replace('_', ' ')} than "
                    f"{paths[0]}; merge only shards of one labeling job"
                )
        if shard[1] != first["shard"][1]:
            raise DatasetError(
                f"{path} is shard {shard[0]}/{shard[1]}, others are of {first['shard'][1]}"
            )
        if shard[0] in seen:
            raise DatasetError(
                f"shard {shard[0]}/{shard[1]} given twice: {seen[shard[0]]} and {path}"
            )
        seen[shard[0]] = str(path)
        merged.extend(block)
    assert first is not None
    missing = sorted(set(range(first["shard"][1])) - set(seen))
    if missing and not allow_partial:
        raise DatasetError(
            f"shards {', '.join(map(str, missing))} of {first['shard'][1]} are missing; label "
            "them, or pass allow_partial=True (--allow-partial) to merge what is there"
        )
    attrs = {
        "teacher": first["teacher"],
        "inputs_fingerprint": first["inputs_fingerprint"],
        "n_structures": first.get("n_structures"),
        "max_force": first.get("max_force"),
        "shard": None,
        "merged_from": [str(p) for p in paths],
        "missing_shards": missing,
        "provenance": {
            **(first.get("provenance") or {}),
            "merged": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "package_version": __version__,
        },
    }
    return write_hdf5(merged, out, attrs)


def concat_datasets(
    paths: list[str | os.PathLike], out: str | os.PathLike, *, overwrite: bool = False
) -> Path:
    """Join datasets labelled by the same teacher from different inputs into one.

    Active learning grows a dataset this way: the frames labelled in a round are appended to
    the round before. Frame order is kept; ``source_index`` is offset per part so it stays
    unique, and each frame's provenance (``info``) is unchanged. Shards of one labeling job
    are joined with :func:`merge_datasets` instead.
    """
    out = Path(out)
    if out.exists() and not overwrite:
        raise FileExistsError(f"{out} already exists; pass overwrite=True to replace it")
    if not paths:
        raise InputError("concat needs at least one dataset")
    joined = FrameBlock()
    teacher: dict[str, Any] | None = None
    fingerprints, offset = [], 0
    for path in paths:
        block, attrs = read_hdf5(path)
        if teacher is None:
            teacher = attrs.get("teacher")
        elif teacher_key(attrs.get("teacher")) != teacher_key(teacher):
            raise DatasetError(
                f"{path} was labelled by another teacher than {paths[0]}; "
                "a dataset holds the labels of one teacher"
            )
        part = block.sorted()
        part.source_index = [offset + i for i in part.source_index]
        part.rejected_index = [offset + i for i in part.rejected_index]
        joined.extend(part)
        offset += int(attrs.get("n_structures") or 0) or len(block) + len(block.rejected_index)
        fingerprints.append(attrs.get("inputs_fingerprint"))
    attrs = {
        "teacher": teacher,
        "inputs_fingerprint": hashlib.sha256(to_json(fingerprints).encode()).hexdigest()[:16],
        "n_structures": offset,
        "shard": None,
        "concatenated_from": [str(p) for p in paths],
        "provenance": {
            "package": "mlff_distiller",
            "package_version": __version__,
            "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        },
    }
    return write_hdf5(joined, out, attrs)


def write_extxyz(dataset: str | os.PathLike, out: str | os.PathLike) -> Path:
    """Export a dataset to extended XYZ (energy, forces, stress as ASE writes them)."""
    from ase.io import write

    out = Path(out)
    frames = read_dataset(dataset)
    for atoms in frames:
        for key, value in list(atoms.info.items()):
            if isinstance(value, (dict, list)):
                atoms.info[key] = "json:" + json.dumps(value)
    with atomic_path(out) as tmp:
        write(tmp, frames, format="extxyz")
    return out


def import_extxyz(
    source: str | os.PathLike,
    out: str | os.PathLike,
    *,
    teacher: str = "external",
    overwrite: bool = False,
) -> Path:
    """Turn labelled extended-XYZ frames (energy and forces, stress if periodic) into a dataset.

    ``teacher`` names where the labels came from when the file does not say
    (``atoms.info["teacher"]``).
    """
    from ase.io import read

    out = Path(out)
    if out.exists() and not overwrite:
        raise FileExistsError(f"{out} already exists; pass overwrite=True (--overwrite)")
    try:
        frames = read(source, index=":", format="extxyz")
    except Exception as exc:  # ase.io raises many types for unreadable files
        raise DatasetError(f"cannot read {source} as extended XYZ: {exc}") from exc
    block = FrameBlock()
    names = set()
    for i, atoms in enumerate(frames):
        if (
            atoms.calc is None
            or "energy" not in atoms.calc.results
            or "forces" not in atoms.calc.results
        ):
            raise DatasetError(
                f"frame {i} of {source} has no energy and forces; "
                "only labelled frames can be imported"
            )
        results = atoms.calc.results
        stress = results.get("stress")
        if atoms.pbc.any() and stress is None:
            raise DatasetError(f"periodic frame {i} of {source} has no stress label")
        info = {
            k: json.loads(v[5:]) if isinstance(v, str) and v.startswith("json:") else v
            for k, v in atoms.info.items()
        }
        names.add(str(info.pop("teacher", teacher)))
        info.setdefault("source", f"file:{Path(source).name}#{i}")
        info.setdefault("group", f"{Path(source).stem}:{atoms.get_chemical_formula()}")
        info.pop("source_index", None)
        if stress is not None:
            stress = np.asarray(stress, dtype=float)
            if stress.size != 6:
                stress = full_3x3_to_voigt_6_stress(stress.reshape(3, 3))
        block.add(
            i,
            atoms.numbers,
            atoms.positions,
            atoms.cell.array,
            atoms.pbc,
            results["energy"],
            results["forces"],
            stress,
            info,
            teacher_atom_energies(atoms, float(results["energy"])),
        )
    if len(names) > 1:
        raise DatasetError(f"{source} mixes labels from several teachers: {sorted(names)}")
    attrs = {
        "teacher": {
            "name": names.pop() if names else teacher,
            "package": "unknown",
            "version": "unknown",
            "cutoff": None,
            "elements": None,
            "conservative": None,
            "kwargs": {},
        },
        "imported_from": str(source),
        "shard": None,
        "provenance": {
            "package_version": __version__,
            "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        },
    }
    return write_hdf5(block, out, attrs)
