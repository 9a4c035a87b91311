"""Does training on the teacher's per-atom energies pay? One dataset, students that differ
only in ``atom_energy_weight``, compared against the teacher on frames they never saw.

Run from the repo root (one heavy job at a time on a small machine)::

    .venv/bin/python benchmarks/atom_energy_targets.py                 # weights 0, 5, 20
    .venv/bin/python benchmarks/atom_energy_targets.py --weights 0 10 --epochs 60

- **Training data**: ``_organic_data.py``'s training set (the built-in organic molecules,
  displaced and in MD driven by the archived ``tiny`` v3, with the teacher's per-atom
  energies).
- **Students**: ``tiny``, split by frame, best epoch by validation force MAE, one torch
  thread; the same seed, so runs differ only in the loss.
- **Held-out frames**: the test split (frames of training molecules).
- **Never-seen molecules**: ``_organic_data.py``'s never-seen set, the first ``--unseen``
  molecules of ``builtin:functional-groups``.

Everything is cached under ``--work`` (labels and trainings resume). Results:
``benchmarks/results/atom_energy_targets.{json,md}``.
"""

from __future__ import annotations

import argparse
import platform
import time
from pathlib import Path

import numpy as np
import torch
from _organic_data import SPLIT, organic_sets, training_options

from mlff_distiller import StudentCalculator, __version__
from mlff_distiller.benchmarking import frame_errors, write_json
from mlff_distiller.data import read_dataset, split_indices
from mlff_distiller.training import train

RESULTS = Path(__file__).parent / "results"


def _atom_energy_mae_meV(calc, frames) -> float:
    errors = []
    for atoms in frames:
        work = atoms.copy()
        work.calc = calc
        errors.append(work.get_potential_energies() - atoms.get_potential_energies())
    return float(1e3 * np.mean(np.abs(np.concatenate(errors))))


def _errors(calc, frames) -> dict:
    return {**frame_errors(calc, frames), "atom_energy_mae_meV": _atom_energy_mae_meV(calc, frames)}


def table(payload: dict) -> str:
    lines = [
        "| atom_energy_weight | set | frames | force RMSE (eV/Å) | force MAE (eV/Å) "
        "| energy MAE (meV/atom) | per-atom energy MAE (meV) |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for run in payload["runs"]:
        for name in ("held_out", "unseen"):
            e = run[name]
            lines.append(
                f"| {run['atom_energy_weight']:g} | {name.replace('_', '-')} | {e['frames']} "
                f"| {e['force_rmse_eV_per_A']:.4f} | {e['force_mae_eV_per_A']:.4f} "
                f"| {e['energy_mae_meV_per_atom']:.2f} | {e['atom_energy_mae_meV']:.1f} |"
            )
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--weights", type=float, nargs="+", default=[0.0, 5.0, 20.0])
    parser.add_argument("--epochs", type=int, default=40)
    parser.add_argument("--unseen", type=int, default=30, help="functional-group molecules")
    parser.add_argument("--work", type=Path, default=Path("runs/atom-energy-targets"))
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    torch.set_num_threads(1)

    data, unseen_data = organic_sets(args.work, args.unseen)
    unseen = read_dataset(unseen_data)
    frames = read_dataset(data)
    options = training_options(args.epochs)
    test = [frames[i] for i in split_indices(frames, SPLIT, by="frame")["test"]]
    runs = []
    for weight in args.weights:
        start = time.perf_counter()
        best = train(
            data, "tiny", args.work / f"tiny-w{weight:g}", **options, atom_energy_weight=weight
        )
        calc = StudentCalculator(best)
        runs.append(
            {
                "atom_energy_weight": weight,
                "train_s": round(time.perf_counter() - start, 1),
                "held_out": _errors(calc, test),
                "unseen": _errors(calc, unseen),
            }
        )
    payload = {
        "benchmark": "atom_energy_targets",
        "version": __version__,
        "machine": platform.processor() or platform.machine(),
        "options": {**options, "preset": "tiny", "unseen_molecules": args.unseen},
        "frames": {"train_dataset": len(frames), "held_out": len(test), "unseen": len(unseen)},
        "runs": runs,
    }
    write_json(args.out / "atom_energy_targets.json", payload)
    (args.out / "atom_energy_targets.md").write_text(table(payload))
    print(table(payload))


if __name__ == "__main__":
    main()
