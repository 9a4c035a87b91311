"""StudentCalculator as a drop-in ASE calculator, on a checkpoint written the way the
trainer writes it (no training: a seeded random student with noisy weights).

Properties and their consistency (stress against ASE's own finite differences), plain ASE
MD scripts (NVE energy conservation, Langevin, NPT), clear errors, ASE's result caching,
float32 against float64.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from ase import Atoms, units
from ase.build import molecule
from ase.calculators.calculator import PropertyNotImplementedError
from ase.calculators.fd import calculate_numerical_stress
from ase.md.langevin import Langevin
from ase.md.nose_hoover_chain import IsotropicMTKNPT
from ase.md.velocitydistribution import Stationary, thermalize_momenta
from ase.md.verlet import VelocityVerlet

from mlff_distiller.calculators import SERIAL_BELOW_ATOMS, StudentCalculator
from mlff_distiller.models import build_model
from mlff_distiller.models.checkpoint import CheckpointError, save_checkpoint
from mlff_distiller.models.presets import MODEL_KEYS
from mlff_distiller.training.config import config_hash, make_config

PRESET = "tiny"
ELEMENTS = ["H", "C", "O"]


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    """A float64 ``best.pt`` with the keys :func:`mlff_distiller.training.train` writes."""
    cfg = make_config(PRESET, {"dtype": "float64"})
    norm = {"energy_shift": [-1.3, -2.9, -4.1], "energy_scale": 1.0, "avg_neighbors": 4.0}
    model_cfg = {k: cfg[k] for k in MODEL_KEYS if k in cfg}
    torch.manual_seed(0)
    model = build_model(PRESET, ELEMENTS, **model_cfg, avg_neighbors=norm["avg_neighbors"])
    model.energy_shift.copy_(torch.tensor(norm["energy_shift"]))
    model.energy_scale.fill_(norm["energy_scale"])
    model = model.double()  # trained in float64: weights not representable in float32
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.1 * torch.randn_like(p))
    dataset_hash = "0123456789abcdef"
    payload = {
        "preset": PRESET,
        "elements": ELEMENTS,
        "model_config": {**model_cfg, "avg_neighbors": norm["avg_neighbors"]},
        "dtype": cfg["dtype"],
        "normalization": norm,
        "config": cfg,
        "run_key": {"config": config_hash(cfg), "dataset": dataset_hash},
        "dataset": "synthetic.h5",
        "dataset_hash": dataset_hash,
        "teacher": {"name": "none", "note": "random student for tests"},
        "splits": {"train": 8, "val": 1, "test": 1},
        "model_state": model.state_dict(),
        "epoch": 1,
        "metrics": {"epoch": 1, "val_force_rmse_eV_per_A": 1.0},
    }
    return save_checkpoint(payload, tmp_path_factory.mktemp("run") / "best.pt")


@pytest.fixture(scope="module")
def calc(checkpoint):
    return StudentCalculator(checkpoint)


def methanol() -> Atoms:
    atoms = molecule("CH3OH")
    atoms.rattle(0.05, seed=1)
    return atoms


def crystal() -> Atoms:
    """A skewed periodic cell (edges 4.1–4.7 Å, shorter than twice the 5 Å cutoff)."""
    cell = [[4.3, 0.0, 0.0], [0.8, 4.0, 0.0], [-0.5, 0.6, 4.6]]
    scaled = [[0.05, 0.1, 0.08], [0.38, 0.33, 0.31], [0.7, 0.2, 0.62], [0.2, 0.7, 0.55]]
    return Atoms("COHH", cell=cell, pbc=True, scaled_positions=scaled)


# --- properties -----------------------------------------------------------------------------


@pytest.mark.parametrize("make", [methanol, crystal])
def test_properties(calc, make):
    atoms = make()
    atoms.calc = calc
    energy = atoms.get_potential_energy()
    assert atoms.get_potential_energy(force_consistent=True) == energy  # free_energy
    forces = atoms.get_forces()
    assert forces.shape == (len(atoms), 3) and np.isfinite(forces).all()
    energies = atoms.get_potential_energies()
    assert energies.shape == (len(atoms),)
    assert energies.sum() == pytest.approx(energy, rel=1e-12)
    if atoms.pbc.all():
        stress = atoms.get_stress()
        assert stress.shape == (6,)
        numerical = calculate_numerical_stress(atoms, eps=1e-5)
        assert np.abs(stress).max() > 1e-3
        np.testing.assert_allclose(stress, numerical, rtol=0, atol=1e-7)
        full = atoms.get_stress(voigt=False)
        np.testing.assert_allclose(full, full.T, rtol=0, atol=1e-12)


def test_metadata(calc):
    assert calc.elements == ELEMENTS
    assert calc.cutoff == 5.0
    assert calc.dtype == torch.float64  # the checkpoint's dtype is the default
    assert calc.metadata["preset"] == PRESET and calc.metadata["dataset_hash"]


# --- drop-in MD -----------------------------------------------------------------------------


def _nve_energy_error(calc, timestep_fs: float, duration_fs: float = 50.0):
    """A plain ASE NVE script (nothing student-specific): the spread of the total energy
    and of the kinetic energy along the run."""
    atoms = methanol()
    atoms.calc = calc
    thermalize_momenta(atoms, temperature_K=100, rng=np.random.default_rng(0))
    Stationary(atoms)
    dyn = VelocityVerlet(atoms, timestep=timestep_fs * units.fs)
    kinetic, total = [], []

    def record():
        kinetic.append(atoms.get_kinetic_energy())
        total.append(atoms.get_total_energy())

    dyn.attach(record, interval=1)
    dyn.run(round(duration_fs / timestep_fs))
    assert np.isfinite(total).all()
    return np.ptp(total), np.ptp(kinetic)


@pytest.mark.slow
def test_nve_velocity_verlet_conserves_energy(calc):
    """Conservative, smooth forces: the energy error is tiny and shrinks as dt² (non-conservative
    forces, e.g. 1 % off, leave an error ~1e-2 of the kinetic spread that does not shrink)."""
    error, kinetic = _nve_energy_error(calc, 0.1)
    coarse, _ = _nve_energy_error(calc, 0.2)
    assert kinetic > 0.05  # energy really flows between kinetic and potential
    assert error < 1e-3 * kinetic
    assert error < 0.4 * coarse  # Verlet: ∝ dt², i.e. 0.25 here (random, rugged surface)


def test_langevin_runs(calc):
    atoms = methanol()
    atoms.calc = calc
    thermalize_momenta(atoms, temperature_K=300, rng=np.random.default_rng(1))
    dyn = Langevin(
        atoms,
        timestep=0.5 * units.fs,
        temperature_K=300,
        friction=0.02 / units.fs,
        fixcm=False,
        rng=np.random.default_rng(2),
    )
    start = atoms.get_positions()
    dyn.run(50)
    temperature = atoms.get_temperature()
    assert np.isfinite(temperature) and 0 < temperature < 3000
    assert np.isfinite(atoms.positions).all() and not np.allclose(atoms.positions, start)


def test_npt_changes_the_cell(calc):
    atoms = crystal().repeat((2, 2, 1))
    atoms.calc = calc
    thermalize_momenta(atoms, temperature_K=300, rng=np.random.default_rng(3))
    volume = atoms.get_volume()
    dyn = IsotropicMTKNPT(
        atoms,
        timestep=0.5 * units.fs,
        temperature_K=300,
        pressure_au=1.0 * units.bar,
        tdamp=25 * units.fs,
        pdamp=100 * units.fs,
    )
    dyn.run(40)
    assert np.isfinite(atoms.cell.array).all() and np.isfinite(atoms.positions).all()
    assert np.isfinite(atoms.get_potential_energy())
    assert abs(atoms.get_volume() / volume - 1) > 1e-4


# --- errors ---------------------------------------------------------------------------------


def test_unsupported_element_names_it_and_the_models_elements(calc):
    atoms = Atoms("CNa", positions=[[0, 0, 0], [2.0, 0, 0]])
    atoms.calc = calc
    with pytest.raises(ValueError, match=r"Na.*not in the model.*H, C, O"):
        atoms.get_potential_energy()


def test_empty_atoms_is_a_clear_error(calc):
    atoms = Atoms()
    atoms.calc = calc
    with pytest.raises(ValueError, match="no atoms"):
        atoms.get_potential_energy()


def test_stress_of_a_molecule_is_not_implemented(calc):
    atoms = methanol()
    atoms.calc = calc
    atoms.get_forces()
    with pytest.raises(PropertyNotImplementedError, match="periodic"):
        atoms.get_stress()


def test_missing_or_damaged_checkpoint_is_a_clear_error(tmp_path):
    with pytest.raises(CheckpointError, match="does not exist"):
        StudentCalculator(tmp_path / "nope.pt")
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"this is not a checkpoint\x00\x01")
    with pytest.raises(CheckpointError, match="not a readable"):
        StudentCalculator(garbage)
    foreign = tmp_path / "foreign.pt"
    torch.save({"weights": torch.zeros(3)}, foreign)
    with pytest.raises(CheckpointError, match="not an mlff_distiller checkpoint"):
        StudentCalculator(foreign)


def test_bad_dtype_is_a_clear_error(checkpoint):
    with pytest.raises(ValueError, match="float32"):
        StudentCalculator(checkpoint, dtype="float16")


@pytest.mark.parametrize("threads", [0, -1, 1.5, "2", True])
def test_bad_thread_count_is_a_clear_error(checkpoint, threads):
    with pytest.raises(ValueError, match="threads must be a whole number"):
        StudentCalculator(checkpoint, threads=threads)


# --- threads --------------------------------------------------------------------------------


def _threads_seen(calc: StudentCalculator, atoms: Atoms, monkeypatch) -> list[int]:
    """Torch's thread count inside each evaluation the calculator makes for ``atoms``."""
    seen = []
    evaluate = calc._calculate_checkpoint

    def recording(*args):
        seen.append(torch.get_num_threads())
        return evaluate(*args)

    monkeypatch.setattr(calc, "_calculate_checkpoint", recording)
    atoms.calc = calc
    atoms.get_forces()
    return seen


