"""OpenMM speed of students against classical TIP3P (PME) on the same water boxes.

Run from the repo root::

    .venv/bin/python benchmarks/openmm_speed.py [--presets tiny standard] [--steps 20]

Boxes: the built-in 32-water box (96 atoms), the 256-water box (768 atoms) and that box
replicated 2×2×2 (6,144 atoms). Each student is a ``preset`` model for H and O exported in
float32 (speed does not depend on the weights, so no training is needed here), run through
``create_system`` with a Verlet integrator; the classical floor is OpenMM's rigid TIP3P with
PME on the same box, in the same run. Reported per system and model: median ms/step over
``--steps`` timed steps after warm-up, and ns/day at 0.5 fs (the student's time step; rigid
TIP3P could take 2 fs, four times the ns/day quoted here). Results:
``benchmarks/results/openmm_speed.json``.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch

# isort: split
import openmm

from mlff_distiller.benchmarking import openmm_step_ms, tip3p_system, write_json
from mlff_distiller.data import water_box
from mlff_distiller.engines.openmm import create_system
from mlff_distiller.timing import untrained_student

RESULTS = Path(__file__).parent / "results" / "openmm_speed.json"
DT_FS = 0.5


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--presets", nargs="+", default=["tiny", "standard"])
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    if args.steps < 1:
        parser.error(f"--steps must be at least 1, got {args.steps}")
    boxes = {"water-96": water_box(32), "water-768": water_box(256)}
    boxes["water-6144"] = water_box(256) * (2, 2, 2)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        files = {
            preset: untrained_student(preset, ["H", "O"], Path(tmp) / f"{preset}.pt")
            for preset in args.presets
        }
        for name, atoms in boxes.items():
            steps = args.steps if len(atoms) < 2000 else max(3, args.steps // 5)
            results = {"tip3p-pme": openmm_step_ms(tip3p_system(atoms), atoms, steps)}
            for preset, path in files.items():
                results[preset] = openmm_step_ms(create_system(atoms, path), atoms, steps)
            for model, ms in results.items():
                rows.append({
                    "system": name, "atoms": len(atoms), "model": model, "ms_per_step": ms,
                    "ns_per_day_at_0.5fs": DT_FS * 1e-6 * 86400e3 / ms,
                    "vs_tip3p": ms / results["tip3p-pme"],
                })  # fmt: skip
                ratio = rows[-1]["vs_tip3p"]
                print(f"{name:<11} {model:<10} {ms:10.2f} ms/step  x{ratio:.1f} TIP3P", flush=True)
    payload = {
        "benchmark": "openmm_speed", "platform": "CPU", "dt_fs": DT_FS, "rows": rows,
        "torch_threads": torch.get_num_threads(), "openmm": openmm.__version__,
        "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }  # fmt: skip
    write_json(args.out, payload)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
