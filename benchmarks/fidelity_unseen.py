"""Part (b) of benchmarks/fidelity.py alone: students against SevenNet-0 on teacher MD frames
of molecules never trained on, the same frames as ``fidelity.py --frames 8`` (4 per molecule,
seed 9003, cached under ``--work``), in minutes rather than the full benchmark's hour.

    .venv/bin/python benchmarks/fidelity_unseen.py \
        --model tiny=torchscript_exports/sevennet0-tiny.pt

Results: ``benchmarks/results/fidelity_unseen.{json,md}``.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch
from fidelity import (  # same dir
    RESULTS,
    UNSEEN_SYSTEMS,
    errors_by_system,
    set_specs,
    teacher_md_set,
)

from mlff_distiller import StudentCalculator
from mlff_distiller.benchmarking import frame_errors, write_json
from mlff_distiller.data import read_dataset
from mlff_distiller.teachers import get_teacher


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", action="append", required=True, metavar="NAME=PATH")
    parser.add_argument("--work", type=Path, default=Path("runs/fidelity"))
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    torch.set_num_threads(1)
    spec = set_specs(8)["unseen_300K"]  # the frames of fidelity.py --frames 8
    path = teacher_md_set(args.work, get_teacher("sevennet-0"), *spec)
    frames = read_dataset(path)
    results = {}
    lines = ["| student | force RMSE (eV/Å) | force MAE (eV/Å) | energy MAE (meV/atom) |",
             "| --- | --- | --- | --- |"]  # fmt: skip
    for spec in args.model:
        name, _, model = spec.partition("=")
        calc = StudentCalculator(model)
        results[name] = {
            "model": model,
            "all": frame_errors(calc, frames),
            "by_system": errors_by_system(calc, frames),
        }
        e = results[name]["all"]
        lines.append(
            f"| {name} | {e['force_rmse_eV_per_A']:.3f} | {e['force_mae_eV_per_A']:.3f} "
            f"| {e['energy_mae_meV_per_atom']:.1f} |"
        )
    payload = {
        "benchmark": "fidelity_unseen",
        "teacher": "sevennet-0",
        "frames": len(frames),
        "unseen_systems": UNSEEN_SYSTEMS,
        "results": results,
        "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    write_json(args.out / "fidelity_unseen.json", payload)
    (args.out / "fidelity_unseen.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
