"""Labeling structures with a teacher into a dataset: resumable, atomic, shardable.

While a run is in progress its results live in a journal directory next to the target
(``data.h5.partial/``): a manifest plus one small file per chunk of frames, each written
atomically. Rerunning the same command continues from the journal; the dataset file itself
appears, complete, only at the end (written under a temporary name, then renamed).
"""

from __future__ import annotations

import hashlib
import json
import os
import shlex
import shutil
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
from ase import Atoms
from ase.calculators.calculator import Calculator, PropertyNotImplementedError

from .. import __version__
from .._locking import BusyError, exclusive
from .._progress import progress_bar, say
from ..errors import InputError
from ..files import write_json
from ..teachers import get_teacher, teacher_info, teacher_key
from ._hdf5 import DatasetError, FrameBlock, read_hdf5, to_json, write_hdf5

#: Frames with any force component above this (eV/Å) are rejected as unphysical.
DEFAULT_MAX_FORCE = 50.0


def parse_shard(spec: str | tuple[int, int] | None) -> tuple[int, int] | None:
    """``"i/N"`` (0-based ``i``) → ``(i, N)``; ``None`` stays ``None``."""
    if spec is None or isinstance(spec, tuple):
        shard = spec
    else:
        try:
            i, n = (int(part) for part in str(spec).split("/"))
        except ValueError:
            raise InputError(f"shard {spec!r} must look like 'i/N', e.g. '0/4'") from None
        shard = (i, n)
    if shard is not None and not (shard[1] >= 1 and 0 <= shard[0] < shard[1]):
        raise InputError(f"shard {shard[0]}/{shard[1]} needs 0 <= i < N")
    return shard


def fingerprint(structures: list[Atoms]) -> str:
    """A hash of the input structures (species, positions, cell, pbc), order included."""
    digest = hashlib.sha256()
    for atoms in structures:
        digest.update(np.ascontiguousarray(atoms.numbers, dtype=np.int64).tobytes())
        digest.update(np.ascontiguousarray(atoms.positions, dtype=np.float64).round(8).tobytes())
        digest.update(np.ascontiguousarray(atoms.cell.array, dtype=np.float64).round(8).tobytes())
        digest.update(np.ascontiguousarray(atoms.pbc, dtype=bool).tobytes())
    return digest.hexdigest()


def label(
    structures: list[Atoms],
    teacher: str | Calculator,
    path: str | os.PathLike,
    *,
    overwrite: bool = False,
    shard: str | tuple[int, int] | None = None,
    max_force: float = DEFAULT_MAX_FORCE,
    chunk_size: int = 8,
    progress: bool = True,
    teacher_kwargs: dict[str, Any] | None = None,
) -> Path:
    """Label ``structures`` with ``teacher`` into an HDF5 dataset at ``path``.

    Parameters
    ----------
    structures
        The configurations to label; ``atoms.info`` (source, group, sampling) is kept as
        per-frame provenance. Periodic frames are labelled with stress too.
    teacher
        A registered name or import path (built with :func:`~mlff_distiller.teachers.get_teacher`
        and ``teacher_kwargs``), or a calculator.
    path
        The dataset file to create.
    overwrite
        Replace an existing dataset (or discard an unfinished run with other inputs).
    shard
        ``"i/N"``: label only structures whose index is ``i`` modulo ``N``; merge the shards
        with :func:`merge_datasets`.
    max_force
        Frames with a force component above this (eV/Å), or with NaN/inf, are rejected.
    chunk_size
        Frames per journal chunk: at most this much work is lost on interruption.

    Returns
    -------
    Path
        The complete dataset. Rerunning after an interruption resumes; rerunning a finished
        run with the same inputs returns at once.

    Examples
    --------
    >>> from mlff_distiller.data import label, structures_from_smiles
    >>> label(structures_from_smiles(["O"]), "sevennet-0", "water.h5")  # doctest: +SKIP
    PosixPath('water.h5')
    """
    path = Path(path)
    structures = _check_structures(structures)
    if chunk_size < 1:
        raise InputError(f"chunk_size must be at least 1, got {chunk_size}")
    shard = parse_shard(shard)
    if isinstance(teacher, str):
        calc = get_teacher(teacher, **(teacher_kwargs or {}))
    else:
        calc = teacher
    info = teacher_info(calc)
    for index, atoms in enumerate(structures):
        info.check_elements(
            set(atoms.get_chemical_symbols()),
            where=f"structure {index} ({atoms.info.get('source', atoms.get_chemical_formula())})",
        )

    indices = list(range(len(structures)))
    if shard is not None:
        indices = indices[shard[0] :: shard[1]]
    inputs = fingerprint(structures)
    manifest = {
        "inputs_fingerprint": inputs,
        "n_structures": len(structures),
        "shard": list(shard) if shard else None,
        "teacher": info.to_dict(),
        "max_force": max_force,
    }

    busy = (
        f"{path} is being labelled by another process ({{holder}}); wait for it to end, "
        "or give this job another --out"
    )
    with exclusive(path.with_name(f".{path.name}.lock"), busy, LabelBusyError):
        return _label_locked(
            structures,
            indices,
            calc,
            info,
            path,
            manifest,
            overwrite,
            max_force,
            chunk_size,
            progress,
        )


