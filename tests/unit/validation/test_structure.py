"""Structure comparison: RDFs, covalent topology, backbone dihedrals, distribution distances."""

from __future__ import annotations

import json
from collections import Counter

import numpy as np
import pytest
from ase import Atoms
from ase.build import bulk, molecule
from scipy.stats import wasserstein_distance

from mlff_distiller.data import structures_from_smiles, water_box
from mlff_distiller.validation.structure import (
    backbone_dihedrals,
    bonded_terms,
    compare_structures,
    distribution_distance,
    measure,
    plot_structures,
    radial_distribution,
    rdf_distance,
)


def _rattled(atoms: Atoms, n: int, stdev: float, seed: int) -> list[Atoms]:
    frames = []
    for k in range(n):
        frame = atoms.copy()
        frame.rattle(stdev, seed=seed + k)
        frames.append(frame)
    return frames


def _coordination(r: np.ndarray, g: np.ndarray, density: float, r_cut: float) -> float:
    """Neighbours within ``r_cut``: density * integral 4 pi r^2 g(r) dr over the bins."""
    dr = r[1] - r[0]
    inside = r < r_cut
    return float(density * np.sum(4 * np.pi * r[inside] ** 2 * g[inside]) * dr)


def _rotation(seed: int = 3) -> np.ndarray:
    q, _ = np.linalg.qr(np.random.default_rng(seed).normal(size=(3, 3)))
    return q * np.sign(np.linalg.det(q))  # proper rotation


@pytest.fixture(scope="module")
def dipeptide() -> Atoms:
    return structures_from_smiles(["CC(=O)NC(C)C(=O)NC"])[0]  # Ace-Ala-NMe


# ------------------------------------------------------------------------------------------ RDF


def test_rdf_of_uniform_random_positions_is_one_at_large_r():
    rng = np.random.default_rng(0)
    frames = [
        Atoms(f"Ar{500}", positions=rng.uniform(0, 20.0, (500, 3)), cell=[20.0] * 3, pbc=True)
        for _ in range(5)
    ]
    r, g = radial_distribution(frames, ("Ar", "Ar"))
    assert r.shape == g.shape == (100,)
    assert r[-1] == pytest.approx(8.0 - 0.04)  # default r_max: min(half of 20 Å, 8 Å)
    large = r > 4.0
    # ~5000 pair counts per bin out there: 1.5 % noise per bin, far less on the mean.
    assert np.mean(g[large]) == pytest.approx(1.0, abs=0.02)
    assert np.all(np.abs(g[large] - 1.0) < 0.1)


def test_rdf_counts_six_nearest_neighbours_on_a_simple_cubic_lattice():
    a = 3.0
    grid = np.array(np.meshgrid(*[np.arange(5)] * 3, indexing="ij")).reshape(3, -1).T * a
    lattice = Atoms(f"Ar{len(grid)}", positions=grid + 0.1, cell=[5 * a] * 3, pbc=True)
    r, g = radial_distribution([lattice], ("Ar", "Ar"), r_max=7.0, bins=140)
    density = len(lattice) / lattice.get_volume()
    assert r[np.flatnonzero(g)[0]] == pytest.approx(a, abs=0.05)  # nothing closer than a
    assert _coordination(r, g, density, 3.5) == pytest.approx(6.0, rel=0.01)
    assert _coordination(r, g, density, 4.5) == pytest.approx(6.0 + 12.0, rel=0.01)  # + a*sqrt 2


def test_rdf_of_a_cross_pair_in_rock_salt():
    salt = bulk("NaCl", "rocksalt", a=5.64, cubic=True).repeat(3)  # 108 Na, 108 Cl
    r, g = radial_distribution([salt], ("Na", "Cl"), bins=200)
    cl_density = 108 / salt.get_volume()
    assert r[-1] < 8.0 and r[g.argmax()] == pytest.approx(2.82, abs=0.05)
    assert _coordination(r, g, cl_density, 3.5) == pytest.approx(6.0, rel=0.01)
    r, g = radial_distribution([salt], ("Na", "Na"), bins=200)
    assert _coordination(r, g, cl_density, 4.5) == pytest.approx(12.0, rel=0.01)  # at a/sqrt 2


