"""Honest per-call latency: an atom moves before every call, so no calculator cache is hit."""

from __future__ import annotations

import statistics
import time

from ase import Atoms
from ase.calculators.calculator import Calculator


def latency_ms(calc: Calculator, structures: list[Atoms], repeats: int) -> float:
    """Median milliseconds per ``get_forces`` call of ``calc`` over ``structures``.

    Before every call one atom moves by 1e-3 Å (a different atom each time), so ASE's cache
    of results for unchanged atoms can never answer instead of the calculator.
    """
    times = []
    for atoms in structures:
        work = atoms.copy()
        work.calc = calc
        for k in range(repeats):
            work.positions[k % len(work), 0] += 1e-3
            start = time.perf_counter()
            work.get_forces()
            times.append(time.perf_counter() - start)
    return 1e3 * statistics.median(times)
