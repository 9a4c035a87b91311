"""The Orb adapter, run on Orb architectures built here with random weights.

Orb's weights cannot be downloaded offline, so each fixture builds the architecture that
orb-models' pretrained loader builds (same arguments as in
``orb_models.forcefield.pretrained``), saves its state dict, and the test loads that file
through the real adapter. References come from orb-models' own ``ORBCalculator`` on the
in-memory model. The full-size architecture takes about a second per call on a CPU, so each
model is built once per module and finite differences use few points.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
import torch
from ase import Atoms
from ase.build import bulk, molecule
from ase.calculators.calculator import PropertyNotImplementedError
from ase.io import read, write
from ase.stress import voigt_6_to_full_3x3_stress
from orb_models.forcefield import pretrained
from orb_models.forcefield.atomic_system import SystemConfig
from orb_models.forcefield.calculator import ORBCalculator

from mlff_distiller.teachers import TeacherError, get_teacher, teacher_info

pytestmark = [
    pytest.mark.teacher,  # random-weight orb models, seconds each to build
    pytest.mark.filterwarnings("ignore:Setting global torch default dtype:UserWarning"),
    pytest.mark.filterwarnings("ignore:Consider passing 'precision=float32-high':UserWarning"),
    # orb-models' featurization hands a torch tensor to ase.geometry for periodic cells
    pytest.mark.filterwarnings("ignore:__array__ implementation doesn't accept:DeprecationWarning"),
]

#: Registered name -> (architecture, its arguments, seed); the arguments are those the
#: loader of the same name in orb_models.forcefield.pretrained (0.5.5) passes.
ARCHITECTURES = {
    "orb-v3-conservative-omol": (
        pretrained.orb_v3_conservative_architecture,
        {"has_charge_spin_cond": True, "has_stress": False},
        0,
    ),
    "orb-v3-direct-omol": (
        pretrained.orb_v3_direct_architecture,
        {"has_charge_spin_cond": True, "has_stress": False},
        1,
    ),
    "orb-v3-conservative-inf-omat": (pretrained.orb_v3_conservative_architecture, {}, 2),
}


def build_and_save(name: str, directory: Path) -> tuple[torch.nn.Module, Path]:
    """Orb's architecture for ``name`` with seeded random weights, and its saved state dict."""
    architecture, options, seed = ARCHITECTURES[name]
    torch.manual_seed(seed)
    model = architecture(
        device="cpu",
        system_config=SystemConfig(radius=6.0, max_num_neighbors=120),  # as all three loaders
        **options,
    )
    model.eval().requires_grad_(False)
    path = directory / f"{name}.ckpt"
    torch.save(model.state_dict(), path)
    return model, path


@contextmanager
def default_dtype(dtype: torch.dtype) -> Iterator[None]:
    previous = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        yield
    finally:
        torch.set_default_dtype(previous)


def ethanol(**info: float) -> Atoms:
    atoms = molecule("CH3CH2OH")
    atoms.rattle(0.05, seed=1)
    atoms.info.update(info)
    return atoms


def copper() -> Atoms:
    """Four Cu atoms in a 3.61 Å cube: the cell is far shorter than twice the 6 Å cutoff."""
    atoms = bulk("Cu", cubic=True)
    atoms.rattle(0.05, seed=3)
    return atoms


@pytest.fixture(scope="module")
def orb_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("orb")


@pytest.fixture(scope="module")
def conservative_omol(orb_dir: Path) -> tuple[torch.nn.Module, Path]:
    return build_and_save("orb-v3-conservative-omol", orb_dir)


@pytest.fixture(scope="module")
def direct_omol(orb_dir: Path) -> tuple[torch.nn.Module, Path]:
    return build_and_save("orb-v3-direct-omol", orb_dir)


@pytest.fixture(scope="module")
def conservative_omat(orb_dir: Path) -> tuple[torch.nn.Module, Path]:
    return build_and_save("orb-v3-conservative-inf-omat", orb_dir)


@pytest.fixture(scope="module")
def teacher(conservative_omol):
    """The adapter with its defaults (float32-highest, no compile)."""
    _, path = conservative_omol
    return get_teacher("orb-v3-conservative-omol", weights_path=path)


