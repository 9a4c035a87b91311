"""Structure sets shipped with the package: small organic molecules and liquid water boxes.

The files live in ``mlff_distiller/data/builtin/`` (package data, no Python inside):
``organic.csv`` (``name,smiles,category``: drug-like molecules, small capped or free peptides and
small molecules, elements H C N O F S Cl only, all neutral), ``functional_groups.csv`` (the
same columns: about a hundred small molecules, one or two functional groups each, for
coverage of chemistry the first set lacks; none of them is in ``organic.csv`` or in the
unseen-molecule set of ``benchmarks/fidelity.py``), ``functional_groups_2.csv`` (about 125
more, in none of the sets above: heteroaromatics, nitriles, fluorinated and chlorinated
groups, amides and ureas, sulfur groups, capped amino acids) and ``water_<N>.extxyz``,
periodic boxes of ``N`` equilibrated water molecules made by
:mod:`mlff_distiller.data.waterbox`.

>>> from mlff_distiller.data.builtin import organic_set, water_box
>>> [entry.smiles for entry in organic_set() if entry.name == "aspirin"]
['CC(=O)Oc1ccccc1C(=O)O']
>>> len(water_box(32))
96
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from importlib.resources import as_file, files

import ase.io
from ase import Atoms

from ..errors import InputError

__all__ = [
    "MOLECULE_SETS",
    "ORGANIC_CATEGORIES",
    "WATER_BOX_SIZES",
    "OrganicEntry",
    "molecule_set",
    "organic_set",
    "water_box",
    "water_box_filename",
]

#: The shipped molecule sets, each a source ``builtin:NAME`` read from ``NAME.csv`` (dashes
#: as underscores).
MOLECULE_SETS: tuple[str, ...] = ("organic", "functional-groups", "functional-groups-2")
#: Categories used in ``organic.csv``.
ORGANIC_CATEGORIES: tuple[str, ...] = ("drug-like", "peptide", "small")
#: Numbers of water molecules of the shipped boxes.
WATER_BOX_SIZES: tuple[int, ...] = (32, 64, 128, 256)

_PACKAGE = "mlff_distiller.data"
_DIRECTORY = "builtin"


@dataclass(frozen=True)
class OrganicEntry:
    """One molecule of the built-in organic set.

    Parameters
    ----------
    name
        Unique, lower-case name (``"ace-ala-nme"`` is the capped alanine dipeptide).
    smiles
        SMILES of the neutral molecule (hydrogens implicit).
    category
        One of :data:`ORGANIC_CATEGORIES`.

    Examples
    --------
    >>> OrganicEntry("ethanol", "CCO", "small").smiles
    'CCO'
    """

    name: str
    smiles: str
    category: str


def organic_set(category: str | None = None) -> list[OrganicEntry]:
    """The built-in organic molecules, in file order.

    Parameters
    ----------
    category
        Keep only this category (one of :data:`ORGANIC_CATEGORIES`); ``None`` keeps all.

    Returns
    -------
    list[OrganicEntry]

    Examples
    --------
    >>> from mlff_distiller.data import structures_from_smiles        # doctest: +SKIP
    >>> peptides = organic_set("peptide")
    >>> "ace-ala-nme" in [p.name for p in peptides]
    True
    >>> structures = structures_from_smiles([p.smiles for p in peptides])  # doctest: +SKIP
    """
    if category is not None and category not in ORGANIC_CATEGORIES:
        raise InputError(
            f"unknown organic category {category!r}; choose from {', '.join(ORGANIC_CATEGORIES)}"
        )
    return [e for e in molecule_set("organic") if category is None or e.category == category]


def molecule_set(name: str = "organic") -> list[OrganicEntry]:
    """The molecules of the shipped set ``name`` (one of :data:`MOLECULE_SETS`), in file order.

    Examples
    --------
    >>> [e.name for e in molecule_set("functional-groups")][:3]
    ['methane', 'ethane', 'propane']
    """
    if name not in MOLECULE_SETS:
        raise InputError(f"unknown molecule set {name!r}; choose from {', '.join(MOLECULE_SETS)}")
    filename = name.replace("-", "_") + ".csv"
    text = files(_PACKAGE).joinpath(_DIRECTORY, filename).read_text(encoding="utf-8")
    return [
        OrganicEntry(row["name"], row["smiles"], row["category"])
        for row in csv.DictReader(text.splitlines())
    ]


def water_box_filename(n_molecules: int) -> str:
    """File name of the shipped box of ``n_molecules`` waters.

    Examples
    --------
    >>> water_box_filename(64)
    'water_64.extxyz'
    """
    return f"water_{n_molecules}.extxyz"


def water_box(n_molecules: int = 32) -> Atoms:
    """A shipped, equilibrated periodic box of liquid water (a fresh copy on each call).

    Parameters
    ----------
    n_molecules
        Number of water molecules; one of :data:`WATER_BOX_SIZES`.

    Returns
    -------
    ase.Atoms
        ``3 * n_molecules`` atoms in O, H, H order, Å, cubic cell, ``pbc=True``, at
        0.997 g/cm³; ``info`` holds ``source="builtin:water_<N>"``, ``group="water"``,
        ``density_g_cm3`` and the recipe that made it (see :mod:`mlff_distiller.data.waterbox`).

    Examples
    --------
    >>> atoms = water_box(64)
    >>> atoms.info["source"], atoms.get_chemical_formula()
    ('builtin:water_64', 'H128O64')
    """
    if n_molecules not in WATER_BOX_SIZES:
        available = ", ".join(str(n) for n in WATER_BOX_SIZES)
        raise InputError(
            f"no built-in water box with {n_molecules} molecules; available sizes: {available}"
        )
    resource = files(_PACKAGE).joinpath(_DIRECTORY, water_box_filename(n_molecules))
    with as_file(resource) as path:
        atoms = ase.io.read(path, format="extxyz")
    assert isinstance(atoms, Atoms)
    return atoms
