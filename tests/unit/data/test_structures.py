"""Structure sources: SMILES, files, built-in sets, source specs."""

from __future__ import annotations

import numpy as np
import pytest
from ase.build import bulk, molecule
from ase.io import write

from mlff_distiller.data import (
    StructureError,
    builtin_molecules,
    load_source,
    read_structures,
    structures_from_smiles,
)
from mlff_distiller.data.builtin import molecule_set


def test_smiles_give_3d_conformers_with_explicit_hydrogens():
    mols = structures_from_smiles(["CCO", "c1ccccc1O"], n_conformers=2, seed=3)
    assert [m.get_chemical_formula() for m in mols] == ["C2H6O", "C2H6O", "C6H6O", "C6H6O"]
    assert mols[0].info["group"] == mols[1].info["group"] == "CCO"
    assert mols[0].info["source"] == "smiles:CCO"
    assert mols[0].info["charge"] == 0 and mols[0].info["spin"] == 1
    # Two conformers of ethanol differ; all coordinates are 3D and bonds are sensible.
    assert not np.allclose(mols[0].positions, mols[1].positions)
    for m in mols:
        assert np.ptp(m.positions, axis=0).min() > 0.5 or len(m) < 4
        d = m.get_all_distances()
        assert d[np.triu_indices(len(m), 1)].min() > 0.9


def test_smiles_are_reproducible_with_a_seed():
    a = structures_from_smiles(["CC(=O)Nc1ccc(O)cc1"], seed=7)[0]
    b = structures_from_smiles(["CC(=O)Nc1ccc(O)cc1"], seed=7)[0]
    np.testing.assert_array_equal(a.positions, b.positions)


def test_charged_molecule_records_its_charge():
    (ion,) = structures_from_smiles(["CC(=O)[O-]"])
    assert ion.info["charge"] == -1


@pytest.mark.parametrize("bad", ["C1CC", "c1cccc1", "xyz", ""])
def test_unparseable_smiles_is_named(bad):
    with pytest.raises(StructureError, match=rf"RDKit cannot parse SMILES {bad!r} \(entry 1\)"):
        structures_from_smiles(["O", bad])


def test_smiles_argument_errors():
    with pytest.raises(TypeError, match="list of SMILES"):
        structures_from_smiles("CCO")
    with pytest.raises(ValueError, match="n_conformers"):
        structures_from_smiles(["O"], n_conformers=0)


@pytest.mark.parametrize("fmt", ["xyz", "extxyz", "proteindatabank", "cif", "vasp"])
def test_any_ase_readable_file(tmp_path, fmt):
    atoms = bulk("NaCl", "rocksalt", a=5.64) if fmt in ("cif", "vasp") else molecule("CH3OH")
    path = tmp_path / f"structure.{ {'proteindatabank': 'pdb', 'vasp': 'poscar'}.get(fmt, fmt) }"
    write(path, [atoms], format=fmt)
    (read,) = read_structures(path, format=fmt if fmt == "vasp" else None)
    assert read.get_chemical_formula() == atoms.get_chemical_formula()
    if atoms.pbc.any():  # CIF may re-orient the cell: compare what orientation cannot change
        np.testing.assert_allclose(read.cell.cellpar(), atoms.cell.cellpar(), atol=1e-3)
        np.testing.assert_allclose(
            read.get_all_distances(mic=True), atoms.get_all_distances(mic=True), atol=1e-3
        )
    else:
        np.testing.assert_allclose(read.positions, atoms.positions, atol=1e-3)
    assert read.info["source"] == f"file:{path.name}#0"
    assert read.info["group"].startswith("structure:")


def test_unreadable_files(tmp_path):
    with pytest.raises(StructureError, match="does not exist"):
        read_structures(tmp_path / "missing.xyz")
    garbage = tmp_path / "garbage.xyz"
    garbage.write_text("this is not\nan xyz file\n")
    with pytest.raises(StructureError, match="ase.io cannot read"):
        read_structures(garbage)


def test_builtin_molecules_subset_and_errors():
    mols = builtin_molecules(names=["aspirin"]) if _has("aspirin") else builtin_molecules()[:1]
    assert mols[0].info["source"].startswith("builtin:organic/")
    with pytest.raises(StructureError, match="unknown built-in molecule"):
        builtin_molecules(names=["no-such-molecule"])


def _has(name: str) -> bool:
    from mlff_distiller.data import organic_set

    return any(entry.name == name for entry in organic_set())


def test_source_specs(tmp_path):
    assert len(load_source("smiles:O,CC")) == 2
    (box,) = load_source("builtin:water-32")
    assert len(box) == 96 and box.pbc.all()
    path = tmp_path / "m.xyz"
    write(path, molecule("NH3"))
    assert load_source(str(path))[0].get_chemical_formula() == "H3N"
    with pytest.raises(StructureError, match="unknown built-in set"):
        load_source("builtin:nothing")
    groups = load_source("builtin:functional-groups")
    assert len(groups) == len(molecule_set("functional-groups"))
    assert groups[0].info["source"] == "builtin:functional-groups/methane"
    assert {a.info["group"] for a in groups}.isdisjoint(
        {a.info["group"] for a in load_source("builtin:organic")}
    )
