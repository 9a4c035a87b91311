"""The FeNNol adapter, run on a small FENNIX model built and saved here with FeNNol itself."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from ase import Atoms
from ase.build import molecule
from ase.calculators.calculator import PropertyNotImplementedError
from ase.calculators.fd import calculate_numerical_stress

from mlff_distiller.teachers import (
    TeacherError,
    UnsupportedElementError,
    get_teacher,
    teacher_info,
)

pytest.importorskip("fennol")  # an optional extra ("pip install .[fennol]"); CI installs it
pytestmark = pytest.mark.teacher  # a FeNNol model built and jitted per module

#: An unusual value, so the test sees the model's cutoff and not some default.
CUTOFF = 4.25
SPECIES = ["H", "C", "N", "O"]


@pytest.fixture(scope="module")
def model_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny PaiNN-based FENNIX model with random weights, saved by ``FENNIX.save``."""
    import jax
    from fennol import FENNIX

    modules = {
        "embedding": {
            "module_name": "PAINN",
            "dim": 8,
            "nchannels": 4,
            "nlayers": 2,
            "message_hidden": [8],
            "update_hidden": [8],
            "radial_basis": {"dim": 6},
            "species_encoding": {"encoding": "onehot", "species_order": SPECIES},
        },
        "energy": {
            "module_name": "NEURAL_NET",
            "neurons": [8, 1],
            "input_key": "embedding",
            "squeeze": True,
        },
    }
    model = FENNIX(
        cutoff=CUTOFF,
        modules=modules,
        energy_terms=["energy"],
        rng_key=jax.random.PRNGKey(3),
    )
    path = tmp_path_factory.mktemp("fennol") / "tiny.fnx"
    model.save(path)
    return path


@pytest.fixture(scope="module")
def teacher(model_path: Path):
    return get_teacher("fennol", weights_path=model_path)


def ethanol() -> Atoms:
    atoms = molecule("CH3CH2OH")
    atoms.rattle(0.05, seed=1)
    return atoms


def test_matches_fennol_own_calculator(teacher, model_path: Path) -> None:
    from fennol.ase import FENNIXCalculator

    reference = FENNIXCalculator(str(model_path), use_float64=True)
    atoms = ethanol()
    expected_energy = reference.get_potential_energy(atoms)
    expected_forces = reference.get_forces(atoms)

    assert teacher.get_potential_energy(atoms) == pytest.approx(expected_energy, rel=1e-10)
    np.testing.assert_allclose(teacher.get_forces(atoms), expected_forces, rtol=1e-8, atol=1e-10)
    assert np.abs(expected_forces).max() > 1e-3  # random weights still give real forces


def test_forces_are_minus_energy_gradient(teacher) -> None:
    atoms = ethanol()
    atoms.calc = teacher
    forces = atoms.get_forces()
    step = 1e-4
    numerical = np.zeros_like(forces)
    for i in range(len(atoms)):
        for k in range(3):
            energies = []
            for sign in (1.0, -1.0):
                displaced = atoms.copy()
                displaced.positions[i, k] += sign * step
                energies.append(teacher.get_potential_energy(displaced))
            numerical[i, k] = -(energies[0] - energies[1]) / (2 * step)
    np.testing.assert_allclose(forces, numerical, atol=1e-6)


def test_stress_is_strain_derivative_for_periodic_cells(teacher) -> None:
    atoms = molecule("H2O", cell=[4.0, 4.5, 5.0], pbc=True)
    atoms.rattle(0.05, seed=2)
    atoms.calc = teacher
    stress = atoms.get_stress()
    numerical = calculate_numerical_stress(atoms, eps=1e-5)
    assert np.abs(stress).max() > 1e-6
    np.testing.assert_allclose(stress, numerical, atol=1e-8)

    isolated = molecule("H2O", cell=[10.0, 10.0, 10.0], pbc=False)
    with pytest.raises(PropertyNotImplementedError, match="periodic"):
        teacher.get_stress(isolated)


def test_switching_periodicity_in_the_same_cell_is_seen(teacher) -> None:
    isolated = ethanol()
    expected = teacher.get_potential_energy(isolated)
    periodic = isolated.copy()
    periodic.set_cell([4.0, 4.0, 4.0])  # shorter than twice the cutoff: images interact
    periodic.pbc = True
    assert teacher.get_potential_energy(periodic) != pytest.approx(expected, abs=1e-6)
    periodic.pbc = False
    assert teacher.get_potential_energy(periodic) == pytest.approx(expected, rel=1e-10)


def test_teacher_info_comes_from_the_model_file(teacher, model_path: Path) -> None:
    info = teacher_info(teacher)
    assert info.name == "fennol"
    assert info.package == "fennol"
    assert info.version != "unknown"
    assert info.cutoff == pytest.approx(CUTOFF)
    assert info.elements == ("H", "C", "N", "O")
    assert info.conservative is True
    assert info.kwargs["weights_path"] == str(model_path)
    with pytest.raises(UnsupportedElementError, match="Cl"):
        info.check_elements(["C", "H", "Cl"])


def test_missing_weights_path_says_how_to_fix() -> None:
    with pytest.raises(TeacherError, match="weights_path="):
        get_teacher("fennol")


def test_nonexistent_model_file_is_named(tmp_path: Path) -> None:
    missing = tmp_path / "no_such_model.fnx"
    with pytest.raises(TeacherError, match="no_such_model.fnx") as excinfo:
        get_teacher("fennol", weights_path=missing)
    assert "weights_path=" in str(excinfo.value)
