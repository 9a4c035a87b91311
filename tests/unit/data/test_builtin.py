"""The built-in structure sets: the organic SMILES list and the shipped water boxes."""

from __future__ import annotations

import re

import numpy as np
import pytest
from ase import Atoms, units
from ase.geometry import get_distances
from rdkit import Chem

from mlff_distiller.data.builtin import (
    ORGANIC_CATEGORIES,
    WATER_BOX_SIZES,
    molecule_set,
    organic_set,
    water_box,
)
from mlff_distiller.data.waterbox import MIN_MOLECULES, make_water_box

ORGANIC_ELEMENTS = {"H", "C", "N", "O", "F", "S", "Cl"}
#: Liquid water at 300 K and 1 bar (CRC Handbook: 0.99657 g/cm³ at 27 °C).
WATER_DENSITY = 0.997
#: Bounds on every O–H bond. The boxes use flexible TIP3P (k = 462750 kJ/mol/nm²), whose
#: thermal spread at 300 K is sqrt(kT/k) = 0.023 Å around a mean of ~0.974 Å; with hundreds
#: of bonds per box the extremes reach ±3.5σ (0.89–1.06 Å), so the window is 0.85–1.15 Å:
#: still far from any hydrogen-bond O···H distance (> 1.5 Å), which is what it guards against.
OH_RANGE = (0.85, 1.15)
MIN_OO = 2.3


def assert_valid_water_box(atoms: Atoms, n_molecules: int) -> None:
    """Check composition, order, cell, density and geometry of a box of ``n_molecules`` waters."""
    assert atoms.get_chemical_symbols() == ["O", "H", "H"] * n_molecules
    assert atoms.pbc.all()
    cell = atoms.cell.array
    edge = cell[0, 0]
    np.testing.assert_allclose(cell, np.eye(3) * edge, atol=1e-8)

    mass_g = atoms.get_masses().sum() / units._Nav
    density = mass_g / (atoms.get_volume() * 1e-24)
    assert abs(density - WATER_DENSITY) < 0.02 * WATER_DENSITY
    assert atoms.info["density_g_cm3"] == pytest.approx(density, rel=1e-5)

    oxygens = atoms.positions[0::3]
    hydrogens = np.delete(atoms.positions, np.s_[0::3], axis=0)
    own_oxygen = np.repeat(np.arange(n_molecules), 2)
    assert np.all((oxygens >= 0.0) & (oxygens < edge)), "oxygens must be wrapped into the cell"

    # Whole molecules: the bond vectors as stored, without any periodic image, are bonds.
    direct = np.linalg.norm(hydrogens - oxygens[own_oxygen], axis=1)
    assert direct.min() > OH_RANGE[0] and direct.max() < OH_RANGE[1]

    # Under minimum image, every H's nearest O is its own and at a bond length.
    _, h_to_o = get_distances(hydrogens, oxygens, cell=atoms.cell, pbc=True)
    np.testing.assert_array_equal(h_to_o.argmin(axis=1), own_oxygen)
    nearest = h_to_o.min(axis=1)
    assert nearest.min() > OH_RANGE[0] and nearest.max() < OH_RANGE[1]

    _, o_to_o = get_distances(oxygens, cell=atoms.cell, pbc=True)
    o_to_o[np.diag_indices(n_molecules)] = np.inf
    assert o_to_o.min() > MIN_OO


def test_organic_smiles_parse_with_allowed_elements_only() -> None:
    entries = organic_set()
    assert 30 <= len(entries) <= 40
    seen: set[str] = set()
    for entry in entries:
        mol = Chem.MolFromSmiles(entry.smiles)
        assert mol is not None, f"{entry.name}: RDKit cannot parse {entry.smiles!r}"
        mol = Chem.AddHs(mol)
        elements = {atom.GetSymbol() for atom in mol.GetAtoms()}
        assert elements <= ORGANIC_ELEMENTS, f"{entry.name}: {elements - ORGANIC_ELEMENTS}"
        assert all(atom.GetFormalCharge() == 0 for atom in mol.GetAtoms()), entry.name
        assert mol.GetNumAtoms() <= 60, f"{entry.name}: {mol.GetNumAtoms()} atoms"
        seen |= elements
    assert seen == ORGANIC_ELEMENTS


def test_organic_names_unique_and_categories_known() -> None:
    entries = organic_set()
    names = [entry.name for entry in entries]
    assert len(set(names)) == len(names)
    assert {entry.category for entry in entries} == set(ORGANIC_CATEGORIES)
    assert "ace-ala-nme" in names


