"""LAMMPS data files of ASE structures (``write_data``), the cell convention they follow
(``lammps_cell``) and the opening lines of a deck that reads one (``LammpsData``)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ...errors import InputError
from ...files import write_text

if TYPE_CHECKING:
    import ase


@dataclass(frozen=True)
class LammpsData:
    """A data file written by :func:`write_data`.

    ``elements[t - 1]`` is the element of atom type ``t`` (the ``pair_coeff * *`` line is
    ``"pair_coeff * * " + " ".join(elements)``). LAMMPS wants the first cell vector along x
    and the second in the xy plane: ``positions_lammps = positions @ rotation.T``, and
    vectors LAMMPS returns (forces) go back with ``forces @ rotation``.
    """

    path: Path
    elements: tuple[str, ...]
    rotation: np.ndarray
    boundary: str
    triclinic: bool
    atom_style: str = "atomic"
    #: ``atom_style full``: bond type ``t`` joins the elements ``bond_types[t - 1]``.
    bond_types: tuple[tuple[str, str], ...] = ()

    @property
    def pair_coeff(self) -> str:
        return "pair_coeff * * " + " ".join(self.elements)

    @property
    def deck_lines(self) -> list[str]:
        """What a deck needs to read this file (by its name, from its folder) and run the
        student on it, after ``units``: the bond lines of a ``full`` file keep every pair in
        the plugin's neighbour list (``special_bonds lj/coul 1.0 1.0 1.0``) and add no
        energy."""
        return self._read_lines(self.path.name, self.boundary)

    def student_deck(
        self,
        model: str | os.PathLike,
        *,
        units: str = "metal",
        keywords: str = "",
        relative: bool = False,
        boundary: str | None = None,
        before_read: tuple[str, ...] = (),
    ) -> list[str]:
        """The opening every deck that runs a student on this file shares: ``units``, the
        lines that read the file (by absolute path, so the deck runs from any folder; by
        name with ``relative``), ``pair_style mlff model keywords`` and ``pair_coeff``.
        ``boundary``: instead of the file's own (e.g. ``s s s``, shrink-wrapped, for a
        molecule's long MD); ``before_read``: lines that must come before the box exists
        (``atom_modify``)."""
        read = self._read_lines(
            self.path.name if relative else str(self.path.resolve()), boundary or self.boundary
        )
        return [
            f"units {units}",
            *before_read,
            *read,
            " ".join(["pair_style mlff", str(model), keywords]).rstrip(),
            self.pair_coeff,
        ]

    def _read_lines(self, path: str, boundary: str) -> list[str]:
        lines = [f"atom_style {self.atom_style}", f"boundary {boundary}"]
        if self.atom_style == "full":
            lines += ["bond_style zero", "special_bonds lj/coul 1.0 1.0 1.0"]
        lines.append(f"read_data {path}")
        if self.atom_style == "full" and self.bond_types:
            lines.append("bond_coeff *")
        return lines


def lammps_cell(cell: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Lower-triangular cell (rows a, b, c with a ∥ x, b in the xy plane) and the rotation
    ``R`` with ``cell @ R.T == lower``; ``R`` is a proper rotation."""
    q, r = np.linalg.qr(np.asarray(cell, dtype=float).T)
    signs = np.sign(np.diag(r))
    signs[signs == 0] = 1.0
    q = q * signs
    r = (r.T * signs).T
    rotation = q.T
    if np.linalg.det(rotation) < 0:
        raise InputError("the cell is left-handed; LAMMPS needs a right-handed cell (det > 0)")
    lower = r.T
    lower[np.abs(lower) < 1e-12 * np.abs(lower).max()] = 0.0
    return lower, rotation


