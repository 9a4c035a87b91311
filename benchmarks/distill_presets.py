"""Distill SevenNet-0 into each student preset on the built-in organic set and report
accuracy on held-out data and speed against the teacher.

Run from the repo root::

    .venv/bin/python benchmarks/distill_presets.py [--epochs 60] [--presets tiny standard]

Data: the built-in molecules are split by molecule (seeded): most are *training molecules*,
the rest *held-out molecules* never seen in training. Training frames are conformers plus
Gaussian-displaced copies (two amplitudes); *held-out frames* are fresh displaced copies of
the training molecules drawn with another seed. Everything is labelled by the teacher.

Reported per preset: energy MAE (meV/atom) and force RMSE/MAE (eV/Å) on held-out frames and
on held-out molecules, and the per-call latency of ``StudentCalculator`` vs the teacher on
the same structures (median over calls where an atom moved before every call, so no cache
is ever hit), with the ratio measured in the same run. Results:
``benchmarks/results/distill_presets.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import torch

from mlff_distiller import StudentCalculator, __version__
from mlff_distiller.benchmarking import frame_errors, write_json
from mlff_distiller.data import builtin_molecules, label, perturb, read_dataset, split_indices
from mlff_distiller.teachers import get_teacher
from mlff_distiller.timing import latency_ms
from mlff_distiller.training import load_checkpoint, model_from_checkpoint, train

RESULTS = Path(__file__).parent / "results" / "distill_presets.json"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--presets", nargs="+", default=["ultra-tiny", "tiny", "standard"])
    parser.add_argument("--epochs", type=int, default=60)
    parser.add_argument("--samples", type=int, default=10, help="displaced copies per amplitude")
    parser.add_argument("--work", type=Path, default=Path("runs/bench_distill"))
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)

    teacher = get_teacher("sevennet-0")
    molecules = builtin_molecules(n_conformers=2, seed=0)
    split = split_indices(molecules, (0.8, 0.0, 0.2), by="group", seed=0)
    train_mols = [molecules[i] for i in split["train"]]
    heldout_mols = [molecules[i] for i in split["test"]]

    def sample(mols, seed):
        return [
            *mols,
            *perturb(mols, args.samples, amplitude=0.03, seed=seed),
            *perturb(mols, args.samples, amplitude=0.08, seed=seed + 1),
        ]

    t0 = time.perf_counter()
    train_set = label(sample(train_mols, 1), teacher, args.work / "train.h5")
    frames_set = label(
        perturb(train_mols, 2, amplitude=0.05, seed=101), teacher, args.work / "heldout_frames.h5"
    )
    molecules_set = label(sample(heldout_mols, 201), teacher, args.work / "heldout_molecules.h5")
    label_seconds = time.perf_counter() - t0
    heldout_frames = read_dataset(frames_set)
    heldout_molecules = read_dataset(molecules_set)
    latency_structures = [molecules[i] for i in split["test"][::2]][:6]

    results = []
    for preset in args.presets:
        start = time.perf_counter()
        best = train(
            train_set, preset, args.work / preset, epochs=args.epochs, split_by="frame",
            split_fractions=[0.9, 0.1, 0.0], patience=max(10, args.epochs // 4), overwrite=True,
        )  # fmt: skip
        train_seconds = time.perf_counter() - start
        student = StudentCalculator(best)
        student_s = latency_ms(student, latency_structures, repeats=30) / 1e3
        teacher_s = latency_ms(teacher, latency_structures, repeats=5) / 1e3
        model = model_from_checkpoint(load_checkpoint(best))
        results.append(
            {
                "preset": preset,
                "parameters": sum(p.numel() for p in model.parameters()),
                "epochs_run": len(json.loads((args.work / preset / "metrics.json").read_text())),
                "train_seconds": train_seconds,
                "heldout_frames": frame_errors(student, heldout_frames),
                "heldout_molecules": frame_errors(student, heldout_molecules),
                "latency_ms_median": {"student": 1e3 * student_s, "teacher": 1e3 * teacher_s},
                "speedup_vs_teacher": teacher_s / student_s,
            }
        )
        print(json.dumps(results[-1], indent=1), flush=True)

    payload = {
        "benchmark": "distill_presets",
        "teacher": "sevennet-0",
        "data": {
            "train_molecules": len(train_mols) // 2,
            "heldout_molecules": sorted({m.info["name"] for m in heldout_mols}),
            "train_frames": len(read_dataset(train_set)),
            "heldout_frames": len(heldout_frames),
            "heldout_molecule_frames": len(heldout_molecules),
            "label_seconds": label_seconds,
        },
        "epochs": args.epochs,
        "results": results,
        "machine": {"cpu_count": os.cpu_count(), "platform": platform.platform()},
        "versions": {"mlff_distiller": __version__, "torch": torch.__version__},
        "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
    }
    write_json(args.out, payload)
    print(
        f"{'preset':<11} {'params':>7} {'F RMSE frames':>14} {'F RMSE mols':>12} "
        f"{'E MAE mols':>11} {'student ms':>10} {'teacher ms':>10} {'speed-up':>8}"
    )
    for r in results:
        print(
            f"{r['preset']:<11} {r['parameters']:>7} "
            f"{r['heldout_frames']['force_rmse_eV_per_A']:>14.3f} "
            f"{r['heldout_molecules']['force_rmse_eV_per_A']:>12.3f} "
            f"{r['heldout_molecules']['energy_mae_meV_per_atom']:>11.1f} "
            f"{r['latency_ms_median']['student']:>10.2f} "
            f"{r['latency_ms_median']['teacher']:>10.1f} "
            f"{r['speedup_vs_teacher']:>7.1f}x"
        )
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
