"""``mlff-distill benchmark`` in its quick mode on the real engines (teacher, ASE, OpenMM,
``lmp`` on 1 and 2 ranks, TIP3P) and a short memory run. Timings are never asserted: the
tests check that every number is there, finite, and consistent with the numbers it is
derived from."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

from mlff_distiller.benchmarking import DT_FS, run_memory, run_speed, speed_table
from mlff_distiller.cli import main


@pytest.fixture(scope="module")
def speed(tmp_path_factory):
    out = tmp_path_factory.mktemp("bench")
    return out, run_speed(out, presets=("tiny",), quick=True, progress=False, rounds=2)


def test_speed_rows_cover_every_engine_and_are_consistent(speed):
    out, result = speed
    assert json.loads((out / "benchmark.json").read_text()) == result
    assert [r["atoms"] for r in result["rows"]] == [12, 96]
    expected = {
        "teacher (ASE)", "TIP3P (OpenMM)", "tiny ASE", "tiny OpenMM",
        "tiny LAMMPS 1 rank", "tiny LAMMPS 2 ranks",
    }  # fmt: skip
    assert result["rounds"] == 2
    for row in result["rows"]:
        assert set(row["ms"]) == expected
        # Every measurement but the teacher's twice, interleaved; the table has the median.
        assert set(row["ms_rounds"]) == expected - {"teacher (ASE)"}
        for key, both in row["ms_rounds"].items():
            assert len(both) == 2 and row["ms"][key] == pytest.approx(sum(both) / 2), key
        for key, ms in row["ms"].items():
            assert math.isfinite(ms) and ms > 0, key
            assert row["ns_per_day"][key] == pytest.approx(DT_FS * 86.4 / ms)  # fs·(steps/day)
            assert row["us_per_atom_step"][key] == pytest.approx(1000.0 * ms / row["atoms"])
            assert row["times_classical_floor"][key] == pytest.approx(
                ms / row["ms"]["TIP3P (OpenMM)"]
            )
            if key != "teacher (ASE)":
                assert row["speedup_vs_teacher"][key] == pytest.approx(
                    row["ms"]["teacher (ASE)"] / ms
                )
    table = (out / "benchmark.md").read_text()
    assert table == speed_table(result)
    # Two tables, ms per step then ns/day, each with a line per size; the ns/day cells
    # follow from the ms ones.
    ms_part, ns_part = table.split(f"ns/day at a {DT_FS:g} fs step:")
    keys = list(result["rows"][0]["ms"])
    for row in result["rows"]:
        assert ms_part.count(f"\n| {row['atoms']:,} | {row['ms'][keys[0]]:.3g} (") == 1
        line = next(x for x in ns_part.splitlines() if x.startswith(f"| {row['atoms']:,} |"))
        cells = [float(c) for c in line.strip("| ").split(" | ")[1:]]
        assert cells == pytest.approx([DT_FS * 86.4 / row["ms"][k] for k in keys], rel=5e-3)
    per_atom = ms_part.split("µs per atom-step")[1]
    for row in result["rows"]:
        line = next(x for x in per_atom.splitlines() if x.startswith(f"| {row['atoms']:,} |"))
        cells = [float(c) for c in line.strip("| ").split(" | ")[1:]]
        assert cells == pytest.approx([row["us_per_atom_step"][k] for k in keys], rel=5e-3)
    assert "untrained presets for H, C, N, O, F, S, Cl" == result["students"]
    assert (out / "benchmark.png").stat().st_size > 0


@pytest.mark.parametrize("rounds", [0, 1.5, True])
def test_a_bad_round_count_is_a_clear_error(rounds, tmp_path):
    with pytest.raises(ValueError, match="rounds must be a whole number of at least 1"):
        run_speed(tmp_path, presets=("tiny",), quick=True, progress=False, rounds=rounds)


def test_memory_run_samples_the_lmp_process(tmp_path):
    result = run_memory(tmp_path, calls=3000, progress=False)
    assert result["completed"] and result["calls"] == 3000
    assert result["samples"] == len(result["trace"]) >= 1
    first, last, peak = (result["rss_mb"][k] for k in ("after_start_up", "last", "max"))
    assert 0 < first <= peak and last <= peak
    # The LAMMPS binary (a child of the `lmp` launcher) holds torch and the student: far more
    # than the launcher's ~35 MB alone.
    assert first > 150
    assert result["verdict"] in ("flat", "growing")
    assert (tmp_path / "memory.png").stat().st_size > 0


def test_bad_input_is_a_one_line_error(tmp_path, capsys):
    assert main(["benchmark", "--model", str(tmp_path / "none.pt"), "--out", str(tmp_path)]) == 1
    assert "does not exist" in capsys.readouterr().err
    with pytest.raises(ValueError, match="at least 1000"):
        run_memory(tmp_path, calls=10)


def test_gpu_check_runs_on_the_cpu_in_quick_mode(tmp_path):
    """``benchmarks/gpu_check.py --device cpu --quick``: the GPU check with the CPU in the
    GPU's place (CI has no GPU), every engine, the shipped student; CPU against CPU agrees
    to well inside the parity threshold and the table has every engine's speed."""
    repo = Path(__file__).resolve().parents[2]
    done = subprocess.run(
        [sys.executable, str(repo / "benchmarks/gpu_check.py"), "--device", "cpu", "--quick",
         "--out", str(tmp_path)],
        capture_output=True, text=True, timeout=600, env={**os.environ, "OMP_NUM_THREADS": "1"},
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    result = json.loads((tmp_path / "gpu_check.json").read_text())
    assert result["device"] == "cpu" and result["not_measured"] == []
    assert set(result["parity"]) == {"ASE", "OpenMM", "LAMMPS"}
    for systems in result["parity"].values():
        assert set(systems) == {"ethanol", "water-96"}
        for figures in systems.values():
            assert {"energy", "forces"} <= set(figures)
            assert all(0 <= value <= result["parity_threshold"] for value in figures.values())
    assert "stress" in result["parity"]["ASE"]["water-96"]
    (row,) = result["speed"]
    assert row["atoms"] == 96
    assert set(row["ms"]) == {"ASE cpu", "OpenMM CPU", "LAMMPS cpu"}
    for name, ms in row["ms"].items():
        assert ms > 0 and math.isclose(row["us_per_atom_step"][name], 1e3 * ms / 96)
    assert "| LAMMPS | water-96 | forces |" in (tmp_path / "gpu_check.md").read_text()