def test_rdf_does_not_depend_on_the_orientation_of_a_triclinic_cell():
    cell = np.array([[9.0, 0.0, 0.0], [2.5, 8.5, 0.0], [1.0, 1.5, 9.5]])
    rng = np.random.default_rng(1)
    atoms = Atoms("O60", scaled_positions=rng.uniform(size=(60, 3)), cell=cell, pbc=True)
    rotated = atoms.copy()
    rotation = _rotation()
    rotated.set_cell(atoms.cell.array @ rotation.T, scale_atoms=False)
    rotated.positions = atoms.positions @ rotation.T
    r, g = radial_distribution([atoms], ("O", "O"), bins=40)
    _, g_rotated = radial_distribution([rotated], ("O", "O"), bins=40)
    assert g.sum() > 0
    np.testing.assert_allclose(g_rotated, g, atol=1e-9)


def test_water_rdf_has_the_oxygen_peak_near_2_8_angstrom():
    water = water_box(32)
    r, g = radial_distribution([water], ("O", "O"))
    assert 2.6 < r[g.argmax()] < 3.0 and g.max() > 2.0
    r, g = radial_distribution([water], ("O", "H"))
    assert 0.9 < r[g.argmax()] < 1.1  # the covalent O-H bond


def test_rdf_refuses_molecules_too_large_ranges_and_missing_elements():
    water = water_box(32)
    with pytest.raises(ValueError, match="periodic"):
        radial_distribution([molecule("H2O")], ("O", "H"))
    with pytest.raises(ValueError, match="r_max"):
        radial_distribution([water], ("O", "O"), r_max=6.0)
    with pytest.raises(ValueError, match="more atoms"):
        radial_distribution([water], ("O", "C"))


# ------------------------------------------------------------------------------------- topology


def _symbols(atoms: Atoms, rows: np.ndarray) -> Counter:
    s = atoms.get_chemical_symbols()
    return Counter("".join(sorted(s[i] for i in row)) for row in rows.tolist())


def _check_chains(terms: dict[str, np.ndarray]) -> None:
    bonds = {tuple(sorted(b)) for b in terms["bonds"].tolist()}
    for row in [*terms["angles"].tolist(), *terms["dihedrals"].tolist()]:
        assert all(tuple(sorted(pair)) in bonds for pair in zip(row, row[1:]))
        assert len(set(row)) == len(row)
    for kind in terms:
        rows = [tuple(row) for row in terms[kind].tolist()]
        canonical = {min(row, row[::-1]) for row in rows}
        assert len(canonical) == len(rows), f"{kind} listed twice (once reversed)"


def test_bonded_terms_of_ethanol():
    ethanol = molecule("CH3CH2OH")
    terms = bonded_terms(ethanol)
    # Bonds: 5 C-H, C-C, C-O, O-H. Angles: C(H3) and C(H2) have 4 neighbours -> 6 each,
    # O has 2 -> 1; 13. Dihedrals: about C-C 3 H x (2 H + O) = 9, about C-O (C + 2 H) x H = 3.
    assert [terms[k].shape for k in ("bonds", "angles", "dihedrals")] == [(8, 2), (13, 3), (12, 4)]
    assert all(terms[k].dtype == np.int64 for k in terms)
    assert _symbols(ethanol, terms["bonds"]) == {"CH": 5, "CC": 1, "CO": 1, "HO": 1}
    _check_chains(terms)


def test_bonded_terms_of_rings():
    # Benzene: 12 bonds; each C has 3 neighbours -> 18 angles; about each C-C 2 x 2 = 24.
    benzene = bonded_terms(molecule("C6H6"))
    assert [len(benzene[k]) for k in ("bonds", "angles", "dihedrals")] == [12, 18, 24]
    # Cyclopropane: about each C-C, 3 x 3 chains less the C-C-C-C one that returns to its start.
    cyclopropane = bonded_terms(molecule("C3H6_D3h"))
    assert [len(cyclopropane[k]) for k in ("bonds", "angles", "dihedrals")] == [9, 18, 24]
    _check_chains(cyclopropane)


def test_bonded_terms_across_the_periodic_boundary():
    ethanol = molecule("CH3CH2OH")
    periodic = ethanol.copy()
    periodic.set_cell([10.0, 10.0, 10.0])
    periodic.pbc = True
    periodic.positions += [9.5, 9.5, 0.0]  # the molecule straddles two faces of the box
    periodic.wrap()
    assert np.ptp(periodic.positions[:, 0]) > 5.0
    for kind, expected in bonded_terms(ethanol).items():
        np.testing.assert_array_equal(bonded_terms(periodic)[kind], expected)