class LabelBusyError(BusyError):
    """Another process is labeling into the same dataset."""


def _label_locked(
    structures: list[Atoms],
    indices: list[int],
    calc: Calculator,
    info: Any,
    path: Path,
    manifest: dict[str, Any],
    overwrite: bool,
    max_force: float,
    chunk_size: int,
    progress: bool,
) -> Path:
    """The part of :func:`label` that writes: run under the dataset's lock."""
    if path.exists() and not overwrite:
        if _same_finished_run(path, manifest):
            say(progress, f"{path} is already complete; nothing to do")
            return path
        raise FileExistsError(
            f"{path} already exists; pass overwrite=True (--overwrite) to replace it"
        )
    journal = path.with_name(path.name + ".partial")
    done = _open_journal(journal, manifest, overwrite)
    todo = [i for i in indices if i not in done.done()]
    if done.done():
        say(progress, f"resuming {path}: {len(done.done())} of {len(indices)} frames done")

    chunk = FrameBlock()
    bar = progress_bar(len(indices), len(indices) - len(todo), progress, "frame", "labeling")
    n_chunks = len(list(journal.glob("chunk_*.npz")))
    try:
        for index in todo:
            _label_one(structures[index], index, calc, max_force, chunk)
            bar.update(1)
            bar.set_postfix(rejected=len(done.rejected_index) + len(chunk.rejected_index))
            if len(chunk) + len(chunk.rejected_index) >= chunk_size:
                chunk.save_npz(journal / f"chunk_{n_chunks:06d}.npz")
                done.extend(chunk)
                chunk, n_chunks = FrameBlock(), n_chunks + 1
    finally:
        # Also on Ctrl-C: keep what this chunk has, so the rerun does not redo it.
        if len(chunk) or chunk.rejected_index:
            chunk.save_npz(journal / f"chunk_{n_chunks:06d}.npz")
            done.extend(chunk)
        bar.close()

    attrs = {
        "teacher": info.to_dict(),
        "provenance": {
            "package": "mlff_distiller",
            "package_version": __version__,
            "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "command": shlex.join(sys.argv),
        },
        **{k: v for k, v in manifest.items() if k != "teacher"},
    }
    write_hdf5(done, path, attrs)
    shutil.rmtree(journal)
    say(progress, summary_text(path))
    return path


def _check_structures(structures: list[Atoms]) -> list[Atoms]:
    if isinstance(structures, Atoms):
        structures = [structures]
    structures = list(structures)
    if not structures:
        raise InputError("nothing to label: the structure list is empty")
    for i, atoms in enumerate(structures):
        if not isinstance(atoms, Atoms):
            raise TypeError(f"structure {i} is a {type(atoms).__name__}, not ase.Atoms")
        if len(atoms) == 0:
            raise InputError(f"structure {i} has no atoms")
        if atoms.pbc.any() and atoms.cell.rank < 3:
            raise InputError(f"structure {i} is periodic but its cell is not 3-dimensional")
    return structures


def _same_finished_run(path: Path, manifest: dict[str, Any]) -> bool:
    try:
        _, attrs = read_hdf5(path)
    except DatasetError:
        return False
    keys = ("inputs_fingerprint", "shard", "max_force")
    same_teacher = teacher_key(attrs.get("teacher")) == teacher_key(manifest["teacher"])
    return same_teacher and all(attrs.get(k) == manifest[k] for k in keys)


def _manifest_key(manifest: dict[str, Any]) -> str:
    return to_json({**manifest, "teacher": teacher_key(manifest.get("teacher"))})


