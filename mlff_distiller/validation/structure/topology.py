"""The covalent topology the structure checks measure: bonds, angles and dihedrals of a
molecule (from covalent radii), and the backbone phi/psi dihedrals of peptides."""

from __future__ import annotations

import itertools

import numpy as np
from ase import Atoms

#: Number of atoms in each term of a topology kind.
ARITY = {"bonds": 2, "angles": 3, "dihedrals": 4}


def bonded_terms(atoms: Atoms, scale: float = 1.2) -> dict[str, np.ndarray]:
    """Covalent topology from covalent radii: bonds, angles and proper dihedrals.

    Two atoms are bonded when closer than ``scale`` times the sum of their covalent radii
    (``ase.neighborlist.natural_cutoffs``), across the cell boundary if periodic. Angles are
    ``i-j-k`` with ``i < k`` both bonded to ``j``; dihedrals are ``i-j-k-l`` along bonded
    chains, once per chain (``j < k``), without the degenerate ``i == l`` of three-rings.

    Parameters
    ----------
    atoms
        A molecule or periodic structure.
    scale
        Factor on the covalent radii.

    Returns
    -------
    dict
        ``{"bonds": int [B, 2], "angles": int [A, 3], "dihedrals": int [D, 4]}``, sorted rows.

    Examples
    --------
    >>> from ase.build import molecule
    >>> {k: len(v) for k, v in bonded_terms(molecule("CH3CH2OH")).items()}
    {'bonds': 8, 'angles': 13, 'dihedrals': 12}
    """
    from ...data.structures import covalent_bonds

    bonds = covalent_bonds(atoms, scale)
    neighbours: list[set[int]] = [set() for _ in range(len(atoms))]
    for i, j in bonds:
        neighbours[i].add(j)
        neighbours[j].add(i)
    angles = [
        (i, j, k)
        for j in range(len(atoms))
        for i, k in itertools.combinations(sorted(neighbours[j]), 2)
    ]
    dihedrals = [
        (i, j, k, m)
        for j, k in bonds
        for i in sorted(neighbours[j] - {k})
        for m in sorted(neighbours[k] - {j})
        if i != m
    ]
    return {
        "bonds": _index_array(bonds, 2),
        "angles": _index_array(sorted(angles), 3),
        "dihedrals": _index_array(dihedrals, 4),
    }


def backbone_dihedrals(
    atoms: Atoms, terms: dict[str, np.ndarray] | None = None
) -> dict[str, np.ndarray]:
    """Peptide backbone phi and psi quadruples, found from the bond graph.

    A carbonyl C is a carbon bonded to a terminal O (an O with one neighbour). A residue is a
    chain N-CA-C of a nitrogen, a tetrahedral carbon CA (four neighbours, as every amino
    acid's alpha carbon, glycine's included) and a carbonyl C; an sp2 carbon between an N and
    a C=O, as in the rings of caffeine or uracil, is not a backbone. Its phi is ``C(prev)-N-CA-C``
    when N is an amide N (bonded to another carbonyl C, ``C(prev)``); its psi is
    ``N-CA-C-N(next)`` when C is bonded to another nitrogen ``N(next)``. So the N-terminal
    residue of an uncapped peptide has a psi but no phi, as in the usual definition.

    Parameters
    ----------
    atoms
        The structure whose bonds define the graph.
    terms
        Output of :func:`bonded_terms` for ``atoms``; computed if not given.

    Returns
    -------
    dict
        ``{"phi": int [P, 4], "psi": int [Q, 4]}``; shape ``(0, 4)`` for a non-peptide.

    Examples
    --------
    >>> from ase.build import molecule
    >>> {k: v.shape for k, v in backbone_dihedrals(molecule("CH3CH2OH")).items()}
    {'phi': (0, 4), 'psi': (0, 4)}
    """
    bonds = bonded_terms(atoms)["bonds"] if terms is None else np.asarray(terms["bonds"])
    neighbours: list[set[int]] = [set() for _ in range(len(atoms))]
    for i, j in bonds.tolist():
        neighbours[i].add(j)
        neighbours[j].add(i)
    symbols = atoms.get_chemical_symbols()

    def carbonyl(c: int) -> bool:
        return symbols[c] == "C" and any(
            symbols[o] == "O" and len(neighbours[o]) == 1 for o in neighbours[c]
        )

    phi, psi = [], []
    for n in range(len(atoms)):
        if symbols[n] != "N":
            continue
        for ca in sorted(neighbours[n]):
            if symbols[ca] != "C" or len(neighbours[ca]) != 4:
                continue
            for c in sorted(neighbours[ca] - {n}):
                if not carbonyl(c):
                    continue
                phi += [(prev, n, ca, c) for prev in sorted(neighbours[n] - {ca}) if carbonyl(prev)]
                psi += [
                    (n, ca, c, nxt) for nxt in sorted(neighbours[c] - {ca}) if symbols[nxt] == "N"
                ]
    return {"phi": _index_array(sorted(phi), 4), "psi": _index_array(sorted(psi), 4)}


def _index_array(rows: list[tuple[int, ...]], width: int) -> np.ndarray:
    return np.array(rows, dtype=np.int64).reshape(-1, width)
