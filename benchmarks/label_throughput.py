"""Labeling throughput of a teacher on the built-in organic set (frames/s and atoms/s).

Run from the repo root::

    .venv/bin/python benchmarks/label_throughput.py [--teacher sevennet-0] [--perturb 2]

It times the real :func:`mlff_distiller.data.label` (teacher calls, checks, journal and the
final HDF5 write) on the built-in organic molecules plus ``--perturb`` displaced copies of
each, every frame distinct so no calculator cache is ever hit. It also times the bare
teacher calls on the same frames, so the labeling overhead is a ratio from one run.
Results go to ``benchmarks/results/label_throughput.json``.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

from mlff_distiller import __version__
from mlff_distiller.benchmarking import write_json
from mlff_distiller.data import builtin_molecules, label, perturb
from mlff_distiller.teachers import get_teacher, teacher_info

RESULTS = Path(__file__).parent / "results" / "label_throughput.json"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--teacher", default="sevennet-0")
    parser.add_argument("--perturb", type=int, default=2, help="displaced copies per molecule")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()

    molecules = builtin_molecules(seed=0)
    frames = molecules + perturb(molecules, n_samples=args.perturb, amplitude=0.05, seed=1)
    n_atoms = sum(len(a) for a in frames)
    teacher = get_teacher(args.teacher)

    # Warm-up on a frame that is not timed (first-call allocations, lazy initialisation).
    warm = frames[0].copy()
    warm.positions[0, 0] += 0.1
    warm.calc = teacher
    warm.get_forces()

    # 1. Bare teacher calls, one per distinct frame.
    per_frame = []
    for atoms in frames:
        work = atoms.copy()
        work.calc = teacher
        start = time.perf_counter()
        work.get_potential_energy()
        work.get_forces()
        per_frame.append(time.perf_counter() - start)
    bare_total = sum(per_frame)

    # 2. The full labeling path. Shifted by 1e-6 Å so the teacher's cache (it last saw the
    #    final frame above) cannot serve any frame.
    shifted = []
    for atoms in frames:
        moved = atoms.copy()
        moved.positions += 1e-6
        shifted.append(moved)
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        label(shifted, teacher, Path(tmp) / "bench.h5", progress=False)
        label_total = time.perf_counter() - start

    sizes = sorted(len(a) for a in frames)
    result = {
        "benchmark": "label_throughput",
        "teacher": teacher_info(teacher).to_dict(),
        "frames": len(frames),
        "atoms": n_atoms,
        "atoms_per_frame": {"min": sizes[0], "median": statistics.median(sizes), "max": sizes[-1]},
        "label": {
            "seconds": label_total,
            "frames_per_s": len(frames) / label_total,
            "atoms_per_s": n_atoms / label_total,
        },
        "teacher_only": {
            "seconds": bare_total,
            "frames_per_s": len(frames) / bare_total,
            "atoms_per_s": n_atoms / bare_total,
            "ms_per_frame_median": 1e3 * statistics.median(per_frame),
            "ms_per_frame_p95": 1e3 * sorted(per_frame)[int(0.95 * (len(per_frame) - 1))],
        },
        "labeling_overhead_ratio": label_total / bare_total,
        "machine": {
            "cpu_count": os.cpu_count(),
            "torch_threads": torch.get_num_threads(),
            "platform": platform.platform(),
            "python": platform.python_version(),
        },
        "versions": {"mlff_distiller": __version__, "torch": torch.__version__},
        "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
    }
    write_json(args.out, result)
    lab, bare = result["label"], result["teacher_only"]
    print(
        f"{args.teacher}: {len(frames)} frames, {n_atoms} atoms "
        f"(median {result['atoms_per_frame']['median']} atoms/frame)\n"
        f"  label():      {lab['frames_per_s']:.2f} frames/s, {lab['atoms_per_s']:.0f} atoms/s\n"
        f"  teacher only: {bare['frames_per_s']:.2f} frames/s, {bare['atoms_per_s']:.0f} atoms/s, "
        f"median {bare['ms_per_frame_median']:.0f} ms/frame\n"
        f"  overhead of labeling vs bare teacher calls: x{result['labeling_overhead_ratio']:.3f}\n"
        f"  wrote {args.out}"
    )


if __name__ == "__main__":
    main()
