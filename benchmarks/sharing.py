"""Two students side by side on one machine: how much of its solo speed each job keeps.

    .venv/bin/python benchmarks/sharing.py [--model torchscript_exports/sevennet0-tiny.pt]
        [--steps 400] [--jobs ase lammps] [--waters 32] [--out benchmarks/results/sharing.json]

Users run on shared nodes: two MD jobs on the same cores. Each job here is a real MD run of
the student (ASE Langevin MD through ``StudentCalculator`` on 32 waters, or one LAMMPS rank
on 256 waters, 768 atoms), timed by itself (solo) and then with a second, identical job
started beside it (shared). Each is run under these thread policies:

- ``default``: ``OMP_NUM_THREADS`` unset and nothing asked: ``StudentCalculator``'s own
  policy (one thread below ``SERIAL_BELOW_ATOMS`` atoms), the plugin's one thread per rank;
- ``every core`` (ASE only): ``StudentCalculator(threads=<cores>)``, what torch would take
  by itself (and what the calculator did before it had a policy);
- ``OMP_NUM_THREADS=1``: one thread per job, asked for by the environment.

The figure of merit is ``shared / solo`` speed per job (the issue asks for >= 0.4 on this
2-core machine). Time it on an otherwise idle machine; the report records the load average
before it starts.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results"
# policy -> (OMP_NUM_THREADS, StudentCalculator's threads); "cores" is os.cpu_count()
POLICIES = {
    "default": (None, None),
    "every core": (None, "cores"),
    "OMP_NUM_THREADS=1": ("1", None),
}
ASE_ONLY = {"every core"}
JOBS = {
    "ase": "ASE MD, {atoms} atoms ({waters} waters)",
    "lammps": "LAMMPS 1 rank, 768 atoms (256 waters)",
}


def _worker(kind: str, model: Path, steps: int, threads: int | None, waters: int) -> dict:
    """One job: ``steps`` MD steps after a warm-up; ms per step (wall clock)."""
    if kind == "ase":
        from ase import units
        from ase.md.langevin import Langevin

        from mlff_distiller import StudentCalculator
        from mlff_distiller.data import water_box

        atoms = water_box(waters)
        atoms.calc = StudentCalculator(str(model), threads=threads)
        dyn = Langevin(atoms, 0.5 * units.fs, temperature_K=300, friction=0.01 / units.fs)
        dyn.run(20)
        start = time.perf_counter()
        dyn.run(steps)
        seconds = time.perf_counter() - start
    elif kind == "lammps":
        from mlff_distiller.benchmarking import lammps_step_ms
        from mlff_distiller.data import water_box
        from mlff_distiller.engines.lammps import write_data

        work = Path(tempfile.mkdtemp(prefix="sharing-"))
        data = write_data(water_box(256), work / "water.data", elements=_elements(model))
        return {"ms_per_step": lammps_step_ms(data, model, work, steps, ranks=1)}
    else:
        raise SystemExit(f"unknown job kind {kind!r}")
    return {"ms_per_step": 1e3 * seconds / steps}


def _elements(model: Path) -> list[str]:
    from mlff_distiller.export import load_exported

    return list(load_exported(model)[1]["elements"])


def _start(kind: str, model: Path, steps: int, policy: str, waters: int) -> subprocess.Popen:
    omp, threads = POLICIES[policy]
    env = dict(os.environ)
    env.pop("OMP_NUM_THREADS", None)
    if omp is not None:
        env["OMP_NUM_THREADS"] = omp
    command = [sys.executable, __file__, "--worker", kind, "--model", str(model),
               "--steps", str(steps), "--waters", str(waters)]  # fmt: skip
    if threads == "cores":
        command += ["--threads", str(os.cpu_count() or 1)]
    return subprocess.Popen(command, env=env, stdout=subprocess.PIPE, text=True)


def _result(proc: subprocess.Popen) -> float:
    out, _ = proc.communicate()
    if proc.returncode != 0:
        raise SystemExit(f"a job failed (exit {proc.returncode})")
    return json.loads(out.strip().splitlines()[-1])["ms_per_step"]


def measure(kind: str, model: Path, steps: int, policy: str, waters: int) -> dict:
    solo = _result(_start(kind, model, steps, policy, waters))
    pair = [_start(kind, model, steps, policy, waters) for _ in range(2)]
    shared = [_result(p) for p in pair]
    return {
        "solo_ms_per_step": solo,
        "shared_ms_per_step": shared,
        "kept_fraction": [solo / s for s in shared],
    }


def table(payload: dict) -> str:
    lines = [
        "| job | threads | solo ms/step | shared ms/step (each) | speed kept (each) |",
        "| --- | --- | --- | --- | --- |",
    ]
    for row in payload["rows"]:
        shared = " / ".join(f"{s:.1f}" for s in row["shared_ms_per_step"])
        kept = " / ".join(f"{k:.0%}" for k in row["kept_fraction"])
        lines.append(f"| {row['job']} | {row['threads']} | {row['solo_ms_per_step']:.1f} | "
                     f"{shared} | {kept} |")  # fmt: skip
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--model", type=Path, default=REPO / "torchscript_exports" / "sevennet0-tiny.pt"
    )
    parser.add_argument("--steps", type=int, default=400)
    parser.add_argument("--jobs", nargs="+", default=["ase", "lammps"], choices=["ase", "lammps"])
    parser.add_argument("--out", type=Path, default=RESULTS / "sharing.json")
    parser.add_argument("--worker", choices=["ase", "lammps"], help=argparse.SUPPRESS)
    parser.add_argument("--threads", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--waters", type=int, default=32, help="water molecules of the ASE job")
    args = parser.parse_args()
    if args.worker:
        print(
            json.dumps(
                _worker(args.worker, args.model.resolve(), args.steps, args.threads, args.waters)
            )
        )
        return
    from mlff_distiller.benchmarking import write_json
    from mlff_distiller.files import write_text

    load = os.getloadavg()[0]
    rows = []
    for kind in args.jobs:
        for policy in POLICIES:
            if policy in ASE_ONLY and kind != "ase":
                continue
            row = {
                "job": JOBS[kind].format(atoms=3 * args.waters, waters=args.waters),
                "threads": policy,
                **measure(kind, args.model.resolve(), args.steps, policy, args.waters),
            }
            print(table({"rows": [row]}).splitlines()[-1], flush=True)
            rows.append(row)
    payload = {
        "model": str(args.model),
        "steps": args.steps,
        "cores": os.cpu_count(),
        "load_average_before": load,
        "machine": platform.processor() or platform.machine(),
        "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "rows": rows,
    }
    write_json(args.out, payload)
    write_text(args.out.with_suffix(".md"), f"`{payload['command']}`\n\n{table(payload)}")
    print(table(payload))


if __name__ == "__main__":
    main()