def test_organic_set_filters_by_category() -> None:
    peptides = organic_set("peptide")
    assert peptides and all(entry.category == "peptide" for entry in peptides)
    assert sum(len(organic_set(c)) for c in ORGANIC_CATEGORIES) == len(organic_set())
    with pytest.raises(ValueError, match="unknown organic category 'protein'"):
        organic_set("protein")


def _canonical(smiles: str) -> str:
    return Chem.MolToSmiles(Chem.MolFromSmiles(smiles))


@pytest.mark.parametrize(
    ("set_name", "earlier"),
    [("functional-groups", ()), ("functional-groups-2", ("functional-groups",))],
)
def test_functional_groups_add_chemistry_without_touching_the_unseen_benchmark_set(
    set_name: str, earlier: tuple[str, ...]
) -> None:
    """About a hundred small neutral molecules of the organic elements per set, each
    parseable, none of them in the organic set, in an earlier set or among the molecules
    benchmarks/fidelity.py keeps unseen (else the "unseen molecules" figure would be measured
    on training data)."""
    import importlib.util
    from pathlib import Path

    path = Path(__file__).parents[3] / "benchmarks" / "fidelity.py"
    spec = importlib.util.spec_from_file_location("fidelity_benchmark", path)
    fidelity = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(fidelity)
    unseen = {_canonical(v.split(":", 1)[1]) for v in fidelity.UNSEEN_SYSTEMS.values()}
    known = {_canonical(e.smiles) for e in organic_set()}
    for name in earlier:
        known |= {_canonical(e.smiles) for e in molecule_set(name)}

    entries = molecule_set(set_name)
    assert 80 <= len(entries) <= 130
    assert len({e.name for e in entries}) == len(entries)
    seen: set[str] = set()
    canonicals: set[str] = set()
    for entry in entries:
        mol = Chem.MolFromSmiles(entry.smiles)
        assert mol is not None, f"{entry.name}: RDKit cannot parse {entry.smiles!r}"
        canonical = Chem.MolToSmiles(mol)
        assert canonical not in unseen and canonical not in known, entry.name
        assert canonical not in canonicals, f"{entry.name} is listed twice"
        canonicals.add(canonical)
        mol = Chem.AddHs(mol)
        assert sum(atom.GetFormalCharge() for atom in mol.GetAtoms()) == 0, entry.name
        seen |= {atom.GetSymbol() for atom in mol.GetAtoms()}
    assert seen == ORGANIC_ELEMENTS
    with pytest.raises(ValueError, match="unknown molecule set 'proteins'"):
        molecule_set("proteins")


@pytest.mark.parametrize("n_molecules", WATER_BOX_SIZES)
def test_shipped_water_box_is_valid_liquid_water(n_molecules: int) -> None:
    atoms = water_box(n_molecules)
    assert_valid_water_box(atoms, n_molecules)
    assert atoms.info["source"] == f"builtin:water_{n_molecules}"
    assert atoms.info["group"] == "water"
    assert atoms.info["water_model"] == "tip3p-flexible"
    assert atoms.info["temperature_K"] == 300.0


def test_water_box_returns_independent_copies() -> None:
    first = water_box()
    first.positions += 1.0
    first.info["source"] = "edited"
    second = water_box()
    assert not np.allclose(second.positions, first.positions)
    assert second.info["source"] == "builtin:water_32"


def test_water_box_unknown_size_names_available_sizes() -> None:
    available = ", ".join(str(n) for n in WATER_BOX_SIZES)
    with pytest.raises(ValueError, match=re.escape(f"available sizes: {available}")):
        water_box(999)


def test_make_water_box_builds_a_valid_small_box() -> None:
    atoms = make_water_box(16, seed=3, equilibration_ps=0.2)
    assert_valid_water_box(atoms, 16)
    assert atoms.info["source"] == "builtin:water_16"
    assert atoms.info["seed"] == 3
    assert atoms.info["equilibration_ps"] == 0.2
    assert atoms.info["cutoff_A"] < atoms.cell[0, 0] / 2


def test_make_water_box_refuses_boxes_too_small_for_the_cutoff() -> None:
    assert MIN_MOLECULES == 13  # 0.48 × edge reaches 3.5 Å at 12.9 molecules
    with pytest.raises(ValueError, match=f"at least {MIN_MOLECULES} molecules"):
        make_water_box(MIN_MOLECULES - 1)
    assert len(make_water_box(MIN_MOLECULES, equilibration_ps=0.0)) == 3 * MIN_MOLECULES
