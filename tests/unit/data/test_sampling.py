"""Sampling strategies: amplitudes, physics of normal-mode sampling, MD, reproducibility."""

from __future__ import annotations

import numpy as np
import pytest
from ase import Atoms, units
from ase.build import bulk, molecule

from mlff_distiller.data import (
    build_structures,
    md_sampling,
    normal_mode_sampling,
    perturb,
    rattle_strain,
)
from mlff_distiller.data.sampling import hessian
from mlff_distiller.errors import InputError


def test_perturb_has_the_requested_amplitude_and_is_reproducible():
    parent = molecule("C6H6")
    parent.info.update(group="benzene", source="test")
    samples = perturb([parent], n_samples=200, amplitude=0.04, seed=5)
    displacements = np.array([s.positions - parent.positions for s in samples])
    assert displacements.std() == pytest.approx(0.04, rel=0.03)
    assert abs(displacements.mean()) < 0.002
    assert samples[0].info["group"] == "benzene" and samples[0].info["source"] == "test"
    assert samples[0].info["sampling"] == {
        "method": "perturb",
        "seed": 5,
        "amplitude_A": 0.04,
        "index": 0,
    }
    again = perturb([parent], n_samples=200, amplitude=0.04, seed=5)
    np.testing.assert_array_equal(again[17].positions, samples[17].positions)
    other = perturb([parent], n_samples=1, amplitude=0.04, seed=6)
    assert not np.allclose(other[0].positions, samples[0].positions)
    with pytest.raises(ValueError, match="amplitude must be positive"):
        perturb([parent], 1, amplitude=0)


def test_samples_of_one_parent_do_not_depend_on_the_others():
    a, b = molecule("H2O"), molecule("NH3")
    alone = perturb([a], 2, seed=1)
    together = perturb([a, b], 2, seed=1)
    np.testing.assert_array_equal(alone[1].positions, together[1].positions)


def test_rattle_strain_strains_the_cell_within_bounds():
    cell = bulk("Cu", cubic=True) * (2, 2, 2)
    samples = rattle_strain([cell], n_samples=50, rattle=0.0 + 1e-9, max_strain=0.02, seed=0)
    for sample in samples:
        deformation = np.linalg.solve(cell.cell.array, sample.cell.array)
        strain = deformation - np.eye(3)
        np.testing.assert_allclose(strain, strain.T, atol=1e-12)
        assert np.abs(strain).max() <= 0.02 + 1e-12
        # atoms move with the cell (scaled positions kept, up to the tiny rattle)
        np.testing.assert_allclose(
            sample.get_scaled_positions(wrap=False),
            cell.get_scaled_positions(wrap=False),
            atol=1e-8,
        )
    assert np.std([s.get_volume() for s in samples]) > 0
    with pytest.raises(ValueError, match="fully periodic"):
        rattle_strain([molecule("H2O")], 1)


def test_normal_mode_sampling_has_the_boltzmann_harmonic_energy(sevennet):
    """Classical normal-mode sampling puts kT/2 of harmonic energy in each vibrational mode."""
    water = molecule("H2O")
    temperature = 300.0
    samples = normal_mode_sampling(
        [water], sevennet, n_samples=400, temperature_K=temperature, seed=3, min_frequency_cm=1.0
    )
    hess = hessian(water, sevennet)
    energies = []
    for sample in samples:
        dx = (sample.positions - water.positions).reshape(-1)
        energies.append(0.5 * dx @ hess @ dx)
    n_vib = 3
    expected = n_vib * 0.5 * units.kB * temperature
    assert np.mean(energies) == pytest.approx(expected, rel=0.15)
    # Rigid-body modes are not excited: the centre of mass stays put.
    masses = water.get_masses()
    com_shift = [
        (masses[:, None] * (s.positions - water.positions)).sum(0) / masses.sum() for s in samples
    ]
    assert np.abs(com_shift).max() < 2e-3
    with pytest.raises(ValueError, match="for molecules"):
        normal_mode_sampling([bulk("Cu")], sevennet, 1)


def test_md_sampling_keeps_every_kth_frame_and_is_reproducible(sevennet):
    water = molecule("H2O")
    water.info["group"] = "water"
    frames = md_sampling([water], sevennet, n_frames=3, every=4, temperature_K=600, seed=2)
    assert [f.info["sampling"]["step"] for f in frames] == [4, 8, 12]
    assert frames[0].info["group"] == "water"
    assert all(f.calc is None for f in frames)
    moved = [np.abs(f.positions - water.positions).max() for f in frames]
    assert min(moved) > 1e-4
    again = md_sampling([water], sevennet, n_frames=3, every=4, temperature_K=600, seed=2)
    np.testing.assert_allclose(again[-1].positions, frames[-1].positions, atol=1e-10)


