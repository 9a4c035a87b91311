"""The soak benchmark's memory verdict (``benchmarks/soak.py``): a leak reads as growing, a
flat trace with the process's exit spike at its end (as the ASE soak recorded) reads as flat."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

SOAK = Path(__file__).parents[2] / "benchmarks" / "soak.py"


@pytest.fixture(scope="module")
def soak():
    spec = importlib.util.spec_from_file_location("soak_benchmark", SOAK)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _trace(n: int = 700, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Two seconds between samples, ±3 MB of noise around 588 MB."""
    t = 2.0 * np.arange(n)
    return t, 588.0 + np.random.default_rng(seed).uniform(-3.0, 3.0, n)


def test_a_flat_trace_with_an_exit_spike_is_flat(soak):
    t, rss = _trace()
    rss[-2:] = [621.2, 632.3]  # the last samples, taken while Python tears down
    rss[400] = 610.0  # one large temporary caught by chance
    result = soak.memory_verdict(t, rss, steps_per_s=36.0)
    assert result["verdict"] == "flat"
    assert abs(result["growth_second_half_mb"]) < 3.0
    assert result["rss_mb"]["last"] < 592.0 and result["rss_mb"]["max"] == pytest.approx(621.2)


def test_a_leak_reads_as_growing(soak):
    t, rss = _trace()
    rss += np.linspace(0.0, 20.0, len(rss))  # 20 MB over the run: ~10 MB per half
    result = soak.memory_verdict(t, rss, steps_per_s=36.0)
    assert result["verdict"] == "growing"
    assert result["growth_second_half_mb"] > 5.0
    assert result["slope_mb_per_100k_steps"] > 0


def test_stored_results_are_rejudged_from_their_trace(soak):
    t, rss = _trace()
    rss[-1] = 632.3
    stored = {
        "steps": 50_000,
        "wall_seconds": float(t[-1]),
        "trace": np.column_stack([t, rss]).tolist(),
        "verdict": "growing",  # what the old criterion (max minus first) said
        "growth_second_half_mb": 43.5,
    }
    assert soak.rejudge(stored)["verdict"] == "flat"
