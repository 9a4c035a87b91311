"""The on-disk dataset format (HDF5): ragged per-frame arrays, units and provenance.

Layout (``F`` frames, ``A`` atoms in all frames)::

    attrs   format, format_version, complete, units, teacher (JSON), provenance (JSON)
    /numbers      (A,)    int32     atomic numbers
    /positions    (A, 3)  float64   Å
    /forces       (A, 3)  float64   eV/Å
    /offsets      (F+1,)  int64     frame k owns atoms offsets[k]:offsets[k+1]
    /energy       (F,)    float64   eV
    /cell         (F,3,3) float64   Å
    /pbc          (F, 3)  bool
    /stress       (F, 6)  float64   eV/Å³, ASE Voigt order (xx yy zz yz xz xy); NaN if absent
    /atom_energies (A,)   float64   eV, the teacher's per-atom energies (they sum to /energy);
                                    NaN where the teacher gives none (absent in older files)
    /has_stress   (F,)    bool
    /source_index (F,)    int64     position of the frame in the labelled input list
    /info         (F,)    str       per-frame provenance, JSON (source, group, sampling...)
    /rejected/source_index, /rejected/reason   frames the teacher got wrong, never written above

Numeric arrays carry Fletcher-32 checksums, so a corrupted file fails loudly on read. A file
is only ever written under a temporary name and renamed into place when complete.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .. import files
from ..errors import InputError
from ..files import atomic_path

FORMAT = "mlff_distiller.dataset"
FORMAT_VERSION = 1
UNITS = {"length": "Angstrom", "energy": "eV", "forces": "eV/Angstrom", "stress": "eV/Angstrom^3"}


class DatasetError(InputError):
    """A dataset file is missing, incomplete, corrupt or of another format."""


@dataclass
class FrameBlock:
    """Labelled frames in the ragged layout, in memory (also the journal chunk format)."""

    source_index: list[int] = field(default_factory=list)
    n_atoms: list[int] = field(default_factory=list)
    numbers: list[np.ndarray] = field(default_factory=list)
    positions: list[np.ndarray] = field(default_factory=list)
    forces: list[np.ndarray] = field(default_factory=list)
    energy: list[float] = field(default_factory=list)
    cell: list[np.ndarray] = field(default_factory=list)
    pbc: list[np.ndarray] = field(default_factory=list)
    stress: list[np.ndarray] = field(default_factory=list)
    atom_energies: list[np.ndarray] = field(default_factory=list)
    info: list[str] = field(default_factory=list)
    rejected_index: list[int] = field(default_factory=list)
    rejected_reason: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.source_index)

    def add(
        self,
        index: int,
        numbers: np.ndarray,
        positions: np.ndarray,
        cell: np.ndarray,
        pbc: np.ndarray,
        energy: float,
        forces: np.ndarray,
        stress: np.ndarray | None,
        info: dict[str, Any],
        atom_energies: np.ndarray | None = None,
    ) -> None:
        self.source_index.append(int(index))
        self.n_atoms.append(len(numbers))
        self.numbers.append(np.asarray(numbers, dtype=np.int32))
        self.positions.append(np.asarray(positions, dtype=np.float64))
        self.forces.append(np.asarray(forces, dtype=np.float64))
        self.energy.append(float(energy))
        self.cell.append(np.asarray(cell, dtype=np.float64))
        self.pbc.append(np.asarray(pbc, dtype=bool))
        self.stress.append(
            np.full(6, np.nan) if stress is None else np.asarray(stress, dtype=np.float64)
        )
        self.atom_energies.append(
            np.full(len(numbers), np.nan)
            if atom_energies is None
            else np.asarray(atom_energies, dtype=np.float64).reshape(len(numbers))
        )
        self.info.append(to_json(info))

    def reject(self, index: int, reason: str) -> None:
        self.rejected_index.append(int(index))
        self.rejected_reason.append(reason)

    def extend(self, other: FrameBlock) -> None:
        for name in self.__dataclass_fields__:
            getattr(self, name).extend(getattr(other, name))

    def done(self) -> set[int]:
        return set(self.source_index) | set(self.rejected_index)

    def sorted(self) -> FrameBlock:
        """A copy ordered by ``source_index`` (the input order)."""
        order = np.argsort(self.source_index, kind="stable")
        out = FrameBlock()
        for name in self.__dataclass_fields__:
            if not name.startswith("rejected"):
                values = getattr(self, name)
                setattr(out, name, [values[i] for i in order])
        rej = np.argsort(self.rejected_index, kind="stable")
        out.rejected_index = [self.rejected_index[i] for i in rej]
        out.rejected_reason = [self.rejected_reason[i] for i in rej]
        return out

    # --- journal chunks (npz, no pickle) -----------------------------------------------
    def save_npz(self, path: Path) -> None:
        arrays = self._arrays()
        arrays["rejected_reason"] = np.array(self.rejected_reason, dtype=str)
        arrays["info"] = np.array(self.info, dtype=str)
        with atomic_path(path, fsync=True) as tmp:
            np.savez(tmp, **arrays)

    @classmethod
    def load_npz(cls, path: Path) -> FrameBlock:
        with np.load(path, allow_pickle=False) as data:
            return cls._from_arrays({key: data[key] for key in data.files})

    def _arrays(self) -> dict[str, np.ndarray]:
        n = len(self)
        return {
            "source_index": np.array(self.source_index, dtype=np.int64),
            "offsets": np.concatenate([[0], np.cumsum(self.n_atoms, dtype=np.int64)]),
            "numbers": _cat(self.numbers, (0,), np.int32),
            "positions": _cat(self.positions, (0, 3), np.float64),
            "forces": _cat(self.forces, (0, 3), np.float64),
            "energy": np.array(self.energy, dtype=np.float64).reshape(n),
            "cell": np.array(self.cell, dtype=np.float64).reshape(n, 3, 3),
            "pbc": np.array(self.pbc, dtype=bool).reshape(n, 3),
            "stress": np.array(self.stress, dtype=np.float64).reshape(n, 6),
            "atom_energies": _cat(self.atom_energies, (0,), np.float64),
            "rejected_index": np.array(self.rejected_index, dtype=np.int64),
        }

    @classmethod
    def _from_arrays(cls, a: dict[str, np.ndarray]) -> FrameBlock:
        offsets = a["offsets"]
        # Files and journal chunks written before per-atom energies were stored have none.
        atom_energies = a.get("atom_energies")
        if atom_energies is None:
            atom_energies = np.full(len(a["numbers"]), np.nan)
        block = cls()
        for k in range(len(a["source_index"])):
            lo, hi = int(offsets[k]), int(offsets[k + 1])
            block.source_index.append(int(a["source_index"][k]))
            block.n_atoms.append(hi - lo)
            block.numbers.append(a["numbers"][lo:hi])
            block.positions.append(a["positions"][lo:hi])
            block.forces.append(a["forces"][lo:hi])
            block.energy.append(float(a["energy"][k]))
            block.cell.append(a["cell"][k])
            block.pbc.append(a["pbc"][k])
            block.stress.append(a["stress"][k])
            block.atom_energies.append(atom_energies[lo:hi])
            block.info.append(str(a["info"][k]))
        block.rejected_index = [int(i) for i in a["rejected_index"]]
        block.rejected_reason = [str(s) for s in a["rejected_reason"]]
        return block


def _cat(parts: list[np.ndarray], empty_shape: tuple[int, ...], dtype: type) -> np.ndarray:
    if not parts:
        return np.zeros(empty_shape, dtype=dtype)
    return np.concatenate(parts).astype(dtype, copy=False)


def to_json(value: Any) -> str:
    """Dataset attributes and info as JSON (keys sorted, so equal values give equal text)."""
    return files.to_json(value, sort_keys=True)


def write_hdf5(block: FrameBlock, path: Path, attrs: dict[str, Any]) -> Path:
    """Write ``block`` to ``path`` atomically (temporary file, fsync, rename)."""
    import h5py

    path = Path(path)
    arrays = block.sorted()._arrays()
    with atomic_path(path, fsync=True) as tmp, h5py.File(tmp, "w") as h5:
        for name, value in arrays.items():
            if name == "rejected_index":
                continue
            checksum = {"fletcher32": True, "chunks": True} if value.size else {}
            h5.create_dataset(name, data=value, **checksum)
        h5.create_dataset("has_stress", data=~np.isnan(arrays["stress"]).any(axis=1))
        h5.create_dataset("info", data=block.sorted().info, dtype=h5py.string_dtype())
        rejected = h5.create_group("rejected")
        rejected.create_dataset("source_index", data=arrays["rejected_index"])
        rejected.create_dataset(
            "reason", data=block.sorted().rejected_reason, dtype=h5py.string_dtype()
        )
        h5.attrs["format"] = FORMAT
        h5.attrs["format_version"] = FORMAT_VERSION
        h5.attrs["units"] = to_json(UNITS)
        h5.attrs["n_frames"] = len(block)
        h5.attrs["n_rejected"] = len(block.rejected_index)
        for key, value in attrs.items():
            plain = isinstance(value, (str, int, float)) and not isinstance(value, bool)
            h5.attrs[key] = value if plain else to_json(value)
        # Written last: a file without it was interrupted before it was finished.
        h5.attrs["complete"] = True
    return path


def read_hdf5(path: str | os.PathLike) -> tuple[FrameBlock, dict[str, Any]]:
    """Read and check a dataset file; return its frames and its attributes."""
    import h5py

    path = Path(path)
    if not path.is_file():
        raise DatasetError(f"dataset {str(path)!r} does not exist")
    try:
        with h5py.File(path, "r") as h5:
            attrs = dict(h5.attrs)
            _check_attrs(path, attrs)
            arrays = {name: h5[name][()] for name in h5 if isinstance(h5[name], h5py.Dataset)}
            arrays["info"] = np.array([s.decode() for s in arrays["info"]], dtype=str)
            arrays["rejected_index"] = h5["rejected/source_index"][()]
            arrays["rejected_reason"] = np.array(
                [s.decode() for s in h5["rejected/reason"][()]], dtype=str
            )
    except DatasetError:
        raise
    except (OSError, KeyError, ValueError) as exc:
        raise DatasetError(
            f"dataset {str(path)!r} is unreadable (truncated or corrupt: {_first_line(exc)}); "
            "relabel it (the labeling command resumes) or restore a copy"
        ) from exc
    offsets = arrays["offsets"]
    n = len(arrays["source_index"])
    n_atoms = len(arrays["numbers"])
    ragged = ("positions", "forces", "atom_energies")
    if (
        len(offsets) != n + 1
        or offsets[-1] != n_atoms
        or len(arrays["info"]) != n
        or any(len(arrays[name]) != n_atoms for name in ragged if name in arrays)
    ):
        raise DatasetError(f"dataset {str(path)!r} is inconsistent (array lengths disagree)")
    return FrameBlock._from_arrays(arrays), _decode_attrs(attrs)


def _check_attrs(path: Path, attrs: dict[str, Any]) -> None:
    if attrs.get("format") != FORMAT:
        raise DatasetError(
            f"{str(path)!r} is an HDF5 file but not an mlff_distiller dataset; "
            "convert labelled frames with `mlff-distill dataset import-extxyz`"
        )
    if int(attrs.get("format_version", -1)) > FORMAT_VERSION:
        raise DatasetError(
            f"dataset {str(path)!r} has format version {attrs.get('format_version')}, newer than "
            f"this mlff_distiller reads ({FORMAT_VERSION}); upgrade mlff_distiller"
        )
    if not attrs.get("complete", False):
        raise DatasetError(
            f"dataset {str(path)!r} is incomplete (its writer was interrupted); "
            "rerun the labeling command to finish it"
        )


def _decode_attrs(attrs: dict[str, Any]) -> dict[str, Any]:
    decoded: dict[str, Any] = {}
    for key, value in attrs.items():
        if isinstance(value, np.generic):
            value = value.item()
        if isinstance(value, str) and (value[:1] in "{[" or value == "null"):
            try:
                value = json.loads(value)
            except json.JSONDecodeError:
                pass
        decoded[key] = value
    return decoded


def _first_line(exc: Exception) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__