def write_data(
    atoms: ase.Atoms,
    path: str | Path,
    elements: Sequence[str] | None = None,
    units: str = "metal",
    margin: float = 10.0,
    velocities: bool = False,
    atom_style: str = "atomic",
) -> LammpsData:
    """Write ``atoms`` as a LAMMPS data file with one type per element.

    Parameters
    ----------
    atoms
        Fully periodic (any right-handed cell; it is rotated into LAMMPS' orientation) or
        fully non-periodic (the box encloses the atoms with ``margin`` Å to spare; use
        ``boundary f f f`` or ``s s s`` in the deck).
    path
        The data file; written atomically.
    elements
        Element of each atom type, in type order (e.g. a model's elements, so types match
        across systems); defaults to the elements present, in order of atomic number. It may
        list elements that are absent.
    units
        ``"metal"`` (Å, ps velocities) or ``"real"`` (Å, fs velocities).
    velocities
        Also write a ``Velocities`` section from ``atoms.get_velocities()``.
    atom_style
        ``"atomic"`` (the default) or ``"full"``, as classical decks use: molecule ids,
        zero charges and a ``Bonds`` section (atoms closer than 1.2 times the sum of their
        covalent radii, periodic images included; one bond type per element pair). Such a
        deck needs ``bond_style zero`` and ``special_bonds lj/coul 1.0 1.0 1.0`` (see
        :attr:`LammpsData.deck_lines`), or the plugin refuses to run.

    Raises
    ------
    ValueError
        For partly periodic systems, an element missing from ``elements`` or other units.
    """
    from ase.data import atomic_masses, atomic_numbers
    from ase.units import fs

    if units not in ("metal", "real"):
        raise InputError(f"units must be 'metal' or 'real', got {units!r}")
    if atom_style not in ("atomic", "full"):
        raise InputError(f"atom_style must be 'atomic' or 'full', got {atom_style!r}")
    if len(atoms) == 0:
        raise InputError("no atoms to write")
    symbols = atoms.get_chemical_symbols()
    if elements is None:
        elements = sorted(set(symbols), key=lambda s: atomic_numbers[s])
    elements = tuple(elements)
    missing = sorted(set(symbols) - set(elements))
    if missing:
        raise InputError(f"elements {missing} are in the structure but not in elements={elements}")
    type_of = {symbol: index + 1 for index, symbol in enumerate(elements)}

    pbc = atoms.pbc
    positions = atoms.get_positions()
    if pbc.all():
        lower, rotation = lammps_cell(atoms.cell.array)
        positions = positions @ rotation.T
        origin = np.zeros(3)
        lengths = np.diag(lower)
        tilt = (lower[1, 0], lower[2, 0], lower[2, 1])
        boundary = "p p p"
    elif not pbc.any():
        rotation = np.eye(3)
        origin = positions.min(axis=0) - margin
        lengths = positions.max(axis=0) + margin - origin
        tilt = (0.0, 0.0, 0.0)
        boundary = "f f f"
    else:
        raise InputError(
            f"partly periodic systems (pbc={pbc.tolist()}) are not supported by write_data; "
            "write the data file yourself or make the system fully periodic or fully open"
        )
    triclinic = any(abs(t) > 0.0 for t in tilt)
    bonds, bond_types, molecule = [], (), [1] * len(atoms)
    if atom_style == "full":
        bonds, bond_types, molecule = _bond_topology(atoms)

    lines = [
        f"LAMMPS data file written by mlff_distiller ({atoms.get_chemical_formula()})",
        "",
        f"{len(atoms)} atoms",
        f"{len(elements)} atom types",
    ]
    if atom_style == "full":
        lines += [f"{len(bonds)} bonds", f"{len(bond_types)} bond types"]
    lines.append("")
    for axis, name in enumerate("xyz"):
        lo, hi = origin[axis], origin[axis] + lengths[axis]
        lines.append(f"{lo:.17g} {hi:.17g} {name}lo {name}hi")
    if triclinic:
        lines.append(f"{tilt[0]:.17g} {tilt[1]:.17g} {tilt[2]:.17g} xy xz yz")
    lines += ["", "Masses", ""]
    for symbol in elements:
        lines.append(f"{type_of[symbol]} {atomic_masses[atomic_numbers[symbol]]:.10g}  # {symbol}")
    lines += ["", f"Atoms  # {atom_style}", ""]
    for index, (symbol, xyz) in enumerate(zip(symbols, positions)):
        x, y, z = xyz
        xyz_text = f"{x:.17g} {y:.17g} {z:.17g}"
        if atom_style == "full":  # id mol type q x y z
            lines.append(f"{index + 1} {molecule[index]} {type_of[symbol]} 0.0 {xyz_text}")
        else:
            lines.append(f"{index + 1} {type_of[symbol]} {xyz_text}")
    if bonds:
        lines += [
            "",
            "Bonds  # bond types: "
            + ", ".join(f"{t + 1} {a}-{b}" for t, (a, b) in enumerate(bond_types)),
            "",
        ]
        for k, (bond_type, i, j) in enumerate(bonds):
            lines.append(f"{k + 1} {bond_type} {i + 1} {j + 1}")
    if velocities:
        per_time = 1000.0 * fs if units == "metal" else fs  # ASE velocity → Å/ps or Å/fs
        v = atoms.get_velocities() @ rotation.T * per_time
        lines += ["", "Velocities", ""]
        for index, (vx, vy, vz) in enumerate(v):
            lines.append(f"{index + 1} {vx:.17g} {vy:.17g} {vz:.17g}")
    path = write_text(path, "\n".join(lines) + "\n")
    return LammpsData(path, elements, rotation, boundary, triclinic, atom_style, bond_types)


def _bond_topology(
    atoms: ase.Atoms,
) -> tuple[list[tuple[int, int, int]], tuple[tuple[str, str], ...], list[int]]:
    """Covalent bonds ``(type, i, j)`` (:func:`~mlff_distiller.data.structures.covalent_bonds`),
    the element pair of each bond type (ordered by atomic number) and a molecule id per
    atom."""
    from ase.data import atomic_numbers

    from ...data.structures import covalent_bonds, molecule_ids

    pairs = covalent_bonds(atoms)
    symbols = atoms.get_chemical_symbols()

    def kind(i: int, j: int) -> tuple[str, str]:
        a, b = sorted((symbols[i], symbols[j]), key=lambda s: atomic_numbers[s])
        return a, b

    def by_z(pair: tuple[str, str]) -> tuple[int, int]:
        return atomic_numbers[pair[0]], atomic_numbers[pair[1]]

    types = tuple(sorted({kind(i, j) for i, j in pairs}, key=by_z))
    type_of = {pair: t + 1 for t, pair in enumerate(types)}
    bonds = [(type_of[kind(i, j)], i, j) for i, j in pairs]
    return bonds, types, molecule_ids(len(atoms), pairs)