def test_small_systems_run_on_one_thread_and_the_process_count_is_restored(checkpoint, monkeypatch):
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    torch.set_num_threads(2)  # the one_thread fixture restores its own count afterwards
    calc = StudentCalculator(checkpoint)
    assert _threads_seen(calc, methanol(), monkeypatch) == [1]
    assert torch.get_num_threads() == 2
    assert calc.call_threads(SERIAL_BELOW_ATOMS - 1) == 1
    assert calc.call_threads(SERIAL_BELOW_ATOMS) == 2


def test_asked_thread_counts_are_used(checkpoint, monkeypatch):
    torch.set_num_threads(2)
    monkeypatch.setenv("OMP_NUM_THREADS", "2")  # the user chose: torch's count, any size
    assert StudentCalculator(checkpoint).call_threads(5) == 2
    monkeypatch.delenv("OMP_NUM_THREADS")
    calc = StudentCalculator(checkpoint, threads=3)
    assert _threads_seen(calc, methanol(), monkeypatch) == [3]
    assert torch.get_num_threads() == 2
    assert calc.call_threads(10 * SERIAL_BELOW_ATOMS) == 3


# --- caching and precision ------------------------------------------------------------------


def test_changed_atoms_are_recomputed(calc):
    atoms = crystal()
    atoms.calc = calc
    energy, forces, stress = (
        atoms.get_potential_energy(),
        atoms.get_forces(),
        atoms.get_stress(),
    )
    atoms.positions[1] += [0.05, -0.02, 0.03]  # in place, as MD integrators do
    assert atoms.get_potential_energy() != energy
    assert not np.allclose(atoms.get_forces(), forces)
    moved = atoms.get_potential_energy()
    atoms.set_cell(atoms.cell.array * 1.01, scale_atoms=True)
    assert atoms.get_potential_energy() != moved
    assert not np.allclose(atoms.get_stress(), stress)
    swapped = atoms.copy()
    swapped.calc = calc
    swapped.numbers[[0, 1]] = swapped.numbers[[1, 0]]  # C <-> O
    assert swapped.get_potential_energy() != atoms.get_potential_energy()


