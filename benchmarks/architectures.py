"""Which student descriptor reproduces the teacher best for its cost? Students that differ
only in their model options, trained on the same data the same way, against SevenNet-0.

Run from the repo root (one heavy job at a time on a small machine)::

    .venv/bin/python benchmarks/architectures.py
    .venv/bin/python benchmarks/architectures.py --student l4=tiny-l3:max_rank=4 --epochs 60

``--student NAME=PRESET[:KEY=VALUE,...]`` names a preset and model overrides (values as
YAML, e.g. ``hidden=[96,96]``). Default: ``tiny`` (moments up to rank 2), ``tiny-l3`` and
``tiny-l3`` with moments up to rank 4 and 6 (three-body angular order 4 and 6).

- **Data**: ``_organic_data.py``'s sets: a training set of the built-in organic molecules
  (displaced, and in 300 / 500 K MD driven by the archived ``tiny`` v3) split by frame
  (90 / 5 / 5), and never-seen molecules of ``builtin:functional-groups``.
- **Training**: best epoch by validation force MAE, one torch thread, the same seed.
- **Reported** per student: force RMSE (eV/Å) on a sample of its own training frames (how
  well the descriptor can fit at all), on the held-out test frames (all, and MD frames
  only) and on the never-seen molecules; energy MAE there; parameters, training time and
  the median ``get_forces`` time per atom on a 24-atom molecule (moved before every call).

Trainings resume from ``--work``. Results: ``benchmarks/results/architectures.{json,md}``.
"""

from __future__ import annotations

import argparse
import platform
import re
import time
from pathlib import Path

import numpy as np
import torch
import yaml
from _organic_data import SPLIT, organic_sets, training_options

from mlff_distiller import StudentCalculator, __version__
from mlff_distiller.benchmarking import frame_errors, write_json
from mlff_distiller.data import load_source, read_dataset, split_indices
from mlff_distiller.timing import latency_ms
from mlff_distiller.training import load_checkpoint, model_from_checkpoint, train

RESULTS = Path(__file__).parent / "results"
DEFAULT_STUDENTS = [
    "tiny=tiny",
    "tiny-l3=tiny-l3",
    "tiny-l4=tiny-l3:max_rank=4",
    "tiny-l6=tiny-l3:max_rank=6",
]
#: Training frames the fit error is measured on (a seeded sample).
FIT_FRAMES = 200


def parse_student(text: str) -> tuple[str, str, dict]:
    """``NAME=PRESET[:KEY=VALUE,...]`` as (name, preset, overrides)."""
    name, _, rest = text.partition("=")
    preset, _, options = rest.partition(":")
    if not name or not preset:
        raise SystemExit(f"--student {text!r}: expected NAME=PRESET[:KEY=VALUE,...]")
    overrides = {}
    # Commas inside brackets belong to a list value (hidden=[96,96]).
    for item in filter(None, re.split(r",(?![^\[]*\])", options)):
        key, _, value = item.partition("=")
        overrides[key] = yaml.safe_load(value)
    return name, preset, overrides


def _md_only(frames):
    return [a for a in frames if (a.info.get("sampling") or {}).get("method") == "md"]


def table(payload: dict) -> str:
    lines = [
        "| student | preset + overrides | parameters | train fit | held-out (MD only) "
        "| never-seen | energy MAE held-out / never-seen (meV/atom) | µs/atom-call | train s |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for run in payload["runs"]:
        overrides = ", ".join(f"{k}={v}" for k, v in run["overrides"].items())
        lines.append(
            f"| {run['name']} | {run['preset']}{' ' + overrides if overrides else ''} "
            f"| {run['parameters']:,} | {run['train_fit']['force_rmse_eV_per_A']:.4f} "
            f"| {run['held_out']['force_rmse_eV_per_A']:.4f} "
            f"({run['held_out_md']['force_rmse_eV_per_A']:.4f}) "
            f"| {run['unseen']['force_rmse_eV_per_A']:.4f} "
            f"| {run['held_out']['energy_mae_meV_per_atom']:.2f} / "
            f"{run['unseen']['energy_mae_meV_per_atom']:.2f} "
            f"| {run['us_per_atom_call']:.0f} | {run['train_s']:.0f} |"
        )
    return (
        "Force RMSE against SevenNet-0 (eV/Å). Train fit: a sample of the student's own "
        "training frames.\n\n" + "\n".join(lines) + "\n"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--student", action="append", help="NAME=PRESET[:KEY=VALUE,...]")
    parser.add_argument("--epochs", type=int, default=40)
    parser.add_argument("--unseen", type=int, default=30, help="functional-group molecules")
    parser.add_argument("--work", type=Path, default=Path("runs/atom-energy-targets"))
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    torch.set_num_threads(1)
    students = [parse_student(s) for s in args.student or DEFAULT_STUDENTS]

    data, unseen_data = organic_sets(args.work, args.unseen)
    frames = read_dataset(data)
    unseen = read_dataset(unseen_data)
    split = split_indices(frames, SPLIT, by="frame")
    test = [frames[i] for i in split["test"]]
    rng = np.random.default_rng(0)
    fit = [frames[i] for i in rng.choice(split["train"], size=FIT_FRAMES, replace=False)]
    timing_atoms = load_source("smiles:Cn1cnc2c1c(=O)n(C)c(=O)n2C", n_conformers=1)[0]
    options = training_options(args.epochs)
    runs = []
    for name, preset, overrides in students:
        start = time.perf_counter()
        best = train(data, preset, args.work / f"arch-{name}", **options, **overrides)
        train_s = time.perf_counter() - start
        model = model_from_checkpoint(load_checkpoint(best))
        parameters = sum(p.numel() for p in model.parameters())
        calc = StudentCalculator(best)
        runs.append(
            {
                "name": name,
                "preset": preset,
                "overrides": overrides,
                "parameters": int(parameters),
                "train_s": round(train_s, 1),
                "train_fit": frame_errors(calc, fit),
                "held_out": frame_errors(calc, test),
                "held_out_md": frame_errors(calc, _md_only(test)),
                "unseen": frame_errors(calc, unseen),
                "us_per_atom_call": 1e3
                * latency_ms(calc, [timing_atoms], repeats=50)
                / len(timing_atoms),
            }
        )
        print(table({"runs": runs[-1:]}), flush=True)
    payload = {
        "benchmark": "architectures",
        "version": __version__,
        "machine": platform.processor() or platform.machine(),
        "options": {**options, "unseen_molecules": args.unseen},
        "frames": {
            "train_dataset": len(frames),
            "fit_sample": len(fit),
            "held_out": len(test),
            "held_out_md": len(_md_only(test)),
            "unseen": len(unseen),
        },
        "runs": runs,
    }
    write_json(args.out / "architectures.json", payload)
    (args.out / "architectures.md").write_text(table(payload))
    print(table(payload))


if __name__ == "__main__":
    main()