@pytest.fixture(scope="module")
def expected(conservative_omol) -> tuple[float, np.ndarray]:
    """Energy and forces of neutral singlet ethanol from orb-models' own calculator."""
    model, _ = conservative_omol
    atoms = ethanol(charge=0, spin=1)
    atoms.calc = ORBCalculator(model, device="cpu")
    return atoms.get_potential_energy(), atoms.get_forces()


def test_matches_orb_calculator(teacher, expected) -> None:
    expected_energy, expected_forces = expected
    atoms = ethanol(charge=0, spin=1)
    atoms.calc = teacher
    assert atoms.get_potential_energy() == pytest.approx(expected_energy, rel=1e-5)
    scale = np.abs(expected_forces).max()
    assert scale > 1e-2  # random weights still give real forces
    np.testing.assert_allclose(atoms.get_forces(), expected_forces, rtol=1e-5, atol=1e-5 * scale)


def test_missing_charge_and_spin_default_to_neutral_singlet(teacher, expected) -> None:
    expected_energy, expected_forces = expected
    atoms = ethanol()
    atoms.calc = teacher
    assert atoms.get_potential_energy() == pytest.approx(expected_energy, rel=1e-5)
    np.testing.assert_allclose(
        atoms.get_forces(), expected_forces, rtol=1e-5, atol=1e-5 * np.abs(expected_forces).max()
    )
    assert atoms.info == {}  # the defaults went to a copy


def test_charge_and_spin_from_an_extxyz_file_are_used(teacher, expected, tmp_path: Path) -> None:
    path = tmp_path / "cation.extxyz"
    write(path, ethanol(charge=1, spin=2))
    atoms = read(path)  # extxyz gives numpy integers, which orb-models alone rejects
    assert isinstance(atoms.info["charge"], np.integer)
    atoms.calc = teacher
    energy = atoms.get_potential_energy()
    assert np.isfinite(energy)
    assert energy != pytest.approx(expected[0], abs=1e-2)  # not the neutral singlet
    assert atoms.info == {"charge": 1, "spin": 2}


def test_new_charge_or_spin_on_the_same_geometry_is_recomputed(teacher, expected) -> None:
    atoms = ethanol()
    atoms.calc = teacher
    assert atoms.get_potential_energy() == pytest.approx(expected[0], rel=1e-5)
    atoms.info.update(charge=1, spin=2)  # ASE's own cache would not notice this
    cation = atoms.get_potential_energy()
    assert cation != pytest.approx(expected[0], abs=1e-2)
    atoms.info.update(spin=4)
    assert atoms.get_potential_energy() != pytest.approx(cation, abs=1e-2)


def test_teacher_info(teacher, conservative_omol) -> None:
    _, path = conservative_omol
    info = teacher_info(teacher)
    assert info.name == "orb-v3-conservative-omol"
    assert info.package == "orb-models"
    assert info.version != "unknown"
    assert info.cutoff == 6.0
    assert info.conservative is True
    assert info.kwargs["weights_path"] == str(path)
    assert info.kwargs["precision"] == "float32-highest"


def test_conservative_forces_are_minus_energy_gradient(conservative_omol) -> None:
    _, path = conservative_omol
    calc = get_teacher("orb-v3-conservative-omol", weights_path=path, precision="float64")
    atoms = ethanol()
    atoms.calc = calc
    forces = atoms.get_forces()
    assert forces.dtype == np.float64
    step = 1e-4  # the error is O(step**2): 4e-5 at 1e-2, 1e-8 at 1e-4
    rng = np.random.default_rng(0)
    for index in (2, 5):  # the O and one H, each along a random direction
        direction = rng.normal(size=3)
        direction /= np.linalg.norm(direction)
        energies = []
        for sign in (1.0, -1.0):
            displaced = atoms.copy()
            displaced.positions[index] += sign * step * direction
            energies.append(calc.get_potential_energy(displaced))
        numerical = -(energies[0] - energies[1]) / (2 * step)
        assert abs(forces[index] @ direction) > 1e-2
        assert forces[index] @ direction == pytest.approx(numerical, abs=1e-7)


