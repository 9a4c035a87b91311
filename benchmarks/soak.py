"""Soak: a long Langevin run of a shipped student in each engine, with the memory sampled.

Run from the repo root (one engine at a time; each result is written when its run ends, so
an interrupted soak continues with the engines that have no result yet)::

    .venv/bin/python benchmarks/soak.py [--steps 100000] [--engines lammps,openmm,ase]

Each engine runs in its own process (ASE and OpenMM in Python, LAMMPS through `lmp`, one
torch thread; ms per step from the MD loop alone): 32 waters (96 atoms), the shipped `tiny`
(float32), 300 K, 0.5 fs, Langevin friction 10/ps. This script samples the resident set size
of that process and its children every 2 s. Reported per engine: wall time, ms per step, the
RSS after start-up (the first tenth of the run), at the end and at most, the growth over the
second half (median of the last tenth of the samples minus that of the tenth at the half way;
under 5 MB is flat), the slope in MB per 100,000 steps after start-up, the mean temperature over the
second half, and whether every step ran. Results: ``benchmarks/results/soak/{ENGINE}.json``
and ``soak.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from mlff_distiller.files import write_json

ROOT = Path(__file__).resolve().parents[1]
MODEL = ROOT / "torchscript_exports" / "sevennet0-tiny.pt"
OUT = ROOT / "benchmarks" / "results" / "soak"
ENGINES = ("lammps", "openmm", "ase")
#: Growth (MB) over the second half of a run under which the memory counts as flat.
FLAT_MB = 5.0
TEMPERATURE_K = 300.0
TIMESTEP_FS = 0.5
FRICTION_PER_PS = 10.0
#: Steps between two temperature records.
REPORT_EVERY = 1000


def _water():
    from mlff_distiller.data import water_box

    return water_box(32)


def _work_ase(model: Path, steps: int, table: Path) -> None:
    from ase import units
    from ase.md.langevin import Langevin

    from mlff_distiller import StudentCalculator
    from mlff_distiller.engines.runs import initial_velocities

    atoms = _water()
    atoms.calc = StudentCalculator(model)
    atoms.set_velocities(initial_velocities(atoms, TEMPERATURE_K, 1))
    dyn = Langevin(
        atoms,
        timestep=TIMESTEP_FS * units.fs,
        temperature_K=TEMPERATURE_K,
        friction=FRICTION_PER_PS / (1000 * units.fs),
        fixcm=False,
        rng=np.random.default_rng(1),
    )
    start = time.perf_counter()
    with table.open("w") as handle:
        for step in range(REPORT_EVERY, steps + 1, REPORT_EVERY):
            dyn.run(REPORT_EVERY)
            handle.write(f"{step},{atoms.get_temperature():.3f}\n")
            handle.flush()
    _write_loop_time(table, time.perf_counter() - start)


def _work_openmm(model: Path, steps: int, table: Path) -> None:
    import torch  # noqa: F401  (before openmm)

    # isort: split
    import openmm
    from openmm import unit

    from mlff_distiller.engines.openmm import create_system, make_context

    atoms = _water()
    system = create_system(atoms, model)
    integrator = openmm.LangevinMiddleIntegrator(
        TEMPERATURE_K * unit.kelvin,
        FRICTION_PER_PS / unit.picosecond,
        TIMESTEP_FS * unit.femtosecond,
    )
    context = make_context(system, integrator, "CPU", {"Threads": "1"}, atoms=atoms)
    context.setVelocitiesToTemperature(TEMPERATURE_K * unit.kelvin, 1)
    dof = 3 * len(atoms)
    start = time.perf_counter()
    with table.open("w") as handle:
        for step in range(REPORT_EVERY, steps + 1, REPORT_EVERY):
            integrator.step(REPORT_EVERY)
            kinetic = context.getState(getEnergy=True).getKineticEnergy()
            temperature = 2 * kinetic / (dof * unit.MOLAR_GAS_CONSTANT_R)
            handle.write(f"{step},{temperature.value_in_unit(unit.kelvin):.3f}\n")
            handle.flush()
    _write_loop_time(table, time.perf_counter() - start)


def _work_lammps(model: Path, steps: int, table: Path) -> None:
    from mlff_distiller.engines.lammps import Deck, lmp_executable, read_thermo, write_data

    folder = table.parent / "lammps-run"
    folder.mkdir(parents=True, exist_ok=True)
    data = write_data(_water(), folder / "water.data", elements=("H", "O"))
    deck = (
        Deck(data.student_deck(model, relative=True))
        .velocities(TEMPERATURE_K, 4928459).timestep(TIMESTEP_FS).nve()
        .langevin(TEMPERATURE_K, 1 / FRICTION_PER_PS, 4928459, all_dof=True)
        .thermo(REPORT_EVERY, columns=("step", "temp", "pe")).run(steps)
    )  # fmt: skip
    (folder / "in.lammps").write_text(deck.text())
    subprocess.run(
        [lmp_executable(), "-in", "in.lammps"], cwd=folder, check=True,
        stdout=subprocess.DEVNULL, env={**os.environ, "OMP_NUM_THREADS": "1"},
    )  # fmt: skip
    rows = read_thermo(folder / "log.lammps")[-1]
    with table.open("w") as handle:
        for row in rows[1:]:
            handle.write(f"{int(row['Step'])},{row['Temp']:.3f}\n")
    loop = re.search(r"Loop time of ([0-9.eE+-]+)", (folder / "log.lammps").read_text())
    _write_loop_time(table, float(loop.group(1)))


def _write_loop_time(table: Path, seconds: float) -> None:
    """The seconds the MD loop itself took (start-up excluded), next to the table."""
    table.with_suffix(".seconds").write_text(f"{seconds}\n")


WORKERS = {"ase": _work_ase, "openmm": _work_openmm, "lammps": _work_lammps}


def soak(engine: str, model: Path, steps: int, out: Path) -> dict:
    """Run one engine's worker process and sample its memory; returns the result."""
    from mlff_distiller.benchmarking import MEMORY_EVERY_S, rss_mb

    out.mkdir(parents=True, exist_ok=True)
    table = out / f"{engine}-temperature.csv"
    cmd = [sys.executable, __file__, "--worker", engine, "--model", str(model),
           "--steps", str(steps), "--out", str(out)]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    start = time.time()
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, stderr=subprocess.PIPE, text=True)
    samples: list[tuple[float, float]] = []
    while proc.poll() is None:
        rss = rss_mb(proc.pid)
        if rss:  # None or 0 once the process is gone or a zombie
            samples.append((time.perf_counter() - t0, rss))
            if len(samples) % 60 == 0:
                print(f"{engine}: {samples[-1][0]:.0f} s, RSS {rss:.1f} MB", flush=True)
        time.sleep(MEMORY_EVERY_S)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise RuntimeError(f"{engine} soak failed: {proc.stderr.read().strip()[-500:]}")
    records = np.loadtxt(table, delimiter=",", ndmin=2)
    t = np.array([s[0] for s in samples])
    rss = np.array([s[1] for s in samples])
    steps_per_s = steps / wall
    return {
        "engine": engine,
        "model": str(model.relative_to(ROOT) if model.is_relative_to(ROOT) else model),
        "system": "water-32 (96 atoms), Langevin 300 K, 0.5 fs, friction 10/ps",
        "steps": steps,
        "completed": bool(len(records) and int(records[-1, 0]) == steps),
        "wall_seconds": round(wall, 1),
        "ms_per_step": round(1e3 * float(table.with_suffix(".seconds").read_text()) / steps, 3),
        "samples": len(samples),
        **memory_verdict(t, rss, steps_per_s),
        "mean_temperature_K_second_half": round(float(records[len(records) // 2 :, 1].mean()), 1),
        "trace": [[round(a, 1), round(b, 2)] for a, b in samples],
        "started": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(start)),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores",
        "command": " ".join(sys.argv),
    }


def memory_verdict(t: np.ndarray, rss: np.ndarray, steps_per_s: float) -> dict:
    """Growth over the second half and the verdict, from the RSS trace (MB at times ``t``).

    The growth is the median RSS of the last tenth of the samples minus that of the tenth
    that starts the second half: a leak raises both the level and the fitted slope, while a
    transient peak (a large temporary during one step, sampled by chance) moves neither.
    """
    n = len(rss)
    tenth = max(n // 10, 1)
    growth = float(np.median(rss[-tenth:]) - np.median(rss[n // 2 : n // 2 + tenth]))
    steady = t >= 0.1 * t[-1]
    slope = float(np.polyfit(t[steady], rss[steady], 1)[0]) if steady.sum() > 2 else None
    return {
        "rss_mb": {
            "after_start_up": round(float(rss[steady][0]), 2),
            # The last samples catch the process's own exit (Python tearing down: tens of
            # MB for a moment); the run's end is the median of its last tenth.
            "last": round(float(np.median(rss[-tenth:])), 2),
            "max": round(float(rss[:-1].max() if n > 1 else rss.max()), 2),
        },
        "growth_second_half_mb": round(growth, 2),
        "slope_mb_per_100k_steps": None if slope is None else round(slope * 1e5 / steps_per_s, 3),
        "verdict": "flat" if growth < FLAT_MB else "growing",
    }


def rejudge(result: dict) -> dict:
    """``result`` with its growth and verdict recomputed from its stored trace."""
    trace = np.array(result["trace"], dtype=float)
    steps_per_s = result["steps"] / result["wall_seconds"]
    return {**result, **memory_verdict(trace[:, 0], trace[:, 1], steps_per_s)}


def table(results: list[dict]) -> str:
    lines = [
        "# Soak: memory and stability over long runs",
        "",
        f"Command: `{results[0]['command']}` (one engine at a time, one torch thread). "
        f"{results[0]['system']}, `{results[0]['model']}`. End: the median RSS of the last "
        "tenth of the samples (the very last ones catch the process's exit); growth: that "
        "minus the median of the tenth at the half way (under 5 MB is flat).",
        "",
        "| engine | steps | completed | ms/step | RSS after start-up / end / max (MB) | "
        "growth, second half (MB) | slope (MB per 100k steps) | verdict | T, second half (K) |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in results:
        m = r["rss_mb"]
        lines.append(
            f"| {r['engine']} | {r['steps']:,} | {r['completed']} | {r['ms_per_step']:.2f} | "
            f"{m['after_start_up']:.1f} / {m['last']:.1f} / {m['max']:.1f} | "
            f"{r['growth_second_half_mb']:.2f} | {r['slope_mb_per_100k_steps']} | "
            f"{r['verdict']} | {r['mean_temperature_K_second_half']:.1f} |"
        )
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=100_000)
    parser.add_argument("--engines", default=",".join(ENGINES))
    parser.add_argument("--model", type=Path, default=MODEL)
    parser.add_argument("--out", type=Path, default=OUT)
    parser.add_argument("--force", action="store_true", help="rerun engines that have a result")
    parser.add_argument("--worker", choices=ENGINES, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.steps < REPORT_EVERY or args.steps % REPORT_EVERY:
        parser.error(f"--steps must be a positive multiple of {REPORT_EVERY}")
    if args.worker:
        WORKERS[args.worker](
            args.model.resolve(), args.steps, args.out / f"{args.worker}-temperature.csv"
        )
        return
    engines = [e.strip() for e in args.engines.split(",") if e.strip()]
    unknown = set(engines) - set(ENGINES)
    if unknown:
        parser.error(
            f"unknown engine(s) {', '.join(sorted(unknown))}; choose from {', '.join(ENGINES)}"
        )
    for engine in engines:
        path = args.out / f"{engine}.json"
        if path.is_file() and not args.force:
            previous = json.loads(path.read_text())
            if previous.get("completed") and previous.get("steps") == args.steps:
                print(f"{engine}: done before ({path}); --force reruns it")
                continue
        result = soak(engine, args.model.resolve(), args.steps, args.out)
        write_json(path, result, indent=1)
        print(
            f"{engine}: {result['wall_seconds']:.0f} s, RSS {result['rss_mb']['after_start_up']}"
            f" -> {result['rss_mb']['last']} MB, {result['verdict']}"
        )
    # Every stored result judged the same way, whenever it ran.
    results = [rejudge(json.loads((args.out / f"{e}.json").read_text())) for e in ENGINES
               if (args.out / f"{e}.json").is_file()]  # fmt: skip
    if results:
        (args.out / "soak.md").write_text(table(results))


if __name__ == "__main__":
    main()
