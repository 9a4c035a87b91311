"""Where structures come from: SMILES, files that ``ase.io`` reads, and the built-in sets.

Every structure carries in ``atoms.info``:

- ``source``: where it came from (``"smiles:CCO"``, ``"file:water.xyz#3"``,
  ``"builtin:organic/aspirin"``),
- ``group``: what it is an instance of (the canonical SMILES of a molecule, a water box, ...),
  used to split datasets so a test molecule is never seen in training.
"""

from __future__ import annotations

import os
from pathlib import Path

from ase import Atoms

from ..errors import InputError


class StructureError(InputError):
    """A structure source cannot be read; the message names the source and the fix."""


def structures_from_smiles(
    smiles: list[str],
    n_conformers: int = 1,
    seed: int = 0,
    *,
    names: list[str] | None = None,
    relax: bool = True,
) -> list[Atoms]:
    """3D conformers with explicit hydrogens from SMILES (RDKit ETKDG, then MMFF94 relaxation).

    Parameters
    ----------
    smiles
        SMILES strings; each must be parseable by RDKit.
    n_conformers
        Conformers per molecule (distinct ETKDG embeddings).
    seed
        Seed of the embedding; the same seed gives the same coordinates.
    names
        Optional human-readable names, one per SMILES (stored as ``atoms.info["name"]``).
    relax
        Relax each conformer with MMFF94 (UFF where MMFF has no parameters).

    Examples
    --------
    >>> [a.get_chemical_formula() for a in structures_from_smiles(["O", "CCO"])]
    ['H2O', 'C2H6O']
    """
    from rdkit import Chem, rdBase
    from rdkit.Chem import AllChem

    if isinstance(smiles, str):
        raise TypeError("structures_from_smiles takes a list of SMILES; wrap one in [...]")
    if n_conformers < 1:
        raise InputError(f"n_conformers must be at least 1, got {n_conformers}")
    if names is not None and len(names) != len(smiles):
        raise InputError(f"got {len(names)} names for {len(smiles)} SMILES; give one per SMILES")

    structures: list[Atoms] = []
    for index, smi in enumerate(smiles):
        blocker = rdBase.BlockLogs()  # our error below replaces RDKit's log lines
        mol = Chem.MolFromSmiles(smi) if smi and smi.strip() else None
        del blocker
        if mol is None:
            raise StructureError(
                f"RDKit cannot parse SMILES {smi!r} (entry {index}); check the string, "
                "e.g. ring-closure digits, brackets and aromatic atoms"
            )
        canonical = Chem.MolToSmiles(mol)
        mol = Chem.AddHs(mol)
        params = AllChem.ETKDGv3()
        params.randomSeed = seed
        conf_ids = list(AllChem.EmbedMultipleConfs(mol, numConfs=n_conformers, params=params))
        if len(conf_ids) < n_conformers:
            params.useRandomCoords = True
            conf_ids = list(AllChem.EmbedMultipleConfs(mol, numConfs=n_conformers, params=params))
        if not conf_ids:
            raise StructureError(
                f"RDKit could not embed SMILES {smi!r} in 3D (entry {index}); "
                "check that the molecule is chemically valid"
            )
        if relax:
            _relax(mol)
        charge = Chem.GetFormalCharge(mol)
        unpaired = sum(atom.GetNumRadicalElectrons() for atom in mol.GetAtoms())
        symbols = [atom.GetSymbol() for atom in mol.GetAtoms()]
        name = names[index] if names is not None else canonical
        for conf_index, conf_id in enumerate(conf_ids):
            positions = mol.GetConformer(conf_id).GetPositions()
            atoms = Atoms(symbols=symbols, positions=positions)
            atoms.info.update(
                source=f"smiles:{smi}",
                group=canonical,
                name=name,
                smiles=canonical,
                conformer=conf_index,
                seed=seed,
                charge=charge,
                spin=unpaired + 1,
            )
            structures.append(atoms)
    return structures


def _relax(mol: object) -> None:
    from rdkit.Chem import AllChem

    if AllChem.MMFFHasAllMoleculeParams(mol):
        AllChem.MMFFOptimizeMoleculeConfs(mol, maxIters=2000)
    else:
        AllChem.UFFOptimizeMoleculeConfs(mol, maxIters=2000)