def test_direct_model(direct_omol) -> None:
    model, path = direct_omol
    calc = get_teacher("orb-v3-direct-omol", weights_path=path)
    info = teacher_info(calc)
    assert info.conservative is False
    assert info.cutoff == 6.0
    atoms = ethanol()
    atoms.calc = calc
    energy = atoms.get_potential_energy()
    forces = atoms.get_forces()
    assert isinstance(energy, float) and np.isfinite(energy)
    assert forces.shape == (len(atoms), 3) and np.isfinite(forces).all()

    reference = ethanol(charge=0, spin=1)
    reference.calc = ORBCalculator(model, device="cpu")
    assert energy == pytest.approx(reference.get_potential_energy(), rel=1e-5)
    np.testing.assert_allclose(forces, reference.get_forces(), rtol=1e-5, atol=1e-6)


@pytest.fixture(scope="module")
def periodic_teacher(conservative_omat):
    _, path = conservative_omat
    return get_teacher("orb-v3-conservative-inf-omat", weights_path=path, precision="float64")


def test_float64_periodic_teacher_matches_orb_calculator(periodic_teacher, conservative_omat):
    atoms = copper()
    atoms.calc = periodic_teacher
    energy, forces, stress = atoms.get_potential_energy(), atoms.get_forces(), atoms.get_stress()
    # Orb's loader sets torch's default dtype for the whole process; the adapter must not.
    assert torch.get_default_dtype() == torch.float32
    assert forces.dtype == stress.dtype == np.float64

    model, _ = conservative_omat
    reference = copper()
    with default_dtype(torch.float64):  # how orb-models runs a float64 model
        reference.calc = ORBCalculator(model.double(), device="cpu")
        expected = (
            reference.get_potential_energy(),
            reference.get_forces(),
            reference.get_stress(),
        )
    assert energy == pytest.approx(expected[0], rel=1e-12)
    np.testing.assert_allclose(forces, expected[1], rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(stress, expected[2], rtol=1e-9, atol=1e-12)


def test_stress_is_strain_derivative_of_energy(periodic_teacher) -> None:
    atoms = copper()
    atoms.calc = periodic_teacher
    stress = voigt_6_to_full_3x3_stress(atoms.get_stress())  # ASE order: xx yy zz yz xz xy
    assert np.abs(stress).max() > 1e-4

    rng = np.random.default_rng(1)
    strain = rng.normal(size=(3, 3))
    strain = (strain + strain.T) / np.abs(strain + strain.T).max()
    step = 1e-4  # observed relative error: 8e-6 at 1e-3, 8e-8 at 1e-4
    energies = []
    for sign in (1.0, -1.0):
        strained = atoms.copy()
        strained.set_cell(atoms.cell @ (np.eye(3) + sign * step * strain), scale_atoms=True)
        energies.append(periodic_teacher.get_potential_energy(strained))
    numerical = (energies[0] - energies[1]) / (2 * step)  # dE/dt along the strain
    assert atoms.get_volume() * np.sum(stress * strain) == pytest.approx(numerical, rel=1e-6)


def test_no_stress_for_a_molecule(periodic_teacher) -> None:
    atoms = ethanol()
    atoms.center(vacuum=4.0)  # a box, but not periodic: Orb alone would return a stress
    atoms.calc = periodic_teacher
    assert np.isfinite(atoms.get_potential_energy())
    with pytest.raises(PropertyNotImplementedError):
        atoms.get_stress()


def test_missing_weights_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(TeacherError, match="no_such_weights.ckpt"):
        get_teacher("orb-v3-conservative-omol", weights_path=tmp_path / "no_such_weights.ckpt")


@pytest.mark.parametrize("content", ["direct", "garbage"])
def test_wrong_weights_file_says_to_check_it(content: str, direct_omol, tmp_path: Path) -> None:
    if content == "direct":  # a real checkpoint, of another architecture
        _, path = direct_omol
    else:
        path = tmp_path / "garbage.ckpt"
        path.write_bytes(b"not a checkpoint")
    with pytest.raises(TeacherError, match="check the file") as excinfo:
        get_teacher("orb-v3-conservative-omol", weights_path=path)
    assert str(path) in str(excinfo.value)
