"""Compression: a periodic system squeezed as a barostat squeezes it, student against teacher.

The cell is scaled isotropically to each of :data:`FRACTIONS` of its edge with every molecule
kept whole and moved with its centre (as :func:`mlff_distiller.data.squeeze_cells` does, no
rattle), and the pressure (from the stress, GPa) of the student is compared with the
teacher's. MD at constant volume and density never goes there; NPT at high pressure does,
and a student with no data there can turn attractive: the ``standard`` shipped on
2026-12-06 gave -216 GPa for 32 waters at 0.85 of their edge, where SevenNet-0 gives +25
GPa, and a tiny candidate of the same day blew up under a 50 kbar barostat.

The error at each fraction is ``|P_student - P_teacher| / max(|P_teacher|, 1 GPa)`` (the floor
keeps a pressure near zero at the starting density from making a small difference look
large); the check judges the worst fraction.

>>> curve = compression_curve(student, teacher, water_box(32))  # doctest: +SKIP
>>> curve["worst_rel"], curve["at_fraction"]  # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from ase import Atoms, units
from ase.calculators.calculator import Calculator

#: Edge fractions the cell is squeezed to (0.85: about 1.6 × the density).
FRACTIONS = (1.0, 0.95, 0.9, 0.85)
#: Pressures below this (GPa) are compared as if they were this large.
FLOOR_GPA = 1.0
_EV_PER_A3_TO_GPA = 1.0 / units.GPa


def pressure_gpa(atoms: Atoms, calc: Calculator) -> float:
    """The pressure, minus a third of the stress trace, in GPa (potential part: no kinetic
    term, the structure is static)."""
    atoms = atoms.copy()
    atoms.calc = calc
    return float(-np.mean(atoms.get_stress(voigt=True)[:3]) * _EV_PER_A3_TO_GPA)


def compression_curve(
    student: Calculator,
    teacher: Calculator,
    atoms: Atoms,
    fractions: Sequence[float] = FRACTIONS,
) -> dict[str, Any]:
    """The student's and the teacher's pressure (GPa) at each of ``fractions`` of the cell's
    edge, the relative error at each, and the worst one with the fraction it is at. ``{}``
    for a structure that is not fully periodic (nothing to squeeze)."""
    from ..data.sampling import squeeze_anchors, squeeze_to

    if not atoms.pbc.all():
        return {}
    positions, anchors = squeeze_anchors(atoms)  # the molecules are found once
    student_p, teacher_p = [], []
    for fraction in fractions:
        squeezed = atoms.copy()
        squeeze_to(squeezed, positions, anchors, fraction)
        squeezed.wrap()
        student_p.append(pressure_gpa(squeezed, student))
        teacher_p.append(pressure_gpa(squeezed, teacher))
    student_a, teacher_a = np.array(student_p), np.array(teacher_p)
    relative = np.abs(student_a - teacher_a) / np.maximum(np.abs(teacher_a), FLOOR_GPA)
    relative = np.where(np.isfinite(relative), relative, np.inf)  # NaN never passes
    worst = int(np.argmax(relative))
    return {
        "fractions": [float(f) for f in fractions],
        "student_GPa": student_p,
        "teacher_GPa": teacher_p,
        "relative_error": relative.tolist(),
        "worst_rel": float(relative[worst]),
        "at_fraction": float(fractions[worst]),
    }