def test_backbone_dihedrals_of_alanine_dipeptide(dipeptide):
    found = backbone_dihedrals(dipeptide)
    assert found["phi"].shape == found["psi"].shape == (1, 4)
    symbols = dipeptide.get_chemical_symbols()
    neighbours = [set() for _ in dipeptide]
    for i, j in bonded_terms(dipeptide)["bonds"].tolist():
        neighbours[i].add(j)
        neighbours[j].add(i)

    def is_carbonyl(c):
        return any(symbols[o] == "O" and len(neighbours[o]) == 1 for o in neighbours[c])

    def is_methyl(c):
        return symbols[c] == "C" and sum(symbols[h] == "H" for h in neighbours[c]) == 3

    c_prev, n, ca, c = found["phi"][0].tolist()
    assert found["psi"][0].tolist()[:3] == [n, ca, c]
    n_next = found["psi"][0].tolist()[3]
    assert [symbols[i] for i in (c_prev, n, ca, c, n_next)] == ["C", "N", "C", "C", "N"]
    for i, j in [(c_prev, n), (n, ca), (ca, c), (c, n_next)]:
        assert j in neighbours[i]
    assert is_carbonyl(c_prev) and is_carbonyl(c) and not is_carbonyl(ca)
    assert any(is_methyl(x) for x in neighbours[c_prev])  # acetyl cap
    assert any(is_methyl(x) for x in neighbours[ca])  # alanine's CB
    assert any(is_methyl(x) for x in neighbours[n_next])  # N-methyl cap
    np.testing.assert_array_equal(
        backbone_dihedrals(dipeptide, bonded_terms(dipeptide))["phi"], found["phi"]
    )


def test_backbone_dihedrals_of_non_peptides_and_an_uncapped_dipeptide():
    for atoms in (molecule("CH3CH2OH"), structures_from_smiles(["CC(=O)N"])[0]):  # acetamide
        found = backbone_dihedrals(atoms)
        assert found["phi"].shape == found["psi"].shape == (0, 4)
    # Ala-Ala: the N-terminal residue has a psi (its N is an amine), the C-terminal one a phi.
    ala_ala = structures_from_smiles(["NC(C)C(=O)NC(C)C(=O)O"])[0]
    found = backbone_dihedrals(ala_ala)
    assert found["phi"].shape == found["psi"].shape == (1, 4)
    assert found["psi"][0, 3] == found["phi"][0, 1]  # psi(1) ends on the N of residue 2


def test_ring_amides_are_not_a_backbone_but_glycine_is():
    # Caffeine and uracil have N-C-C(=O)-N chains in their rings, through sp2 carbons; a
    # "psi" there is a rigid ring dihedral near 180 degrees, not a backbone torsion.
    for smiles in ("Cn1cnc2c1c(=O)n(C)c(=O)n2C", "O=C1C=CNC(=O)N1"):
        found = backbone_dihedrals(structures_from_smiles([smiles])[0])
        assert found["phi"].shape == found["psi"].shape == (0, 4), smiles
    # Capped glycine: its alpha carbon is a CH2 (four neighbours), so it has a phi and a psi.
    glycine = structures_from_smiles(["CC(=O)NCC(=O)NC"])[0]
    found = backbone_dihedrals(glycine)
    assert found["phi"].shape == found["psi"].shape == (1, 4)
    assert glycine.get_chemical_symbols()[found["phi"][0, 2]] == "C"


# -------------------------------------------------------------------------------------- measure


def test_measure_bonds_and_angles_match_numpy_frame_by_frame():
    frames = _rattled(molecule("CH3CH2OH"), 3, 0.05, seed=1)
    terms = bonded_terms(frames[0])
    bonds = measure(frames, terms["bonds"], "bonds")
    expected = [
        np.linalg.norm(f.positions[j] - f.positions[i]) for f in frames for i, j in terms["bonds"]
    ]
    np.testing.assert_allclose(bonds, expected, rtol=1e-6)
    angles = measure(frames, terms["angles"], "angles")
    expected = [f.get_angle(i, j, k) for f in frames for i, j, k in terms["angles"]]
    np.testing.assert_allclose(angles, expected, atol=1e-4)
    assert measure(frames, np.zeros((0, 4), dtype=int), "dihedrals").shape == (0,)