def _open_journal(journal: Path, manifest: dict[str, Any], overwrite: bool) -> FrameBlock:
    """Return what an earlier interrupted run of the same job already labelled."""
    manifest_file = journal / "manifest.json"
    if manifest_file.exists():
        try:
            previous = json.loads(manifest_file.read_text())
        except (OSError, json.JSONDecodeError):
            previous = None
        same = previous is not None and _manifest_key(previous) == _manifest_key(manifest)
        if same:
            done = FrameBlock()
            for chunk_file in sorted(journal.glob("chunk_*.npz")):
                done.extend(FrameBlock.load_npz(chunk_file))
            return done
        if not overwrite:
            raise FileExistsError(
                f"{journal} holds an unfinished labeling run with other inputs or teacher; "
                "rerun that command to finish it, or pass overwrite=True (--overwrite) "
                "to discard it"
            )
        for stale in [manifest_file, *journal.glob("chunk_*.npz*")]:
            stale.unlink()
    journal.mkdir(parents=True, exist_ok=True)
    write_json(manifest_file, manifest, indent=1)
    return FrameBlock()


def _label_one(
    atoms: Atoms, index: int, calc: Calculator, max_force: float, out: FrameBlock
) -> None:
    work = atoms.copy()
    work.calc = calc
    periodic = bool(work.pbc.any())
    energy = work.get_potential_energy()
    forces = work.get_forces()
    stress = None
    if periodic:
        try:
            stress = work.get_stress(voigt=True)
        except PropertyNotImplementedError as exc:
            raise DatasetError(
                f"teacher {teacher_info(calc).name!r} gives no stress for periodic structure "
                f"{index}; periodic frames need stress (choose a teacher with a stress output)"
            ) from exc
    values = [np.atleast_1d(energy), forces] + ([stress] if stress is not None else [])
    if not all(np.isfinite(v).all() for v in values):
        out.reject(index, "non-finite energy, forces or stress")
        return
    if np.abs(forces).max() > max_force:
        out.reject(index, f"force component {np.abs(forces).max():.1f} eV/A > {max_force}")
        return
    provenance = {k: v for k, v in atoms.info.items() if k not in ("energy", "stress")}
    out.add(
        index,
        work.numbers,
        work.positions,
        work.cell.array,
        work.pbc,
        energy,
        forces,
        stress,
        provenance,
        teacher_atom_energies(work, energy),
    )


def teacher_atom_energies(atoms: Atoms, energy: float) -> np.ndarray | None:
    """The teacher's per-atom energies of the frame just computed, where it gives them
    (SevenNet does) and they add up to its energy; ``None`` otherwise."""
    values = (atoms.calc.results or {}).get("energies")
    if values is None:
        return None
    values = np.asarray(values, dtype=np.float64).reshape(-1)
    if len(values) != len(atoms) or not np.isfinite(values).all():
        return None
    if abs(values.sum() - energy) > 1e-4 * max(1.0, abs(energy)):
        return None
    return values


def summary(path: str | os.PathLike) -> dict[str, Any]:
    """Frames, rejected frames, elements, force range and teacher of a dataset."""
    block, attrs = read_hdf5(path)
    from ase.data import chemical_symbols

    numbers = np.concatenate(block.numbers) if len(block) else np.zeros(0, int)
    forces = np.concatenate(block.forces) if len(block) else np.zeros((0, 3))
    norms = np.linalg.norm(forces, axis=1)
    counts = Counter(int(z) for z in numbers)
    return {
        "path": str(path),
        "frames": len(block),
        "atoms": int(len(numbers)),
        "rejected": len(block.rejected_index),
        "rejected_reasons": dict(Counter(block.rejected_reason)),
        "elements": {chemical_symbols[z]: n for z, n in sorted(counts.items())},
        "periodic_frames": int(sum(bool(p.any()) for p in block.pbc)),
        "atom_energy_frames": int(sum(bool(np.isfinite(e).all()) for e in block.atom_energies)),
        "force_norm_eV_per_A": {
            "max": float(norms.max()) if norms.size else None,
            "mean": float(norms.mean()) if norms.size else None,
        },
        "teacher": attrs.get("teacher", {}).get("name"),
        "shard": attrs.get("shard"),
    }


def summary_text(path: str | os.PathLike) -> str:
    s = summary(path)
    elements = ", ".join(f"{el} {n}" for el, n in s["elements"].items())
    force = s["force_norm_eV_per_A"]
    force_range = (
        f"|F| mean {force['mean']:.3f}, max {force['max']:.3f} eV/Å" if s["atoms"] else "no atoms"
    )
    return (
        f"{s['path']}: {s['frames']} frames ({s['periodic_frames']} periodic), {s['atoms']} atoms, "
        f"{s['rejected']} rejected; teacher {s['teacher']}; elements: {elements}; {force_range}; "
        f"per-atom energies in {s['atom_energy_frames']} frames"
    )
