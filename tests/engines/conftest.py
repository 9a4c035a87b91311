"""Fixtures every engine test shares: one seeded random student (checkpoint), its float64
and float32 exports, and the ASE calculator the engines are compared with.

A test module sets ``ELEMENTS`` (the student's elements) and ``TOLERANCE`` (the export
dtypes it needs, with their tolerances); the fixtures read both from it.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from mlff_distiller import StudentCalculator
from mlff_distiller.export import export


@pytest.fixture(scope="module", autouse=True)
def _engine_threads(one_thread):
    """A hundred atoms per call: one torch thread beats two on a shared 2-core machine."""


@pytest.fixture(scope="module")
def checkpoint(request, tmp_path_factory, make_student_checkpoint) -> Path:
    elements = request.module.ELEMENTS
    return make_student_checkpoint(tmp_path_factory.mktemp("run") / "best.pt", elements)


@pytest.fixture(scope="module")
def models(request, checkpoint, tmp_path_factory) -> dict[str, Path]:
    out = tmp_path_factory.mktemp("exported")
    dtypes = request.module.TOLERANCE
    return {d: export(checkpoint, out / f"student_{d}.pt", dtype=d) for d in dtypes}


@pytest.fixture(scope="module")
def reference(checkpoint) -> StudentCalculator:
    return StudentCalculator(checkpoint)
