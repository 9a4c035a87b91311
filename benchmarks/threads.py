"""Torch threads against system size for one ``StudentCalculator`` call: where threads pay.

    .venv/bin/python benchmarks/threads.py [--model torchscript_exports/sevennet0-tiny.pt]
        [--waters 32 128 256 1024] [--calls 30] [--out benchmarks/results/threads.json]

For water boxes of growing size, the median ms per ``get_forces`` call (uncached: one atom
moves before every call) with one torch thread and with every core, and what the
calculator's default thread policy (``threads=None``: one thread below
``SERIAL_BELOW_ATOMS`` atoms) picks. The crossover is where ``calculators.SERIAL_BELOW_ATOMS``
comes from; ``benchmarks/sharing.py`` measures what the policy does to two jobs on one
machine. Run it with ``OMP_NUM_THREADS`` unset on an otherwise idle machine.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results"


def measure(model: Path, waters: list[int], calls: int) -> list[dict]:
    from mlff_distiller import StudentCalculator
    from mlff_distiller.benchmarking import ase_call_ms

    cores = os.cpu_count() or 1
    serial = StudentCalculator(str(model), threads=1)
    threaded = StudentCalculator(str(model), threads=cores)
    policy = StudentCalculator(str(model))
    rows = []
    for n in waters:
        atoms = _box(n)
        one = ase_call_ms(serial, atoms, calls)
        every = ase_call_ms(threaded, atoms, calls)
        rows.append({
            "atoms": len(atoms),
            "ms_1_thread": one,
            f"ms_{cores}_threads": every,
            "threaded_speedup": one / every,
            "default_threads": policy.call_threads(len(atoms)),
        })  # fmt: skip
        print(table(rows[-1:], cores).splitlines()[-1], flush=True)
    return rows


def _box(waters: int):
    """A built-in water box (32-256 molecules) or copies of the 256 one (512, 1024, 2048)."""
    from mlff_distiller.data import water_box

    copies = {512: (2, 1, 1), 1024: (2, 2, 1), 2048: (2, 2, 2)}
    return water_box(256).repeat(copies[waters]) if waters in copies else water_box(waters)


def table(rows: list[dict], cores: int) -> str:
    lines = [
        f"| atoms | 1 thread ms/call | {cores} threads ms/call | speed-up from threads | "
        "default policy picks |",
        "| --- | --- | --- | --- | --- |",
    ]
    for row in rows:
        lines.append(f"| {row['atoms']} | {row['ms_1_thread']:.2f} | "
                     f"{row[f'ms_{cores}_threads']:.2f} | {row['threaded_speedup']:.2f}x | "
                     f"{row['default_threads']} |")  # fmt: skip
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--model", type=Path, default=REPO / "torchscript_exports" / "sevennet0-tiny.pt"
    )
    parser.add_argument("--waters", type=int, nargs="+", default=[32, 128, 256, 1024])
    parser.add_argument("--calls", type=int, default=30)
    parser.add_argument("--out", type=Path, default=RESULTS / "threads.json")
    args = parser.parse_args()
    if os.environ.get("OMP_NUM_THREADS"):
        raise SystemExit("unset OMP_NUM_THREADS: this benchmark compares thread counts itself")
    from mlff_distiller.benchmarking import write_json
    from mlff_distiller.calculators import SERIAL_BELOW_ATOMS
    from mlff_distiller.files import write_text

    load = os.getloadavg()[0]
    cores = os.cpu_count() or 1
    rows = measure(args.model.resolve(), args.waters, args.calls)
    payload = {
        "model": str(args.model),
        "calls": args.calls,
        "cores": cores,
        "serial_below_atoms": SERIAL_BELOW_ATOMS,
        "load_average_before": load,
        "machine": platform.processor() or platform.machine(),
        "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "rows": rows,
    }
    write_json(args.out, payload)
    write_text(args.out.with_suffix(".md"), f"`{payload['command']}`\n\n{table(rows, cores)}")
    print(table(rows, cores))


if __name__ == "__main__":
    main()