def read_structures(
    path: str | os.PathLike, index: str | int = ":", format: str | None = None
) -> list[Atoms]:
    """Read every frame of any file ``ase.io`` understands (xyz, extxyz, PDB, CIF, POSCAR...).

    Frames keep their ``atoms.info``; ``group`` defaults to the file name plus the chemical
    formula, so frames of one molecule stay together when a dataset is split.
    """
    from ase.io import read

    path = Path(path)
    if not path.is_file():
        raise StructureError(f"structure file {str(path)!r} does not exist")
    try:
        frames = read(path, index=index, format=format)
    except Exception as exc:  # ase.io raises many types for unreadable files
        raise StructureError(
            f"ase.io cannot read {str(path)!r} ({type(exc).__name__}: {exc}); "
            "pass format= if the extension does not name the format"
        ) from exc
    if isinstance(frames, Atoms):
        frames = [frames]
    if not frames:
        raise StructureError(f"structure file {str(path)!r} holds no frames")
    structures = []
    for i, atoms in enumerate(frames):
        atoms = atoms.copy()
        atoms.calc = None
        if len(atoms) == 0:
            raise StructureError(f"frame {i} of {str(path)!r} has no atoms")
        atoms.info.setdefault("source", f"file:{path.name}#{i}")
        atoms.info.setdefault("group", f"{path.stem}:{atoms.get_chemical_formula()}")
        structures.append(atoms)
    return structures


def builtin_molecules(
    n_conformers: int = 1, seed: int = 0, names: list[str] | None = None, set_name: str = "organic"
) -> list[Atoms]:
    """A built-in molecule set as 3D conformers: ``organic`` (drug-like molecules, small
    peptides), ``functional-groups`` or ``functional-groups-2`` (see :mod:`.builtin`)."""
    from .builtin import molecule_set

    entries = molecule_set(set_name)
    if names is not None:
        known = {entry.name: entry for entry in entries}
        unknown = [name for name in names if name not in known]
        if unknown:
            raise StructureError(
                f"unknown built-in molecule(s) {', '.join(unknown)}; "
                f"available: {', '.join(sorted(known))}"
            )
        entries = [known[name] for name in names]
    structures = structures_from_smiles(
        [entry.smiles for entry in entries],
        n_conformers=n_conformers,
        seed=seed,
        names=[entry.name for entry in entries],
    )
    for atoms in structures:
        atoms.info["source"] = f"builtin:{set_name}/{atoms.info['name']}"
    return structures


def load_source(spec: str, n_conformers: int = 1, seed: int = 0) -> list[Atoms]:
    """Structures from one command-line source spec.

    ``builtin:organic``, ``builtin:functional-groups``, ``builtin:functional-groups-2``,
    ``builtin:water-64`` (a shipped box
    of 64 molecules),
    ``smiles:CCO`` (one molecule; several with ``smiles:CCO,c1ccccc1``), or a file path.
    """
    kind, sep, value = spec.partition(":")
    if sep and kind == "builtin":
        from .builtin import MOLECULE_SETS

        if value in MOLECULE_SETS:
            return builtin_molecules(n_conformers=n_conformers, seed=seed, set_name=value)
        if value.startswith("water-") and value[6:].isdigit():
            from .builtin import water_box

            return [water_box(int(value[6:]))]
        raise StructureError(
            f"unknown built-in set {value!r}; use one of "
            f"{', '.join('builtin:' + name for name in MOLECULE_SETS)} or 'builtin:water-N'"
        )
    if sep and kind == "smiles":
        return structures_from_smiles(value.split(","), n_conformers=n_conformers, seed=seed)
    return read_structures(spec)


def bond_images(atoms: Atoms, factor: float = 1.2) -> tuple:
    """Every pair closer than ``factor`` times the sum of their covalent radii, once per
    periodic image and in both directions: first atoms, second atoms and the vectors from
    first to second (Å)."""
    from ase.neighborlist import natural_cutoffs, neighbor_list

    return neighbor_list("ijD", atoms, natural_cutoffs(atoms, mult=factor))


def covalent_bonds(
    atoms: Atoms, factor: float = 1.2, images: tuple | None = None
) -> list[tuple[int, int]]:
    """Pairs ``(i, j)``, ``i < j``, closer than ``factor`` times the sum of their covalent
    radii (periodic images included; an atom and its own image are not a bond), sorted: the
    bonds a classical topology would list. ``images``: :func:`bond_images` of the same
    atoms and factor, already computed."""
    first, second, _ = bond_images(atoms, factor) if images is None else images
    return sorted({(int(i), int(j)) for i, j in zip(first, second) if i < j})


def molecule_ids(n_atoms: int, bonds: list[tuple[int, int]]) -> list[int]:
    """A 1-based molecule id per atom (connected components of ``bonds``), numbered in the
    order of each molecule's first atom."""
    import numpy as np
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    rows = [i for i, _ in bonds]
    cols = [j for _, j in bonds]
    graph = coo_matrix((np.ones(len(bonds)), (rows, cols)), shape=(n_atoms, n_atoms))
    _, labels = connected_components(graph, directed=False)
    order = {label: k + 1 for k, label in enumerate(dict.fromkeys(labels.tolist()))}
    return [order[label] for label in labels.tolist()]