def test_recipe_applies_each_step_to_what_it_suits():
    from mlff_distiller.data import water_box

    recipe = {
        "sources": ["smiles:O,CCO", "builtin:water-32"],
        "sampling": [
            {"method": "perturb", "n_samples": 2},
            {"method": "rattle_strain", "n_samples": 3},
        ],
    }
    structures = build_structures(recipe)
    assert len(structures) == 3 + 3 * 2 + 3
    assert sum(1 for s in structures if s.pbc.all()) == 1 + 2 + 3
    assert len(structures[0]) == 3 and len(water_box(32)) == 96
    import yaml

    narrowed = build_structures(  # as a YAML config writes it
        yaml.safe_load(
            """
            sources: ["smiles:O,CCO", "builtin:water-32"]
            sampling:
              - {method: perturb, n_samples: 2, apply_to: cells}
              - {method: perturb, n_samples: 3, apply_to: molecules}
            """
        )
    )
    assert len(narrowed) == 3 + 2 + 2 * 3
    assert [s.pbc.all() for s in narrowed[3:5]] == [True, True]
    assert not any(s.pbc.any() for s in narrowed[5:])
    with pytest.raises(ValueError, match="apply_to: 'boxes'; use one of all, molecules, cells"):
        build_structures(
            {"sources": ["smiles:O"], "sampling": [{"method": "perturb", "apply_to": "boxes"}]}
        )
    with pytest.raises(ValueError, match="unknown structure option"):
        build_structures({"sources": ["smiles:O"], "samplng": []})
    with pytest.raises(ValueError, match="has method 'jiggle'"):
        build_structures({"sources": ["smiles:O"], "sampling": [{"method": "jiggle"}]})
    with pytest.raises(ValueError, match="needs a teacher"):
        build_structures({"sources": ["smiles:O"], "sampling": [{"method": "md", "n_frames": 1}]})
    with pytest.raises(ValueError, match="no structure sources"):
        build_structures({})
    for key, value in (("n_samples", -3), ("n_samples", 2.5), ("n_frames", -1)):
        with pytest.raises(ValueError, match=f"{key} must be a whole number >= 0, got {value}"):
            build_structures(
                {"sources": ["smiles:O"], "sampling": [{"method": "perturb", key: value}]}
            )
    with pytest.raises(ValueError, match="conformers must be a whole number >= 1, got 0"):
        build_structures({"sources": ["smiles:O"], "conformers": 0})
    with pytest.raises(ValueError, match="driver 'nope.pt' does not exist"):
        build_structures(
            {"sources": ["smiles:O"], "sampling": [{"method": "md", "driver": "nope.pt"}]}
        )
    with pytest.raises(ValueError, match="takes no driver"):
        build_structures(
            {"sources": ["smiles:O"], "sampling": [{"method": "perturb", "driver": __file__}]}
        )


def test_a_step_with_sources_samples_only_what_those_sources_gave():
    """``sources:`` narrows a step to the structures of some of the recipe's sources (here
    both conformers of the two SMILES of one source, not the other source's molecule)."""
    recipe = {
        "sources": ["smiles:O,CCO", "smiles:CC"],
        "conformers": 2,
        "sampling": [
            {"method": "perturb", "n_samples": 1},
            {"method": "perturb", "n_samples": 3, "sources": ["smiles:CC"]},
            {"method": "perturb", "n_samples": 2, "sources": ["smiles:O,CCO"]},
        ],
    }
    structures = build_structures(recipe)
    originals = structures[:6]
    assert [a.get_chemical_formula() for a in originals] == ["H2O"] * 2 + ["C2H6O"] * 2 + [
        "C2H6"
    ] * 2
    narrowed = structures[6 + 6 :]
    assert [a.get_chemical_formula() for a in narrowed[:6]] == ["C2H6"] * 6
    assert sorted({a.get_chemical_formula() for a in narrowed[6:]}) == ["C2H6O", "H2O"]
    assert len(narrowed[6:]) == 4 * 2
    with pytest.raises(ValueError, match="sources smiles:CCC are not among the recipe's sources"):
        build_structures({**recipe, "sampling": [{"method": "perturb", "sources": ["smiles:CCC"]}]})
    with pytest.raises(ValueError, match="sources must be a list"):
        build_structures({**recipe, "sampling": [{"method": "perturb", "sources": "smiles:CC"}]})


