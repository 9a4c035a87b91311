"""Close contacts: two atoms alone in space pushed together, student against teacher.

Inside about 0.8 × the sum of their covalent radii a physical pair only climbs in energy
(bonds are ~1.0 × long). A student can grow an energy well there that its teacher does not
have, where no MD frame of its training data came: MD that brings two atoms that close then
fuses them. (``benchmarks/close_pairs.py`` found such wells in every student up to
2026-12-03, H–H 15.8 eV deep in the shipped ``tiny``; SevenNet-0 has none there.)

A well's depth is how far the energy falls below its value at :data:`WELL_EDGE` × the radii
sum, over :data:`FRACTIONS` (from 0.55 ×: deeper in, the students' ZBL core takes over and
teachers without one are wrong themselves).

>>> wells = close_contact_wells(student, teacher, ["H", "O"])  # doctest: +SKIP
>>> wells["H-H"]["excess_eV"]  # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from ase import Atoms
from ase.calculators.calculator import Calculator
from ase.data import atomic_numbers, covalent_radii

#: Where a well is measured from: its depth is the fall below the energy at this fraction.
WELL_EDGE = 0.8
#: The fractions of the radii sum the pair is put at.
FRACTIONS = np.linspace(0.55, WELL_EDGE, 11)
#: The direction the pair lies along (off every axis, so no symmetry hides an error).
_DIRECTION = np.array([0.6, 0.8, 0.0])


def pair_curve(
    calc: Calculator, first: str, second: str, fractions: np.ndarray = FRACTIONS
) -> np.ndarray:
    """The energy (eV) of ``first`` and ``second`` alone in space at each of ``fractions`` ×
    the sum of their covalent radii."""
    rsum = covalent_radii[atomic_numbers[first]] + covalent_radii[atomic_numbers[second]]
    energies = []
    for x in fractions:
        atoms = Atoms([first, second], positions=[[0, 0, 0], x * rsum * _DIRECTION])
        atoms.calc = calc
        energies.append(atoms.get_potential_energy())
    return np.array(energies)


def well_depth(energies: np.ndarray, fractions: np.ndarray = FRACTIONS) -> tuple[float, float]:
    """The depth (eV) of the deepest point of a pair curve below its last point, and the
    fraction where it is (the last fraction and 0 for a curve that only climbs inwards)."""
    lowest = int(np.argmin(energies))
    return float(energies[-1] - energies[lowest]), float(fractions[lowest])


def close_contact_wells(
    student: Calculator, teacher: Calculator, elements: Sequence[str]
) -> dict[str, dict[str, float]]:
    """For every pair of ``elements`` (``"O-H"``: heavier first): the student's and the
    teacher's well depths inside :data:`WELL_EDGE` × the radii sum, the student's excess
    over the teacher's (what the check judges) and where the student's well bottoms."""
    ordered = sorted(set(elements), key=lambda s: -atomic_numbers[s])
    out = {}
    for a, first in enumerate(ordered):
        for second in ordered[a:]:
            depth, where = well_depth(pair_curve(student, first, second))
            reference, _ = well_depth(pair_curve(teacher, first, second))
            out[f"{first}-{second}"] = {
                "student_eV": depth,
                "teacher_eV": reference,
                "excess_eV": max(depth - reference, 0.0),
                "at_fraction": where,
            }
    return out