@pytest.mark.parametrize("phi", [-179.0, -120.0, -60.0, 0.5, 60.0, 120.0, 179.0])
def test_measure_dihedral_sign_and_range(phi):
    # IUPAC: i along x, j-k along z; looking from j to k, l is rotated by phi clockwise.
    t = np.radians(phi)
    atoms = Atoms("C4", positions=[[1, 0, 0], [0, 0, 0], [0, 0, 1.5], [np.cos(t), np.sin(t), 1.5]])
    value = measure([atoms], np.array([[0, 1, 2, 3]]), "dihedrals")
    assert value[0] == pytest.approx(phi, abs=1e-4)
    assert value[0] % 360 == pytest.approx(atoms.get_dihedral(0, 1, 2, 3), abs=1e-4)


def test_measure_across_the_periodic_boundary_uses_the_minimum_image():
    t = np.radians(-75.0)
    chain = np.array([[1.2, 0, 0], [0, 0, 0], [0, 0, 1.5], [np.cos(t), np.sin(t), 1.5]])
    cell = np.array([[8.0, 0.0, 0.0], [1.5, 7.5, 0.0], [0.5, 1.0, 7.8]]) @ _rotation().T
    atoms = Atoms("C4", positions=chain - [0.3, 0.2, 0.8], cell=cell, pbc=True)
    atoms.wrap()
    assert np.ptp(atoms.positions, axis=0).max() > 4.0  # the chain is really cut by the box
    quad = np.array([[0, 1, 2, 3]])
    assert measure([atoms], quad, "dihedrals")[0] == pytest.approx(-75.0, abs=1e-4)
    assert measure([atoms], quad[:, 1:], "angles")[0] == pytest.approx(90.0, abs=1e-4)
    assert measure([atoms], quad[:, :2], "bonds")[0] == pytest.approx(1.2, abs=1e-5)
    molecule_view = Atoms("C4", positions=atoms.positions)
    assert measure([molecule_view], quad[:, :2], "bonds")[0] > 2.0


def test_measure_refuses_bad_kinds_and_indices():
    ethanol = molecule("CH3CH2OH")
    with pytest.raises(ValueError, match="kind"):
        measure([ethanol], np.array([[0, 1]]), "torsions")
    with pytest.raises(ValueError, match="indices"):
        measure([ethanol], np.array([[0, 9]]), "bonds")
    with pytest.raises(ValueError, match="same atoms"):
        measure([ethanol, molecule("H2O")], np.array([[0, 1]]), "bonds")


# ------------------------------------------------------------------------------------ distances


def test_distribution_distance_identical_disjoint_and_shifted():
    rng = np.random.default_rng(0)
    bonds = rng.normal(1.0, 0.05, 2000)
    same = distribution_distance(bonds, bonds.copy(), "bonds")
    assert same["total_variation"] == 0.0 and same["wasserstein"] == 0.0
    assert same["mean_reference"] == same["mean_sample"] == pytest.approx(bonds.mean())
    disjoint = distribution_distance(bonds, bonds + 1.0, "bonds")
    assert disjoint["total_variation"] == pytest.approx(1.0)
    shifted = distribution_distance(bonds, bonds + 0.1, "bonds")
    assert shifted["wasserstein"] == pytest.approx(0.1)
    assert shifted["mean_sample"] - shifted["mean_reference"] == pytest.approx(0.1)
    assert 0.3 < shifted["total_variation"] < 0.95
    with pytest.raises(ValueError, match="kind"):
        distribution_distance(bonds, bonds, "rdf")
    with pytest.raises(ValueError, match="non-empty"):
        distribution_distance(bonds, np.array([]), "bonds")


def _wrap(x):
    return (x + 180.0) % 360.0 - 180.0


def test_circular_distance_of_dihedrals_straddling_180():
    rng = np.random.default_rng(1)
    reference = _wrap(rng.normal(180.0, 10.0, 2000))
    sample = _wrap(rng.normal(180.0, 10.0, 2000))
    d = distribution_distance(reference, sample, "dihedrals")
    assert d["wasserstein"] < 1.5 and d["total_variation"] < 0.1
    for mean in (d["mean_reference"], d["mean_sample"]):
        assert abs(_wrap(mean - 180.0)) < 1.0
    shifted = distribution_distance(reference, _wrap(reference + 3.0), "dihedrals")
    assert shifted["wasserstein"] == pytest.approx(3.0)
    # Just below +180 against just above -180: 4 degrees apart on the circle.
    below, above = _wrap(rng.normal(178.0, 0.5, 500)), _wrap(rng.normal(-178.0, 0.5, 500))
    assert wasserstein_distance(below, above) > 350.0  # what a linear distance would say
    circular = distribution_distance(below, above, "dihedrals")["wasserstein"]
    assert circular == pytest.approx(4.0, abs=0.15)


