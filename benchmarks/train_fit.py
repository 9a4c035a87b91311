"""How well a student fits the teacher's labels of its own training data, per molecule and
per sampling step: is a gap to the teacher a lack of data or of capacity?

    .venv/bin/python benchmarks/train_fit.py --labels RUN/labels.h5 \\
        --model standard=torchscript_exports/sevennet0-standard.pt [--model ...] \\
        [--molecules caffeine ethanol] [--out benchmarks/results/train_fit.json]

For every frame of ``--labels`` whose molecule (``info["name"]``, else its source) is one of
``--molecules``: the student's force RMSE against the labels (eV/Å), grouped by sampling
method, driver and temperature. Most of these frames were in the student's training split
(the shipped configs split by frame, 90 % to training), so a group's figure is, to within a
tenth of its frames, the fit to data the student was trained on. Where that fit is about the
error on the student's own MD frames (``benchmarks/fidelity.py``), more data of the same kind
will not close the gap; a student that fits its training frames far better than it does its
own trajectories needs those trajectories in its data. Writes ``<out>`` and the table as
``.md``.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import defaultdict
from pathlib import Path

import numpy as np
import torch

from mlff_distiller import StudentCalculator
from mlff_distiller.benchmarking import write_json
from mlff_distiller.data.dataset import read_dataset
from mlff_distiller.files import write_text

REPO = Path(__file__).resolve().parents[1]


def group_of(info: dict) -> tuple[str, str]:
    """The molecule and the sampling step (method, driver file, temperature) of a frame."""
    name = str(info.get("name") or info.get("source", "?"))
    sampling = info.get("sampling") or {}
    step = str(sampling.get("method", "as built"))
    driver = sampling.get("driver")
    if driver:
        step += f" by {Path(str(driver)).stem}"
    if sampling.get("temperature_K") is not None:
        step += f" at {sampling['temperature_K']:g} K"
    return name, step


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--labels", type=Path, required=True, help="a labelled dataset (.h5)")
    parser.add_argument("--model", action="append", required=True, help="NAME=PATH (repeatable)")
    parser.add_argument("--molecules", nargs="+", default=["caffeine", "ethanol"])
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks/results/train_fit.json")
    args = parser.parse_args()
    torch.set_num_threads(1)
    frames = [a for a in read_dataset(args.labels) if group_of(a.info)[0] in args.molecules]
    if not frames:
        sys.exit(f"no frame of {', '.join(args.molecules)} in {args.labels}")
    results: dict[str, dict[str, dict[str, float]]] = {}
    for spec in args.model:
        name, _, path = spec.partition("=")
        calc = StudentCalculator(path)
        squares: dict[tuple[str, str], list[float]] = defaultdict(list)
        for atoms in frames:
            work = atoms.copy()
            work.calc = calc
            error = work.get_forces() - atoms.get_forces()
            squares[group_of(atoms.info)].append(float(np.mean(error**2)))
        results[name] = {
            f"{molecule} | {step}": {"frames": len(v), "force_rmse": float(np.sqrt(np.mean(v)))}
            for (molecule, step), v in sorted(squares.items())
        }
        print(name, "done", flush=True)
    command = " ".join(["python", "benchmarks/train_fit.py", *sys.argv[1:]])
    names = list(results)
    lines = [
        "# Fit to the training labels, per molecule and sampling step",
        "",
        f"`{command}` ({time.strftime('%Y-%m-%d', time.gmtime())}). Force RMSE against the "
        "teacher's labels (eV/Å); about 90 % of these frames were in the training split.",
        "",
        "| molecule | sampling step | frames | " + " | ".join(names) + " |",
        "| --- | --- | --- | " + " | ".join("---" for _ in names) + " |",
    ]
    for key in results[names[0]]:
        molecule, step = key.split(" | ")
        row = [results[n][key]["force_rmse"] for n in names]
        lines.append(
            f"| {molecule} | {step} | {results[names[0]][key]['frames']} | "
            + " | ".join(f"{x:.3f}" for x in row)
            + " |"
        )
    write_json(args.out, {"command": command, "labels": str(args.labels), "results": results})
    write_text(args.out.with_suffix(".md"), "\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
