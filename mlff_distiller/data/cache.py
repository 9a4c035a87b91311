"""Exact, pickle-free round trip of a list of structures (JSON), for resumable jobs."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from ase import Atoms

from ..files import to_json, write_text


def write_structure_cache(structures: list[Atoms], path: Path) -> None:
    """Write ``structures`` (species, positions, cell, pbc, info) atomically to ``path``."""
    records = [
        {
            "numbers": atoms.numbers,
            "positions": atoms.positions,
            "cell": atoms.cell.array,
            "pbc": atoms.pbc,
            "info": atoms.info,
        }
        for atoms in structures
    ]
    write_text(path, to_json(records, sort_keys=True))


def read_structure_cache(path: Path) -> list[Atoms]:
    """Read what :func:`write_structure_cache` wrote; floats round-trip exactly."""
    structures = []
    for record in json.loads(Path(path).read_text()):
        atoms = Atoms(
            numbers=record["numbers"],
            positions=np.array(record["positions"], dtype=float).reshape(-1, 3),
            cell=np.array(record["cell"], dtype=float),
            pbc=record["pbc"],
        )
        atoms.info.update(record["info"])
        structures.append(atoms)
    return structures