def test_md_driven_by_a_student_needs_no_teacher_and_says_so(tmp_path, make_student_checkpoint):
    """A ``driver:`` student runs the MD (tens of times cheaper than the teacher); the frames
    move, are reproducible and record which student drove them."""
    from mlff_distiller.data.recipe import needs_calculator

    driver = make_student_checkpoint(tmp_path / "best.pt", ("H", "C", "O"))
    step = {"method": "md", "driver": str(driver), "n_frames": 3, "every": 5,
            "temperature_K": 300}  # fmt: skip
    recipe = {"sources": ["smiles:CCO"], "include_originals": False, "sampling": [step]}
    assert not needs_calculator(recipe)
    frames = build_structures(recipe)  # no teacher given
    again = build_structures(recipe)
    assert len(frames) == 3 and all(f.calc is None for f in frames)
    assert frames[0].info["sampling"]["driver"] == "best.pt"
    assert np.abs(frames[2].positions - frames[0].positions).max() > 1e-3
    np.testing.assert_allclose(again[2].positions, frames[2].positions, atol=1e-10)


class _GivesUp:
    """Wraps a real student calculator and refuses one molecule from its ``after``-th forces
    call on, with the error the exported module gives when a student pulls two atoms
    together (a blow-up cannot be provoked on demand in a few steps of a good student; this
    stands in for one)."""

    def __init__(self, calculator, n_atoms: int, after: int):
        self.calculator, self.n_atoms, self.after, self.calls = calculator, n_atoms, after, 0

    def __getattr__(self, name):
        return getattr(self.calculator, name)

    def get_property(self, name, atoms=None, allow_calculation=True):
        if name == "forces" and atoms is not None and len(atoms) == self.n_atoms:
            self.calls += 1
            if self.calls >= self.after:
                raise InputError("atoms 7 and 8 are 0.050 Å apart, closer than 0.100 Å")
        return self.calculator.get_property(name, atoms, allow_calculation)

    def get_forces(self, atoms=None):
        return self.get_property("forces", atoms)

    def get_potential_energy(self, atoms=None, force_consistent=False):
        return self.get_property("energy", atoms)


def test_md_sampling_cuts_a_trajectory_its_driver_gives_up_on_and_keeps_the_rest(
    tmp_path, make_student_checkpoint
):
    """A student driving MD outside what it learned can collapse a molecule; that trajectory
    ends with the frames it gave, the others go on, and a warning names it. A structure the
    calculator refuses before any step is the input's fault and still raises."""
    from mlff_distiller import StudentCalculator
    from mlff_distiller.data import load_source

    driver = StudentCalculator(str(make_student_checkpoint(tmp_path / "best.pt", ("H", "C", "O"))))
    ethanol, water = load_source("smiles:CCO")[0], load_source("smiles:O")[0]
    assert len(ethanol) == 9
    give_up = _GivesUp(driver, n_atoms=9, after=24)  # ~3 asks a step: frame 2
    with pytest.warns(UserWarning, match=r"cut 1 of 2 trajectories.*after 1 of 3 frames"):
        frames = md_sampling([ethanol, water], give_up, n_frames=3, every=5, temperature_K=300)
    assert [len(f) for f in frames] == [9, 3, 3, 3]
    assert [f.info["sampling"]["step"] for f in frames] == [5, 5, 10, 15]

    at_once = _GivesUp(driver, n_atoms=9, after=1)
    with pytest.raises(InputError, match="closer than"):
        md_sampling([ethanol], at_once, n_frames=3, every=5, temperature_K=300)


def test_needs_calculator_only_for_teacher_driven_sampling():
    from mlff_distiller.data.recipe import needs_calculator

    assert not needs_calculator({"sources": ["smiles:O"]})
    assert not needs_calculator({"sampling": [{"method": "perturb"}, {"method": "rattle_strain"}]})
    assert needs_calculator({"sampling": [{"method": "perturb"}, {"method": "md"}]})
    assert needs_calculator({"sampling": [{"method": "normal_modes"}]})
    assert not needs_calculator({"sampling": [{"method": "md", "driver": "student.pt"}]})