def _changes():
    """Edits of a calculated structure, each with the change ASE's compare_atoms names."""

    def move(a):
        a.positions[2, 1] += 1e-9

    def swap(a):
        a.numbers[[0, 1]] = a.numbers[[1, 0]]

    def strain(a):
        a.cell[2, 2] += 1e-6

    def unwrap(a):
        a.pbc = [True, True, False]

    def charge(a):
        a.set_initial_charges([0.1, 0.0, 0.0, -0.1])

    def magnetise(a):
        a.set_initial_magnetic_moments([1.0, 0.0, 0.0, 0.0])

    def momenta(a):  # velocities are not an input of the energy
        a.set_momenta(np.ones((len(a), 3)))

    def nothing(a):
        pass

    return [move, swap, strain, unwrap, charge, magnetise, momenta, nothing]


@pytest.mark.parametrize("change", _changes(), ids=lambda f: f.__name__)
def test_check_state_names_the_changes_ase_names(calc, change):
    """StudentCalculator answers ASE's "what changed?" with exact comparisons instead of
    ASE's allclose checks (about 70 µs per property request on a small molecule): it must
    name what ASE names, or a cached result would answer a changed structure."""
    from ase.calculators.calculator import compare_atoms

    atoms = crystal()
    atoms.calc = calc
    atoms.get_potential_energy()
    change(atoms)
    expected = compare_atoms(calc.atoms, atoms, excluded_properties=set(calc.ignored_changes))
    assert sorted(calc.check_state(atoms)) == sorted(expected)
    if expected:
        assert atoms.get_potential_energy() is not None and calc.check_state(atoms) == []


