"""Honest per-call latency: an atom moves before every call, so no calculator cache is hit."""

from __future__ import annotations

import os
import statistics
import time
from pathlib import Path

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


def median_ms(call, calls: int, warmup: int = 2) -> float:
    """Median milliseconds of ``calls`` timed calls of ``call()`` after ``warmup`` untimed
    ones (TorchScript optimises on its first calls)."""
    for _ in range(warmup):
        call()
    times = []
    for _ in range(calls):
        start = time.perf_counter()
        call()
        times.append(time.perf_counter() - start)
    return 1e3 * statistics.median(times)


def untrained_student(
    preset: str, elements: list[str], path: str | os.PathLike, dtype: str = "float32"
) -> Path:
    """Export a ``preset`` student with untrained weights, for speed measurements only.

    What a step costs depends on the architecture, the elements and the neighbour count, not
    on the weights, so benchmarks need no training. The metadata says it is untrained.
    """
    from .devices import torch_dtype
    from .export.exporter import export_module, student_metadata
    from .models import build_model

    as_torch = torch_dtype(dtype)  # refuses anything but float32 and float64
    model = build_model(preset, list(elements)).to(as_torch).eval()
    metadata = student_metadata(
        model,
        list(elements),
        dtype,
        preset=preset,
        teacher={"name": "none (untrained, for timing only)"},
        dataset_hash=None,
    )
    return export_module(model, path, metadata)