def test_torsion_sampling_turns_rotatable_bonds_only():
    from mlff_distiller.data import structures_from_smiles, torsion_sampling
    from mlff_distiller.data.sampling import _bond_graph, rotatable_bonds

    dipeptide = structures_from_smiles(["CC(=O)N[C@@H](C)C(=O)NC"], seed=0)[0]
    # Heavy atoms in SMILES order: 0 C, 1 C(=O), 2 O, 3 N, 4 CA, 5 CB, 6 C(=O), 7 O, 8 N, 9 C.
    phi, psi = (1, 3, 4, 6), (3, 4, 6, 8)
    bonds = {frozenset((b, c)) for b, c, _ in rotatable_bonds(dipeptide)}
    assert {frozenset((3, 4)), frozenset((4, 6))} <= bonds
    assert frozenset((1, 2)) not in bonds  # the carbonyl O has no other neighbour

    samples = torsion_sampling([dipeptide], n_samples=40, rattle=0.0, seed=3)
    assert len(samples) == 40
    graph = _bond_graph(dipeptide)
    pairs = [(k, m) for k in range(len(dipeptide)) for m in graph[k] if m > k]
    for sample in samples:  # rigid rotations: every bond length is kept
        for k, m in pairs:
            assert sample.get_distance(k, m) == pytest.approx(
                dipeptide.get_distance(k, m), abs=1e-9
            )
    phis = np.array([s.get_dihedral(*phi) for s in samples])
    psis = np.array([s.get_dihedral(*psi) for s in samples])
    # Spread over the circle, not a few degrees around the embedded conformer.
    for angles in (phis, psis):
        assert np.histogram(angles, bins=4, range=(0, 360))[0].min() >= 3

    again = torsion_sampling([dipeptide], n_samples=40, rattle=0.0, seed=3)
    assert all(np.array_equal(a.positions, b.positions) for a, b in zip(samples, again))
    assert samples[0].info["sampling"]["method"] == "torsions"

    benzene = structures_from_smiles(["c1ccccc1"])[0]
    assert rotatable_bonds(benzene) == []  # ring bonds and C-H bonds do not turn
    assert torsion_sampling([benzene], n_samples=3) == []
    with pytest.raises(ValueError, match="for molecules"):
        torsion_sampling([bulk("Cu", cubic=True)], n_samples=1)


def test_compress_bonds_squeezes_one_bond_into_the_window_and_nothing_else():
    from ase.data import covalent_radii

    from mlff_distiller.data import compress_bonds

    ethanol = molecule("CH3CH2OH")
    samples = compress_bonds([ethanol], n_samples=30, low=0.7, high=0.9, rattle=0.0, seed=1)
    assert len(samples) == 30
    before = ethanol.get_all_distances()
    pairs = set()
    for sample in samples:
        info = sample.info["sampling"]
        i, j = info["pair"]
        pairs.add((i, j))
        rsum = covalent_radii[ethanol.numbers[i]] + covalent_radii[ethanol.numbers[j]]
        assert 0.7 * rsum <= sample.get_distance(i, j) <= 0.9 * rsum
        assert sample.get_distance(i, j) == pytest.approx(info["factor"] * rsum, abs=1e-12)
        # Only the two atoms of the bond moved, along the bond, by the same amount.
        moved = np.flatnonzero(np.linalg.norm(sample.positions - ethanol.positions, axis=1) > 0)
        assert sorted(moved.tolist()) == [i, j]
        assert np.allclose(sample.positions[[i, j]].mean(0), ethanol.positions[[i, j]].mean(0))
        assert before[i, j] < 1.2 * rsum  # a bond, not any pair
    assert len(pairs) > 3  # the bond is drawn at random
    again = compress_bonds([ethanol], n_samples=30, low=0.7, high=0.9, rattle=0.0, seed=1)
    assert all(np.array_equal(a.positions, b.positions) for a, b in zip(samples, again))
    assert compress_bonds([Atoms("Ar")], n_samples=2) == []
    with pytest.raises(ValueError, match="low <= high"):
        compress_bonds([ethanol], n_samples=1, low=0.9, high=0.7)


