"""Does training on the teacher's per-atom energies pay? One dataset, students that differ
only in ``atom_energy_weight``, compared against the teacher on frames they never saw.

Run from the repo root (one heavy job at a time on a small machine)::

    .venv/bin/python benchmarks/atom_energy_targets.py                 # weights 0, 5, 20
    .venv/bin/python benchmarks/atom_energy_targets.py --weights 0 10 --epochs 60

- **Training data**: the built-in organic set (2 conformers each), displaced atoms and 300 /
  500 K MD driven by the archived ``tiny`` v3 student, labelled by SevenNet-0 with its
  per-atom energies. No water: the unseen set below has none either.
- **Students**: ``tiny``, split by frame, best epoch by validation force MAE, one torch
  thread; the same seed, so runs differ only in the loss.
- **Held-out frames**: the test split (frames of training molecules).
- **Never-seen molecules**: the first ``--unseen`` molecules of ``builtin:functional-groups``
  (none of them in the organic set), displaced and in MD driven by the same student, labelled
  by the teacher.

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

from mlff_distiller import StudentCalculator, __version__
from mlff_distiller.benchmarking import frame_errors, write_json
from mlff_distiller.data import build_structures, label, read_dataset, split_indices
from mlff_distiller.data.builtin import molecule_set
from mlff_distiller.training import train

RESULTS = Path(__file__).parent / "results"
DRIVER = Path(__file__).parent.parent / "torchscript_exports" / "drivers" / "sevennet0-tiny-v3.pt"


def _recipe(sources: list[str], conformers: int, light: bool) -> dict:
    md = {"method": "md", "driver": str(DRIVER), "every": 40, "equilibration_steps": 200}
    return {
        "sources": sources,
        "conformers": conformers,
        "seed": 11,
        "sampling": [
            {"method": "perturb", "n_samples": 3, "amplitude": 0.05},
            {**md, "n_frames": 3 if light else 6, "temperature_K": 300},
            {**md, "n_frames": 2 if light else 4, "temperature_K": 500},
        ],
    }


def _labelled(path: Path, recipe: dict) -> Path:
    if not path.is_file():
        label(build_structures(recipe), "sevennet-0", path)
    return path


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
    args.work.mkdir(parents=True, exist_ok=True)

    data = _labelled(args.work / "train.h5", _recipe(["builtin:organic"], 2, light=False))
    unseen_smiles = [entry.smiles for entry in molecule_set("functional-groups")[: args.unseen]]
    unseen_data = _labelled(
        args.work / f"unseen-{args.unseen}.h5",
        _recipe(["smiles:" + ",".join(unseen_smiles)], 1, light=True),
    )
    unseen = read_dataset(unseen_data)
    frames = read_dataset(data)
    options = {
        "epochs": args.epochs,
        "split_by": "frame",
        "split_fractions": [0.9, 0.05, 0.05],
        "select_on": "force_mae",
        "threads": 1,
    }
    test = [frames[i] for i in split_indices(frames, (0.9, 0.05, 0.05), by="frame")["test"]]
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