def test_circular_distance_equals_the_linear_one_away_from_the_cut():
    rng = np.random.default_rng(2)
    reference, sample = rng.normal(-20.0, 15.0, 500), rng.normal(10.0, 20.0, 700)
    d = distribution_distance(reference, sample, "dihedrals")
    assert d["wasserstein"] == pytest.approx(wasserstein_distance(reference, sample), rel=1e-9)
    # Angles in [0, 360) are the same dihedrals.
    again = distribution_distance(reference % 360.0, sample % 360.0, "dihedrals")
    assert again["wasserstein"] == pytest.approx(d["wasserstein"], rel=1e-9)
    assert again["total_variation"] == pytest.approx(d["total_variation"])


def test_rdf_distance():
    r = np.linspace(0.0, 6.0, 61)
    g = np.exp(-((r - 3.0) ** 2))
    assert rdf_distance(r, g, g) == 0.0
    assert rdf_distance(r, g, np.zeros_like(g)) == pytest.approx(1.0)
    assert rdf_distance(r, g, 1.5 * g) == pytest.approx(0.5)
    with pytest.raises(ValueError, match="zero everywhere"):
        rdf_distance(r, np.zeros_like(g), g)


# ---------------------------------------------------------------------------- compare and plot


def _check_png(path, tmp_path):
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert [p.name for p in tmp_path.iterdir()] == [path.name]  # no temporary file left


def test_compare_and_plot_water(tmp_path):
    water = water_box(32)
    comparison = compare_structures(
        _rattled(water, 2, 0.03, seed=1), _rattled(water, 2, 0.03, seed=10)
    )
    comparison = json.loads(json.dumps(comparison))
    assert comparison["kind"] == "liquid" and set(comparison) == {"kind", "rdf"}
    assert sorted(comparison["rdf"]) == ["H-H", "O-H", "O-O"]
    for result in comparison["rdf"].values():
        assert len(result["r"]) == len(result["g_reference"]) == len(result["g_sample"]) == 100
        assert 0.0 < result["distance"] < 0.3
    path = plot_structures(comparison, tmp_path / "water.png", "water-32")
    _check_png(path, tmp_path)


def test_compare_and_plot_ethanol(tmp_path):
    ethanol = molecule("CH3CH2OH")
    reference, sample = _rattled(ethanol, 4, 0.02, seed=1), _rattled(ethanol, 4, 0.05, seed=20)
    comparison = compare_structures(reference, sample)
    assert set(comparison) == {"kind", "bonds", "angles", "dihedrals"}
    assert comparison["kind"] == "molecule"
    assert comparison["dihedrals"]["n_terms"] == 12
    # The student frames are rattled more: a broader bond distribution, not a shifted one.
    assert comparison["bonds"]["wasserstein"] > 0.005
    assert sum(comparison["bonds"]["p_sample"]) == pytest.approx(1.0)
    assert len(comparison["angles"]["bin_edges"]) == len(comparison["angles"]["p_reference"]) + 1
    identical = compare_structures(reference, reference)
    assert all(identical[k]["total_variation"] == 0.0 for k in ("bonds", "angles", "dihedrals"))
    path = plot_structures(json.loads(json.dumps(comparison)), tmp_path / "ethanol.png", "ethanol")
    _check_png(path, tmp_path)


def test_compare_includes_backbone_dihedrals_of_a_peptide(dipeptide, tmp_path):
    comparison = compare_structures(
        _rattled(dipeptide, 2, 0.02, 1), _rattled(dipeptide, 2, 0.02, 5)
    )
    assert {"phi", "psi"} <= set(comparison)
    assert comparison["phi"]["n_terms"] == comparison["psi"]["n_terms"] == 1
    assert -180.0 < comparison["phi"]["mean_reference"] <= 180.0
    json.dumps(comparison)
    _check_png(plot_structures(comparison, tmp_path / "dipeptide.png", "Ace-Ala-NMe"), tmp_path)


def test_compare_refuses_different_systems():
    with pytest.raises(ValueError, match="same atoms"):
        compare_structures([molecule("CH3CH2OH")], [molecule("H2O")])
    with pytest.raises(ValueError, match="at least one"):
        compare_structures([molecule("H2O")], [])
    with pytest.raises(ValueError, match="nothing to plot"):
        plot_structures({"kind": "molecule"}, "unused.png", "empty")