def test_compress_contacts_squeezes_non_bonded_pairs_and_keeps_every_bond():
    """Two waters of a periodic box brought into contact move whole (their bonds keep their
    lengths to 1e-12 Å); two atoms of one molecule move alone; the pair is never bonded."""
    from ase.data import covalent_radii

    from mlff_distiller.data import compress_contacts, water_box

    box = water_box(32)
    samples = compress_contacts([box], n_samples=40, low=0.6, high=0.9, rattle=0.0, seed=2)
    assert len(samples) == 40
    before = box.get_all_distances(mic=True)
    kinds = set()
    for sample in samples:
        info = sample.info["sampling"]
        i, j = info["pair"]
        rsum = covalent_radii[box.numbers[i]] + covalent_radii[box.numbers[j]]
        assert before[i, j] >= 1.2 * rsum and before[i, j] <= 3.5  # not bonded, nearby
        assert sample.get_distance(i, j, mic=True) == pytest.approx(info["factor"] * rsum)
        assert 0.6 * rsum - 1e-9 <= sample.get_distance(i, j, mic=True) <= 0.9 * rsum + 1e-9
        same_molecule = i // 3 == j // 3  # water_box: O, H, H per molecule
        kinds.add(same_molecule)
        moved = np.flatnonzero(np.linalg.norm(sample.positions - box.positions, axis=1) > 1e-12)
        if same_molecule:
            assert sorted(moved.tolist()) == [i, j]
        else:
            assert sorted(moved.tolist()) == sorted(
                {*range(3 * (i // 3), 3 * (i // 3) + 3), *range(3 * (j // 3), 3 * (j // 3) + 3)}
            )
            for m in (i // 3, j // 3):  # each water moved rigidly: its bonds are as before
                for a, b in ((0, 1), (0, 2), (1, 2)):
                    d = sample.get_distance(3 * m + a, 3 * m + b, mic=True)
                    assert d == pytest.approx(before[3 * m + a, 3 * m + b], abs=1e-12)
    assert kinds == {True, False}  # H-H of one water and pairs of two waters both drawn
    assert compress_contacts([Atoms("Ar")], n_samples=2) == []
    with pytest.raises(ValueError, match="within > 0"):
        compress_contacts([box], n_samples=1, within=0.0)


def test_squeeze_cells_scales_the_cell_and_keeps_every_molecule_whole():
    """A squeezed water box: the cell is scaled by the drawn factor in [low, high], every
    water's bonds keep their lengths (to 1e-12 Å, across the boundary too) and its centre
    moves with the cell; the density rises as factor**-3; a recipe step names it."""
    from mlff_distiller.data import squeeze_cells, water_box, whole_molecules

    box = water_box(32)
    box.positions[1] += box.cell.array[0]  # one hydrogen stored an image away from its O
    whole, ids, endless = whole_molecules(box)
    assert len(set(ids)) == 32 and not endless.any()
    assert np.linalg.norm(whole[1] - whole[0]) < 1.1  # made whole again
    samples = squeeze_cells([box], n_samples=12, low=0.8, high=0.95, rattle=0.0, seed=3)
    assert len(samples) == 12
    factors = [s.info["sampling"]["factor"] for s in samples]
    assert all(0.8 <= f <= 0.95 for f in factors) and len(set(factors)) == 12
    for sample, factor in zip(samples, factors):
        np.testing.assert_allclose(sample.cell.array, factor * box.cell.array, rtol=1e-14)
        assert sample.get_volume() == pytest.approx(factor**3 * box.get_volume(), rel=1e-12)
        for m in range(32):
            for a, b in ((0, 1), (0, 2), (1, 2)):
                d = sample.get_distance(3 * m + a, 3 * m + b, mic=True)
                assert d == pytest.approx(
                    box.get_distance(3 * m + a, 3 * m + b, mic=True), abs=1e-12
                )
        # the centre of each water, in the cell's fractional coordinates, does not move
        inside = sample.get_scaled_positions(wrap=False)
        centre = np.array(
            [whole_molecules(sample)[0][3 * m : 3 * m + 3].mean(0) for m in range(32)]
        )
        before = np.array([whole[3 * m : 3 * m + 3].mean(0) for m in range(32)])
        shift = centre @ np.linalg.inv(sample.cell.array) - before @ np.linalg.inv(box.cell.array)
        np.testing.assert_allclose(shift - np.round(shift), 0.0, atol=1e-12)
        assert inside.min() >= 0.0 and inside.max() < 1.0  # wrapped back into the cell
    rattled = squeeze_cells([box], n_samples=1, low=0.9, high=0.9, rattle=0.05, seed=3)[0]
    still = squeeze_cells([box], n_samples=1, low=0.9, high=0.9, rattle=0.0, seed=3)[0]
    moved = (rattled.positions - still.positions) @ np.linalg.inv(still.cell.array)
    moved = (moved - np.round(moved)) @ still.cell.array  # minimum image: wrapping aside
    assert np.std(moved) == pytest.approx(0.05, rel=0.2)
    with pytest.raises(ValueError, match="needs fully periodic cells"):
        squeeze_cells([molecule("H2O")], n_samples=1)
    with pytest.raises(ValueError, match="0 < low <= high"):
        squeeze_cells([box], n_samples=1, low=0.9, high=0.8)
    recipe = {"sources": ["smiles:O", "builtin:water-32"],
              "sampling": [{"method": "squeeze", "n_samples": 3, "low": 0.85}]}  # fmt: skip
    built = build_structures(recipe)
    assert [s.info.get("sampling", {}).get("method") for s in built[2:]] == ["squeeze"] * 3


def test_squeeze_cells_scales_a_covalent_network_with_its_cell():
    """Diamond is one molecule bonded to its own images: it has no centre to move, so every
    atom moves with the cell and every bond shortens by the factor (moving it whole would
    leave the bonds across the boundary to take the whole squeeze)."""
    from mlff_distiller.data import squeeze_cells, whole_molecules

    for crystal in (bulk("C", "diamond", a=3.57), bulk("C", "diamond", a=3.57, cubic=True)):
        assert whole_molecules(crystal)[2].all()
        (sample,) = squeeze_cells([crystal], n_samples=1, low=0.9, high=0.9, rattle=0.0)
        np.testing.assert_allclose(
            sample.get_scaled_positions(), crystal.get_scaled_positions(), atol=1e-12
        )
        shortest = sample.get_all_distances(mic=True)[np.triu_indices(len(sample), 1)].min()
        assert shortest == pytest.approx(0.9 * 3.57 * np.sqrt(3) / 4, rel=1e-9)


def test_compress_bonds_finds_bonds_across_a_periodic_boundary():
    from mlff_distiller.data import compress_bonds

    water = Atoms(
        "OH2",
        positions=[[0.1, 5.0, 5.0], [-0.86, 5.0, 5.0], [0.34, 5.93, 5.0]],
        cell=[10.0, 10.0, 10.0],
        pbc=True,
    )
    water.wrap()  # the first H now sits at x = 9.14, bonded to O across the boundary
    samples = compress_bonds([water], n_samples=20, low=0.8, high=0.8, rattle=0.0, seed=0)
    assert {tuple(s.info["sampling"]["pair"]) for s in samples} == {(0, 1), (0, 2)}
    for sample in samples:
        i, j = sample.info["sampling"]["pair"]
        assert sample.get_distance(i, j, mic=True) == pytest.approx(0.8 * (0.66 + 0.31))


def test_recipe_steps_are_cached_so_one_more_step_computes_only_that_step(tmp_path):
    from mlff_distiller.data.cache import read_structure_cache, write_structure_cache

    steps = [
        {"method": "perturb", "n_samples": 2, "amplitude": 0.05},
        {"method": "torsions", "n_samples": 2},
    ]
    recipe = {"sources": ["smiles:CCO"], "seed": 4, "sampling": steps}
    cache = tmp_path / "steps"
    plain = build_structures(recipe)
    cached = build_structures(recipe, cache_dir=cache)
    assert [np.array_equal(a.positions, b.positions) for a, b in zip(plain, cached)] == [True] * 5
    files = sorted(p.name for p in cache.iterdir())
    assert [f.split("-")[:3] for f in files] == [
        ["step", "00", "perturb"],
        ["step", "01", "torsions"],
    ]
    # A rerun reads the steps' files (proved by editing one) instead of sampling again ...
    first = cache / files[0]
    edited = read_structure_cache(first)
    edited[0].positions[0] += 1.0
    write_structure_cache(edited, first)
    again = build_structures(recipe, cache_dir=cache)
    assert np.array_equal(again[1].positions, edited[0].positions)
    # ... a recipe with one more step computes that step alone ...
    longer = {**recipe, "sampling": [*steps, {"method": "compress", "n_samples": 3}]}
    grown = build_structures(longer, cache_dir=cache)
    assert len(grown) == 8 and np.array_equal(grown[1].positions, edited[0].positions)
    assert grown[-1].info["sampling"]["method"] == "compress"
    # ... and a changed step is computed anew, its old file removed.
    changed = {**recipe, "sampling": [{**steps[0], "amplitude": 0.02}, steps[1]]}
    build_structures(changed, cache_dir=cache)
    now = sorted(p.name for p in cache.iterdir())
    assert len(now) == 2 and files[0] not in now and files[1] in now
