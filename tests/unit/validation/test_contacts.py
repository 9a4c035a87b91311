"""Close contacts: a pair potential with a well inside 0.8 × the radii sum is measured as
deep as it is, a purely repulsive one has none, and only the student's excess counts."""

from __future__ import annotations

import numpy as np
import pytest
from ase.calculators.morse import MorsePotential
from ase.data import covalent_radii

from mlff_distiller.validation.contacts import (
    FRACTIONS,
    WELL_EDGE,
    close_contact_wells,
    pair_curve,
    well_depth,
)


def _morse(r: np.ndarray, epsilon: float, r0: float, rho0: float = 6.0) -> np.ndarray:
    x = np.exp(rho0 * (1.0 - r / r0))
    return epsilon * x * (x - 2.0)


def test_a_well_inside_the_window_is_measured_and_a_wall_is_not():
    rsum = 2 * covalent_radii[1]  # H-H
    welled = MorsePotential(epsilon=2.0, r0=0.65 * rsum, rcut1=5.0, rcut2=6.0)
    wall = MorsePotential(epsilon=2.0, r0=1.2 * rsum, rcut1=5.0, rcut2=6.0)

    curve = pair_curve(welled, "H", "H")
    np.testing.assert_allclose(curve, _morse(FRACTIONS * rsum, 2.0, 0.65 * rsum), atol=1e-9)
    depth, where = well_depth(curve)
    assert where == pytest.approx(0.65)  # the grid point at the minimum
    assert depth == pytest.approx(_morse(WELL_EDGE * rsum, 2.0, 0.65 * rsum) + 2.0, rel=1e-9)
    assert depth > 1.0
    assert well_depth(pair_curve(wall, "H", "H")) == (0.0, WELL_EDGE)

    wells = close_contact_wells(welled, wall, ["O", "H", "H"])
    assert sorted(wells) == ["H-H", "O-H", "O-O"]  # each pair once, heavier element first
    assert wells["H-H"]["excess_eV"] == pytest.approx(depth)
    assert wells["H-H"]["teacher_eV"] == 0.0
    # The teacher's own well is not held against the student.
    same = close_contact_wells(welled, welled, ["H"])
    assert same["H-H"]["excess_eV"] == 0.0 and same["H-H"]["student_eV"] == pytest.approx(depth)