@pytest.mark.parametrize("make", [methanol, crystal])
def test_float32_agrees_with_float64(checkpoint, make):
    results = {}
    for dtype in ("float32", "float64"):
        atoms = make()
        atoms.calc = StudentCalculator(checkpoint, dtype=dtype)
        results[dtype] = (atoms.get_potential_energy(), atoms.get_forces())
    (e32, f32), (e64, f64) = results["float32"], results["float64"]
    assert e32 == pytest.approx(e64, rel=1e-5)
    assert np.abs(f32 - f64).max() < 1e-5 * np.abs(f64).max()


def test_script_and_eager_agree(checkpoint):
    atoms = crystal()
    scripted, eager = atoms.copy(), atoms.copy()
    scripted.calc = StudentCalculator(checkpoint, script=True)
    eager.calc = StudentCalculator(checkpoint, script=False)
    assert isinstance(scripted.calc.model, torch.jit.ScriptModule)
    assert scripted.get_potential_energy() == pytest.approx(eager.get_potential_energy(), 1e-12)
    np.testing.assert_allclose(scripted.get_forces(), eager.get_forces(), rtol=0, atol=1e-12)


def test_float64_checkpoint_is_evaluated_with_its_float64_weights(checkpoint):
    """Not rounded through a float32 model on the way (the fixture's weights are not
    representable in float32)."""
    saved = torch.load(checkpoint, weights_only=True)["model_state"]
    loaded = StudentCalculator(checkpoint, dtype="float64", script=False).model.state_dict()
    for name, tensor in saved.items():
        assert torch.equal(loaded[name], tensor), name


def _energy_in_worker(atoms: Atoms) -> tuple[float, np.ndarray]:
    return atoms.get_potential_energy(), atoms.get_forces()


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["checkpoint", "exported"])
def test_atoms_with_the_calculator_pickle_and_run_in_a_process_pool(kind, checkpoint, tmp_path):
    import pickle
    import shutil
    from concurrent.futures import ProcessPoolExecutor
    from multiprocessing import get_context

    from mlff_distiller.export import export

    model = tmp_path / "model.pt"
    if kind == "checkpoint":
        shutil.copyfile(checkpoint, model)
    else:
        export(checkpoint, model)
    atoms = methanol()
    atoms.calc = StudentCalculator(model)
    expected = atoms.get_potential_energy(), atoms.get_forces()
    copy = pickle.loads(pickle.dumps(atoms))
    copy.positions[0, 0] += 0.01  # a real recalculation, not the cached result
    assert copy.get_potential_energy() != pytest.approx(expected[0], abs=1e-9)
    jobs = []
    for _ in range(2):
        job = methanol()
        job.calc = atoms.calc
        jobs.append(job)
    # "spawn": workers start from nothing, as dask's or joblib's loky workers do.
    with ProcessPoolExecutor(2, mp_context=get_context("spawn")) as pool:
        results = list(pool.map(_energy_in_worker, jobs))
    for energy, forces in results:
        assert energy == pytest.approx(expected[0], abs=1e-9)
        np.testing.assert_allclose(forces, expected[1], atol=1e-9)
    model.write_bytes(model.read_bytes() + b"changed")
    with pytest.raises(ValueError, match="missing or changed since it was loaded"):
        pickle.loads(pickle.dumps(atoms))
