"""The physics every student preset must respect (DESIGN.md, "Physics the students must
respect"), checked on randomly initialised students by the same parametrised tests:
conservative forces and stress (finite differences), invariances, a smooth cutoff,
periodic images (including cells shorter than twice the cutoff), locality, a repulsive
core without NaN, TorchScript parity and float32/float64 agreement.

The students are untrained; their parameters get extra random noise (seeded) so that the
energy surface is far from flat and a broken derivative or symmetry shows up clearly.
"""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from ase import Atoms
from ase.build import molecule
from scipy.spatial.transform import Rotation

from mlff_distiller.models import PRESETS, build_graph, build_model, collate, evaluate
from mlff_distiller.models.segments import centre_slots, species_slots

ELEMENTS = ["H", "C", "O"]
VOIGT = [(0, 0), (1, 1), (2, 2), (1, 2), (0, 2), (0, 1)]


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    """Graphs here have tens of edges: one thread is much faster than two fighting over
    a shared machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


#: Pair floors that put methanol's H-H (1.78 Å) and C-O (1.43 Å) pairs inside their
#: moved switching ranges, so every physics test crosses them.
FLOORS = {"H-H": 1.9, "C-O": 1.5, "H-O": 0.5}
#: Every preset, the tensor-moment student at the angular orders no preset uses yet, a core
#: switching range moved outwards and pair floors.
VARIANTS = {name: (name, {}) for name in PRESETS} | {
    "tiny-l3/max_rank=4": ("tiny-l3", {"max_rank": 4}),
    "tiny-l3/max_rank=6": ("tiny-l3", {"max_rank": 6}),
    "tiny/core_window=[0.6,0.8]": ("tiny", {"core_window": [0.6, 0.8]}),
    "tiny/pair_floors": ("tiny", {"pair_floors": FLOORS}),
    "tiny-l3/pair_floors": ("tiny-l3", {"pair_floors": FLOORS}),
}


def random_student(preset: str, seed: int = 0, **overrides) -> torch.nn.Module:
    """A float64 student of ``preset`` (with ``overrides``) with noisy random weights and
    non-zero element shifts."""
    torch.manual_seed(seed)
    model = build_model(preset, ELEMENTS, avg_neighbors=4.0, **overrides)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.1 * torch.randn_like(p))
        model.energy_shift.copy_(torch.tensor([-1.3, -2.9, -4.1]))
        model.energy_scale.fill_(1.0)
    return model.double().eval()


@pytest.fixture(scope="module", params=list(VARIANTS))
def model(request):
    preset, overrides = VARIANTS[request.param]
    return random_student(preset, **overrides)


def predict(model, atoms: Atoms, stress: bool = False, dtype=torch.float64, cutoff=None):
    """Energy, per-atom energies, forces (and stress, 3×3) of one structure, as numpy."""
    cutoff = float(model.cutoff) if cutoff is None else cutoff
    graph = build_graph(atoms, cutoff, [int(z) for z in model.atomic_numbers])
    out = evaluate(model, collate([graph], dtype), compute_stress=stress)
    result = {
        "energy": float(out["energy"][0].detach()),
        "energies": out["atomic_energies"].detach().double().numpy(),
        "forces": out["forces"].detach().double().numpy(),
    }
    if stress:
        result["stress"] = out["stress"][0].detach().double().numpy()
    return result


def methanol() -> Atoms:
    atoms = molecule("CH3OH")
    atoms.rattle(0.05, seed=1)
    return atoms


def triclinic() -> Atoms:
    """Four atoms in a skewed cell of 4.1–4.7 Å edges (shorter than twice every cutoff);
    closest pair 1.84 Å."""
    cell = [[4.3, 0.0, 0.0], [0.8, 4.0, 0.0], [-0.5, 0.6, 4.6]]
    scaled = [[0.05, 0.1, 0.08], [0.38, 0.33, 0.31], [0.7, 0.2, 0.62], [0.2, 0.7, 0.55]]
    return Atoms("COHH", cell=cell, pbc=True, scaled_positions=scaled)


def cubic3() -> Atoms:
    """Two atoms in a 3 Å cube: each sees dozens of images of the other and of itself."""
    return Atoms("CO", cell=[3.0] * 3, pbc=True, positions=[[0.1, 0.2, 0.3], [1.5, 1.6, 1.45]])


SYSTEMS = {"molecule": methanol, "triclinic": triclinic, "cubic3": cubic3}


def energy(model, atoms: Atoms) -> float:
    return predict(model, atoms)["energy"]


# --- conservative forces and stress ---------------------------------------------------------


@pytest.mark.parametrize("system", ["molecule", "triclinic"])
def test_forces_are_minus_the_energy_gradient(model, system):
    atoms = SYSTEMS[system]()
    forces = predict(model, atoms)["forces"]
    h = 2e-5  # the moved switching ranges of pair floors are steep (0.2 Å wide)
    numerical = np.zeros_like(forces)
    for a in range(len(atoms)):
        for k in range(3):
            plus, minus = atoms.copy(), atoms.copy()
            plus.positions[a, k] += h
            minus.positions[a, k] -= h
            numerical[a, k] = -(energy(model, plus) - energy(model, minus)) / (2 * h)
    assert np.abs(forces).max() > 0.02  # a surface worth differentiating
    np.testing.assert_allclose(forces, numerical, rtol=0, atol=1e-6)


def test_stress_is_the_strain_derivative_in_ase_convention(model):
    """ASE: σ = (1/V) ∂E/∂ε for positions and cell deformed by (1 + ε), Voigt order
    xx yy zz yz xz xy; symmetric strains, as in ase.calculators.fd.calculate_numerical_stress."""
    atoms = triclinic()
    stress = predict(model, atoms, stress=True)["stress"]
    volume = atoms.get_volume()
    eps = 1e-5
    numerical = np.zeros(6)
    for v, (i, j) in enumerate(VOIGT):
        energies = []
        for sign in (1.0, -1.0):
            x = np.eye(3)
            if i == j:
                x[i, i] += sign * eps
            else:
                x[i, j] = x[j, i] = 0.5 * sign * eps
            strained = atoms.copy()
            strained.set_cell(atoms.cell.array @ x, scale_atoms=True)
            energies.append(energy(model, strained))
        numerical[v] = (energies[0] - energies[1]) / (2 * eps * volume)
    voigt = np.array([stress[i, j] for i, j in VOIGT])
    np.testing.assert_allclose(stress, stress.T, rtol=0, atol=1e-10)
    assert np.abs(voigt).max() > 1e-4
    np.testing.assert_allclose(voigt, numerical, rtol=0, atol=1e-7)


# --- invariances ----------------------------------------------------------------------------


@pytest.mark.parametrize("system", ["molecule", "triclinic"])
def test_rotation_invariance(model, system):
    atoms = SYSTEMS[system]()
    periodic = atoms.pbc.all()
    ref = predict(model, atoms, stress=periodic)
    for seed in range(3):
        rot = Rotation.random(random_state=seed).as_matrix()
        turned = atoms.copy()
        turned.positions = atoms.positions @ rot.T
        if periodic:
            turned.set_cell(atoms.cell.array @ rot.T, scale_atoms=False)
        out = predict(model, turned, stress=periodic)
        assert out["energy"] == pytest.approx(ref["energy"], rel=1e-10)
        np.testing.assert_allclose(out["energies"], ref["energies"], rtol=0, atol=1e-10)
        np.testing.assert_allclose(out["forces"], ref["forces"] @ rot.T, rtol=0, atol=1e-10)
        if periodic:
            np.testing.assert_allclose(
                out["stress"], rot @ ref["stress"] @ rot.T, rtol=0, atol=1e-10
            )


@pytest.mark.parametrize("system", ["molecule", "triclinic"])
def test_translation_invariance(model, system):
    atoms = SYSTEMS[system]()
    ref = predict(model, atoms)
    shifted = atoms.copy()
    shifted.translate([1.7, -2.3, 0.9])
    if atoms.pbc.all():
        shifted.wrap()  # atoms cross the cell faces: the images must take over exactly
        assert not np.allclose(shifted.get_scaled_positions() - atoms.get_scaled_positions(), 0)
    out = predict(model, shifted)
    assert out["energy"] == pytest.approx(ref["energy"], rel=1e-10)
    np.testing.assert_allclose(out["energies"], ref["energies"], rtol=0, atol=1e-10)
    np.testing.assert_allclose(out["forces"], ref["forces"], rtol=0, atol=1e-10)


@pytest.mark.parametrize("system", ["molecule", "triclinic"])
def test_permutation_invariance(model, system):
    atoms = SYSTEMS[system]()
    ref = predict(model, atoms)
    perm = np.random.default_rng(3).permutation(len(atoms))
    assert (perm != np.arange(len(atoms))).any()
    out = predict(model, atoms[perm])
    assert out["energy"] == pytest.approx(ref["energy"], rel=1e-10)
    np.testing.assert_allclose(out["energies"], ref["energies"][perm], rtol=0, atol=1e-10)
    np.testing.assert_allclose(out["forces"], ref["forces"][perm], rtol=0, atol=1e-10)


def test_swapping_like_atoms_positions(model):
    """Exchanging the positions of two hydrogens changes nothing but their labels."""
    atoms = methanol()
    hydrogens = [a.index for a in atoms if a.symbol == "H"][:2]
    ref = predict(model, atoms)
    swapped = atoms.copy()
    swapped.positions[hydrogens] = atoms.positions[hydrogens[::-1]]
    out = predict(model, swapped)
    assert out["energy"] == pytest.approx(ref["energy"], rel=1e-10)
    np.testing.assert_allclose(
        out["forces"][hydrogens], ref["forces"][hydrogens[::-1]], rtol=0, atol=1e-10
    )


# --- the cutoff -----------------------------------------------------------------------------


def _probe(r: float) -> Atoms:
    """C–H bonded, O at distance ``r`` from C; O stays farther than ``r`` from H."""
    u = np.array([-0.6, 0.8, 0.0])
    return Atoms("CHO", positions=[[0.0, 0.0, 0.0], [1.1, 0.0, 0.0], r * u])


def test_energy_and_forces_continuous_across_the_cutoff(model):
    rc = float(model.cutoff)
    radii = rc + np.linspace(-1e-3, 1e-3, 201)  # steps of 1e-5 Å
    outs = [predict(model, _probe(r)) for r in radii]
    energies = np.array([o["energy"] for o in outs])
    forces = np.array([o["forces"] for o in outs])
    # Inside, the O neighbour really counts (the edge exists and moves the energy) ...
    inside = predict(model, _probe(rc - 1.0))
    assert abs(inside["energy"] - energies[-1]) > 1e-5  # three orders above the jumps allowed below
    # ... and the energy fades out smoothly: no jump, no kink.
    assert np.abs(np.diff(energies)).max() < 1e-8
    assert np.abs(np.diff(forces, axis=0)).max() < 1e-6
    # Jumps across the cutoff vanish with the step (down to float64 rounding of ~10 eV).
    for step in (1e-6, 1e-9):
        below, above = predict(model, _probe(rc - step)), predict(model, _probe(rc + step))
        assert abs(below["energy"] - above["energy"]) < 1e-12
        assert np.abs(below["forces"] - above["forces"]).max() < step


@pytest.mark.parametrize("offset", [0.0, 1e-6, 0.5])
def test_pair_at_or_beyond_the_cutoff_is_two_isolated_atoms(model, offset):
    rc = float(model.cutoff)
    pair = predict(model, Atoms("CO", positions=[[0, 0, 0], [rc + offset, 0, 0]]))
    c, o = predict(model, Atoms("C")), predict(model, Atoms("O"))
    np.testing.assert_allclose(pair["energies"], [c["energy"], o["energy"]], rtol=0, atol=1e-12)
    np.testing.assert_allclose(pair["forces"], 0.0, rtol=0, atol=1e-12)


# --- periodic images ------------------------------------------------------------------------


@pytest.mark.parametrize("system", ["triclinic", "cubic3"])
@pytest.mark.parametrize("reps", [(2, 2, 2), (1, 2, 3)])
def test_supercell_matches_primitive_cell(model, system, reps):
    atoms = SYSTEMS[system]()
    ref = predict(model, atoms, stress=True)
    big = atoms.repeat(reps)
    out = predict(model, big, stress=True)
    copies = int(np.prod(reps))
    np.testing.assert_allclose(
        out["energies"].reshape(copies, len(atoms)),
        np.tile(ref["energies"], (copies, 1)),
        rtol=0,
        atol=1e-10,
    )
    np.testing.assert_allclose(
        out["forces"].reshape(copies, len(atoms), 3),
        np.tile(ref["forces"], (copies, 1, 1)),
        rtol=0,
        atol=1e-10,
    )
    np.testing.assert_allclose(out["stress"], ref["stress"], rtol=0, atol=1e-10)


@pytest.mark.parametrize("system", ["triclinic", "cubic3"])
def test_periodic_energy_equals_that_of_a_cluster_cut_from_the_crystal(model, system):
    """Images done independently of the neighbour-list shifts: the explicit crystal around
    atom 0, as a finite molecule, gives atom 0 the same energy as the periodic cell."""
    atoms = SYSTEMS[system]()
    rc = float(model.cutoff)
    ref = predict(model, atoms)
    n = 4  # 9×9×9 cells ≫ the cutoff sphere of any atom
    steps = np.arange(-n, n + 1)
    grid = np.stack(np.meshgrid(steps, steps, steps, indexing="ij"), axis=-1).reshape(-1, 3)
    images = ((grid @ atoms.cell.array)[:, None, :] + atoms.positions[None]).reshape(-1, 3)
    numbers = np.tile(atoms.numbers, len(grid))
    distance = np.linalg.norm(images - atoms.positions[0], axis=1)
    near = distance < rc + 0.1
    cluster = Atoms(numbers=numbers[near], positions=images[near])
    centre = int(np.flatnonzero(distance[near] < 1e-12)[0])
    graph = build_graph(atoms, rc, [int(z) for z in model.atomic_numbers])
    pairs = list(zip(*graph["edge_index"], strict=True))
    assert max(pairs.count(p) for p in set(pairs)) > 1  # several images of one neighbour
    assert predict(model, cluster)["energies"][centre] == pytest.approx(
        ref["energies"][0], rel=1e-10, abs=1e-12
    )


def test_translating_by_a_cell_vector_changes_nothing(model):
    atoms = cubic3()
    ref = predict(model, atoms)
    moved = atoms.copy()
    moved.positions[1] += atoms.cell.array[0] - 2 * atoms.cell.array[2]
    out = predict(model, moved)
    np.testing.assert_allclose(out["energies"], ref["energies"], rtol=0, atol=1e-10)
    np.testing.assert_allclose(out["forces"], ref["forces"], rtol=0, atol=1e-10)


# --- locality -------------------------------------------------------------------------------


def test_atoms_beyond_the_cutoff_do_not_change_an_atoms_energy(model):
    rc = float(model.cutoff)
    atoms = Atoms(
        "CHOH",
        positions=[[0, 0, 0], [1.1, 0, 0], [rc + 0.5, 0, 0], [rc + 0.7, 0.9, 0]],
    )
    ref = predict(model, atoms)
    moved = atoms.copy()
    moved.positions[2:] += [0.6, 0.4, -0.3]  # still farther than rc from atom 0
    assert np.linalg.norm(moved.positions[2:], axis=1).min() > rc
    out = predict(model, moved)
    assert out["energies"][0] == ref["energies"][0]
    assert abs(out["energies"][1] - ref["energies"][1]) > 1e-6  # but H (within rc) notices


# --- close contact --------------------------------------------------------------------------


@pytest.mark.parametrize("distance", [1e-3, 0.0])
def test_overlapping_atoms_are_an_error_naming_both(model, distance):
    """Atoms on top of each other have no force direction: an error, not a number (issue
    18); from the minimum distance on the pair is seen and repelled, not dropped."""
    pair = Atoms("CC", positions=[[0, 0, 0], [distance, 0, 0]])
    crowd = methanol()
    crowd.positions[1] = crowd.positions[0] + [distance, 0, 0]
    for atoms in (pair, crowd):
        with pytest.raises(ValueError, match=r"atoms [01] and [01] are 0.00[01] Å apart"):
            predict(model, atoms)
    closest = Atoms("CC", positions=[[0, 0, 0], [0.1, 0, 0]])
    out = predict(model, closest)
    assert np.isfinite(out["energy"]) and np.isfinite(out["forces"]).all()
    bonded = Atoms("CC", positions=[[0, 0, 0], [1.0, 0, 0]])
    assert energy(model, closest) > energy(model, bonded) + 100


def test_zbl_core_is_repulsive(model):
    def pair(r):
        return energy(model, Atoms("CO", positions=[[0, 0, 0], [r, 0, 0]]))

    energies = [pair(r) for r in (0.1, 0.2, 0.3, 0.5, 1.0)]
    assert energies[2] > energies[4] + 50  # ~ZBL(0.3 Å) ≈ 300 eV for C–O
    assert all(a > b for a, b in zip(energies, energies[1:], strict=False))


def test_core_handover_hides_close_pairs_from_the_learned_part(model):
    """Below the core's switching range the learned part does not see a pair at all (the
    energy is two isolated atoms plus ZBL), so it cannot extrapolate into an attraction
    there; beyond the range the handover changes no energy by a single bit."""
    assert model.core_handover  # every preset has it
    blind = copy.deepcopy(model)
    blind.core_handover = False
    far = methanol()
    if not float(model.zbl.floor.abs().max()):  # floors put methanol inside (tested below)
        assert predict(model, far)["energy"] == predict(blind, far)["energy"]

    rsum = float(model.zbl.rcov[1] + model.zbl.rcov[2])  # C and O
    r = 0.9 * model.zbl.inner * rsum
    close = Atoms("CO", positions=[[0, 0, 0], [0.0, r, 0.0]])
    isolated = energy(model, Atoms("C")) + energy(model, Atoms("O"))
    core = float(
        model.zbl(torch.tensor([r], dtype=torch.float64), torch.tensor([1]), torch.tensor([2]))[0]
    )
    assert energy(model, close) == pytest.approx(isolated + core, rel=1e-12)
    assert abs(energy(blind, close) - (isolated + core)) > 1e-6  # the learned part sees it


@pytest.mark.parametrize("window", [[0.7, 0.6], [0.0, 0.5], [0.5, 1.2], [0.5], 0.6, ["a", 1]])
def test_bad_core_window_is_a_clear_error(window):
    with pytest.raises(ValueError, match=r"core_window must be \[inner, outer\]"):
        build_model("tiny", ELEMENTS, core_window=window)


def test_core_window_moves_the_switching_range():
    """At 0.55 x the covalent radii sum the default window (0.4-0.7) lets the learned part
    see a C-O pair; a window of 0.6-0.8 leaves it to the core alone."""
    moved = random_student("tiny", core_window=[0.6, 0.8])
    default = random_student("tiny")
    assert (moved.zbl.inner, moved.zbl.outer) == (0.6, 0.8)
    assert (default.zbl.inner, default.zbl.outer) == (0.4, 0.7)
    for model, blind in ((moved, True), (default, False)):
        r = 0.55 * float(model.zbl.rcov[1] + model.zbl.rcov[2])
        pair = Atoms("CO", positions=[[0, 0, 0], [r, 0, 0]])
        isolated = energy(model, Atoms("C")) + energy(model, Atoms("O"))
        distance = torch.tensor([r], dtype=torch.float64)
        core = float(model.zbl(distance, torch.tensor([1]), torch.tensor([2]))[0])
        assert (energy(model, pair) == pytest.approx(isolated + core, rel=1e-12)) is blind


def test_pair_floors_hide_pairs_closer_than_the_data_had_them():
    """With a floor of 1.9 Å for H-H, an H-H pair at 1.6 Å (below the moved range,
    1.9 - 0.3 x 0.62 Å) is two isolated atoms plus the core; at and beyond the floor the
    energy is that of the student without floors, and pairs without a floor keep the
    covalent range."""
    floored = random_student("tiny", pair_floors=FLOORS)
    plain = random_student("tiny")
    assert float(floored.zbl.floor[0, 0]) == pytest.approx(1.9)
    assert float(floored.zbl.floor[1, 2]) == float(floored.zbl.floor[2, 1]) == pytest.approx(1.5)
    assert float(floored.zbl.floor[0, 1]) == 0.0  # C-H: none

    def h2(r):
        return Atoms("H2", positions=[[0, 0, 0], [0.6 * r, 0.8 * r, 0]])

    isolated = 2 * energy(floored, Atoms("H"))
    core = float(floored.zbl(torch.tensor([1.6], dtype=torch.float64), *torch.tensor([[0], [0]])))
    assert energy(floored, h2(1.6)) == pytest.approx(isolated + core, rel=1e-12)
    assert abs(energy(plain, h2(1.6)) - energy(floored, h2(1.6))) > 1e-6
    for r in (1.9, 2.5):
        assert energy(floored, h2(r)) == pytest.approx(energy(plain, h2(r)), rel=1e-12, abs=1e-12)
    ch = Atoms("CH", positions=[[0, 0, 0], [0, 0, 1.09]])
    assert energy(floored, ch) == pytest.approx(energy(plain, ch), rel=1e-12)


@pytest.mark.parametrize(
    ("floors", "message"),
    [
        ({"H-N": 1.0}, "not a pair of this model's elements"),
        ({"H-Xx": 1.0}, "'Xx' is not a chemical symbol"),
        ({"H-H": -1.0}, "must be a distance in Å >= 0"),
        ({"H-H": "far"}, "must be a distance in Å >= 0"),
        ([1.0], "pair_floors must be 'data'"),
    ],
)
def test_bad_pair_floors_are_a_clear_error(floors, message):
    with pytest.raises(ValueError, match=message):
        build_model("tiny", ELEMENTS, pair_floors=floors)


def test_pair_floors_need_the_core_handover():
    with pytest.raises(ValueError, match="needs core_handover: true"):
        build_model("tiny", ELEMENTS, pair_floors={"H-H": 1.0}, core_handover=False)


def test_pair_floors_are_read_in_either_order_and_default_to_none():
    model = build_model("tiny", ELEMENTS, pair_floors={"O-C": 1.2})
    assert float(model.zbl.floor[1, 2]) == pytest.approx(1.2)
    assert float(build_model("tiny", ELEMENTS).zbl.floor.abs().sum()) == 0.0  # "data", no data


def test_a_state_without_pair_floors_loads_with_none():
    """Students written before pair floors existed have no ``zbl.floor``: they load, and
    keep the covalent range (their energies unchanged)."""
    model = random_student("tiny")
    state = {k: v for k, v in model.state_dict().items() if k != "zbl.floor"}
    fresh = build_model("tiny", ELEMENTS, avg_neighbors=4.0).double()
    fresh.load_state_dict(state)
    assert energy(fresh.eval(), methanol()) == energy(model, methanol())


def test_pair_floors_are_the_shortest_distances_of_the_data():
    from mlff_distiller.models.graph import pair_floors

    water = molecule("H2O")
    graphs = [build_graph(a, 5.0, [1, 6, 8]) for a in (water, methanol())]
    floors = pair_floors(graphs, [1, 6, 8], 5.0)
    assert set(floors) == {"H-H", "H-C", "H-O", "C-C", "C-O", "O-O"}
    hh = min(
        float(d[np.triu_indices(len(d), 1)].min())
        for a in (water, methanol())
        for d in [a[a.numbers == 1].get_all_distances()]
    )
    assert floors["H-H"] == np.floor(hh * 1000) / 1000  # rounded down: every pair is beyond
    assert floors["H-O"] == np.floor(water.get_distance(0, 1) * 1000) / 1000
    assert floors["C-C"] == floors["O-O"] == 5.0  # never within the cutoff


def close_contacts() -> Atoms:
    """C–O at 0.75 Å (inside the core's switching range, where the ZBL and the handover
    both change), an H near the O and an H–H pair at 0.6 Å."""
    return Atoms("COHH", positions=[[0, 0, 0], [0.75, 0, 0], [0, 1.0, 0.2], [0.1, 1.55, 0.5]])


def crowded(n_atoms: int = 60, edge: float = 7.5) -> Atoms:
    """``n_atoms`` atoms in an ``edge`` Å cube (random, at least 1 Å apart): thousands of
    edges, so the radial mixing mixes by element pair rather than per edge."""
    rng = np.random.default_rng(5)
    positions: list[np.ndarray] = []
    while len(positions) < n_atoms:
        trial = rng.uniform(0.0, edge, 3)
        if all(np.linalg.norm(trial - p) > 1.0 for p in positions):
            positions.append(trial)
    return Atoms("CHO" * (n_atoms // 3), positions=positions, cell=[edge] * 3, pbc=True)


def lopsided() -> Atoms:
    """120 atoms of :func:`crowded`, out of a cell, beside 2,028 lone hydrogens 6 Å
    apart: padding every atom to the crowd's neighbour count would be far wider than the
    edges, so the sums take their fallback (and the mixing sorts by pair)."""
    grid = [
        [6.0 * a, 6.0 * b, 6.0 * c + 20.0] for a in range(13) for b in range(13) for c in range(12)
    ]
    crowd = crowded(120, 9.0)
    crowd.pbc = False
    crowd.cell = None
    return crowd + Atoms(f"H{len(grid)}", positions=grid)


@pytest.mark.parametrize(
    "system", ["molecule", "triclinic", "cubic3", "close", "crowded", "lopsided"]
)
def test_written_out_gradient_equals_autograd_of_the_energy(model, system):
    """``energies_and_gradient`` (every engine's forces and virial come from it) gives the
    per-atom energies of ``forward`` and the gradient autograd takes of their sum, on both
    edge layouts (padded, and the fallback for lopsided neighbour counts) and both ways of
    mixing the radial channels (gathered, and sorted by element pair above 2,048 edges)."""
    builders = {"close": close_contacts, "crowded": crowded, "lopsided": lopsided}
    atoms = builders.get(system, SYSTEMS.get(system, methanol))()
    graph = build_graph(atoms, float(model.cutoff), [int(z) for z in model.atomic_numbers])
    batch = collate([graph], torch.float64)
    edge_index = batch["edge_index"]
    cell = torch.tensor(atoms.cell.array)
    positions = batch["positions"]
    vectors = positions[edge_index[1]] - positions[edge_index[0]] + batch["shifts"] @ cell
    vectors.requires_grad_(True)
    energies = model(vectors, edge_index, batch["species"])
    (want,) = torch.autograd.grad(energies.sum(), [vectors])
    got_energies, got = model.energies_and_gradient(vectors.detach(), edge_index, batch["species"])
    assert float(want.abs().max()) > 1e-3  # a gradient worth comparing
    width = centre_slots(edge_index[0], len(atoms))[1]
    assert (width == 0) == (system == "lopsided")
    species = batch["species"]
    layout = species_slots(edge_index[0], species[edge_index[1]], species, len(ELEMENTS))
    assert (len(layout[3]) == 0) == (system == "lopsided")  # species layout or fallback
    assert (edge_index.shape[1] > 2048) == (system in ("crowded", "lopsided"))
    torch.testing.assert_close(got_energies, energies.detach(), rtol=1e-14, atol=1e-13)
    torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-12 * float(want.abs().max()))
    scripted = torch.jit.script(model)
    got_energies, got = scripted.energies_and_gradient(
        vectors.detach(), edge_index, batch["species"]
    )
    torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-12 * float(want.abs().max()))


#: The variants whose gradient is written out (the tensor-moment student's is autograd's).
WRITTEN_OUT = [
    name for name, (preset, _) in VARIANTS.items() if PRESETS[preset]["architecture"] == "moment"
]


@pytest.mark.parametrize("variant", WRITTEN_OUT)
@pytest.mark.parametrize("system", ["molecule", "triclinic", "crowded"])
def test_training_gradients_through_the_written_out_forces_equal_the_double_backward(
    variant, system
):
    """Training takes a student's forces and stress from its written-out gradient and
    differentiates a loss on them once; the weights' gradients are those of the double
    backward through ``forward`` that autograd gives."""
    model = random_student(VARIANTS[variant][0], **VARIANTS[variant][1])
    assert model.gradient_written_out
    atoms = crowded() if system == "crowded" else SYSTEMS[system]()
    periodic = bool(atoms.pbc.all())
    graph = build_graph(atoms, float(model.cutoff), [int(z) for z in model.atomic_numbers])
    batch = collate([graph, graph], torch.float64)
    generator = torch.Generator().manual_seed(3)
    target = torch.randn(batch["positions"].shape, dtype=torch.float64, generator=generator)
    results = []
    for written in (True, False):
        trial = copy.deepcopy(model).train()
        trial.gradient_written_out = written
        out = evaluate(trial, batch, compute_stress=periodic, create_graph=True)
        loss = ((out["forces"] - target) ** 2).sum() + out["energy"].square().sum()
        if periodic:
            loss = loss + out["stress"].square().sum()
        loss.backward()
        results.append({name: p.grad for name, p in trial.named_parameters()})
    written, autograd = results
    assert written.keys() == autograd.keys()
    for name, want in autograd.items():
        assert float(want.abs().max()) > 0, name  # every weight has a say
        torch.testing.assert_close(
            written[name], want, rtol=1e-9, atol=1e-9 * float(want.abs().max())
        )


# --- TorchScript and precision --------------------------------------------------------------


@pytest.mark.parametrize("system", ["molecule", "triclinic"])
def test_torchscript_matches_eager(model, system):
    atoms = SYSTEMS[system]()
    periodic = bool(atoms.pbc.all())
    scripted = torch.jit.script(model)
    ref = predict(model, atoms, stress=periodic)
    out = predict(scripted, atoms, stress=periodic, cutoff=float(model.cutoff))
    assert out["energy"] == pytest.approx(ref["energy"], rel=1e-12)
    np.testing.assert_allclose(out["forces"], ref["forces"], rtol=0, atol=1e-12)
    np.testing.assert_allclose(out["energies"], ref["energies"], rtol=0, atol=1e-12)
    if periodic:
        np.testing.assert_allclose(out["stress"], ref["stress"], rtol=0, atol=1e-12)


@pytest.mark.parametrize("system", ["molecule", "triclinic"])
def test_float32_agrees_with_float64(model, system):
    atoms = SYSTEMS[system]()
    periodic = bool(atoms.pbc.all())
    single = copy.deepcopy(model).float()
    graph = build_graph(atoms, float(model.cutoff), [int(z) for z in model.atomic_numbers])
    out32 = evaluate(single, collate([graph], torch.float32), compute_stress=periodic)
    assert out32["energy"].dtype == torch.float32 and out32["forces"].dtype == torch.float32
    out = predict(single, atoms, stress=periodic, dtype=torch.float32)
    ref = predict(model, atoms, stress=periodic)
    assert out["energy"] == pytest.approx(ref["energy"], rel=1e-5)
    scale = np.abs(ref["forces"]).max()
    # float32 rounding of sums over many neighbours (the small triclinic cell has dozens of
    # images per atom): 1.1e-5 of the largest force at worst; a float32 cast in the wrong
    # place gives ~1e-3.
    assert np.abs(out["forces"] - ref["forces"]).max() < 2e-5 * scale
    if periodic:  # the virial sums terms much larger than the stress: a looser bound
        assert np.abs(out["stress"] - ref["stress"]).max() < 3e-5 * np.abs(ref["stress"]).max()
