"""The teacher registry: SevenNet-0 for real, any ASE calculator by import path, errors."""

from __future__ import annotations

import numpy as np
import pytest
from ase import Atoms
from ase.build import bulk, molecule

from mlff_distiller.teachers import (
    TeacherError,
    TeacherInfo,
    UnsupportedElementError,
    available_teachers,
    get_teacher,
    registered_teachers,
    teacher_info,
)


def test_registered_names_cover_the_families():
    names = set(registered_teachers())
    assert {"sevennet-0", "fennol", "orb-v2"} <= names
    assert {
        "orb-v3-conservative-omol",
        "orb-v3-direct-omol",
        "orb-v3-conservative-inf-omat",
        "orb-v3-direct-inf-omat",
    } <= names
    assert available_teachers()["sevennet-0"].startswith("available")


def test_sevennet_metadata(sevennet):
    info = teacher_info(sevennet)
    assert info.name == "sevennet-0"
    assert info.package == "sevenn"
    assert info.version[0].isdigit()
    assert info.cutoff == pytest.approx(5.0)
    assert info.conservative is True
    assert {"H", "C", "N", "O", "F", "S", "Cl"} <= set(info.elements)
    assert TeacherInfo.from_dict(info.to_dict()) == info


def test_sevennet_forces_are_energy_gradients(sevennet):
    atoms = molecule("H2O")
    atoms.calc = sevennet
    forces = atoms.get_forces()
    h = 1e-3
    for atom, axis in [(0, 0), (1, 2), (2, 1)]:
        energies = []
        for sign in (1, -1):
            displaced = atoms.copy()
            displaced.positions[atom, axis] += sign * h
            displaced.calc = sevennet
            energies.append(displaced.get_potential_energy())
        # SevenNet computes in float32: finite differences agree to ~1e-2 eV/Å.
        assert forces[atom, axis] == pytest.approx(-(energies[0] - energies[1]) / (2 * h), abs=2e-2)


def test_sevennet_stress_for_periodic_cells(sevennet):
    atoms = bulk("Si", "diamond", a=5.43, cubic=True)
    atoms.rattle(0.02, seed=1)
    atoms.calc = sevennet
    stress = atoms.get_stress()
    assert stress.shape == (6,) and np.all(np.isfinite(stress))
    # Strain derivative: stress_xx = (1/V) dE/dε_xx, by central differences.
    eps, volume = 1e-3, atoms.get_volume()
    energies = []
    for sign in (1, -1):
        strained = atoms.copy()
        strained.set_cell(atoms.cell.array @ np.diag([1 + sign * eps, 1, 1]), scale_atoms=True)
        strained.calc = sevennet
        energies.append(strained.get_potential_energy())
    assert stress[0] == pytest.approx((energies[0] - energies[1]) / (2 * eps) / volume, abs=2e-3)


def test_import_path_builds_any_ase_calculator_with_kwargs():
    calc = get_teacher("ase.calculators.emt:EMT", asap_cutoff=True)
    assert calc.parameters["asap_cutoff"] is True
    info = teacher_info(calc)
    assert info.name == "ase.calculators.emt:EMT"
    assert info.package == "ase" and info.version[0].isdigit()
    assert info.kwargs == {"asap_cutoff": True}
    assert info.elements is None and info.cutoff is None
    atoms = bulk("Cu", cubic=True)
    atoms.calc = calc
    assert atoms.get_stress().shape == (6,)


def test_teacher_info_of_a_foreign_calculator():
    from ase.calculators.lj import LennardJones

    info = teacher_info(LennardJones())
    assert info.name == "ase.calculators.lj:LennardJones"
    assert info.conservative is None


@pytest.mark.parametrize(
    ("spec", "kwargs", "message"),
    [
        ("not-a-teacher", {}, "unknown teacher 'not-a-teacher'"),
        ("", {}, "non-empty string"),
        ("no_such_module_xyz:Calc", {}, "cannot import 'no_such_module_xyz'"),
        ("ase.calculators.emt:NoSuchClass", {}, "has no attribute 'NoSuchClass'"),
        ("ase.calculators.singlepoint:SinglePointCalculator", {"bogus": 1}, "cannot build"),
        ("numpy:array", {"object": [1]}, "not an ASE calculator"),
        ("sevennet", {}, "needs model=PATH"),
        ("sevennet", {"model": "/nonexistent/ckpt.pth"}, "does not exist"),
    ],
)
def test_bad_specs_give_actionable_errors(spec, kwargs, message):
    with pytest.raises(TeacherError, match=message):
        get_teacher(spec, **kwargs)


def test_unsupported_elements_are_named():
    info = TeacherInfo(name="t", package="p", version="1", elements=("H", "O"))
    info.check_elements({"H", "O"})
    with pytest.raises(UnsupportedElementError, match=r"element\(s\) C, Cl in structure 3"):
        info.check_elements({"H", "Cl", "C"}, where="structure 3")


def test_sevennet_rejects_elements_it_does_not_know(sevennet):
    with pytest.raises(UnsupportedElementError, match="Am"):
        teacher_info(sevennet).check_elements(set(Atoms("AmH").get_chemical_symbols()))
