"""Do teacher-labelled close contacts remove the students' energy wells at close range?

    .venv/bin/python benchmarks/core_wells.py [--epochs 30] [--contacts 6] \
        [--work runs/core-wells] [--out benchmarks/results]

``close_pairs.py`` finds every student with energy wells inside 0.8 × the covalent radii
sum (shipped ``tiny``: H–H 15.8 eV) where SevenNet-0 has none, and the quick suite's water
run that fused two atoms. This trains two ``tiny`` students side by side, same seed and
schedule: one on a base set (the built-in organic set and 32 waters: displaced atoms,
squeezed bonds, 300 K MD driven by the archived ``tiny`` v3), one on the base set plus
``contacts`` samples (``data.compress_contacts``: non-bonded pairs brought to 0.65–0.9 ×
their radii sum, labelled by the teacher). It reports, for each, the deepest well of every
element pair of H, C, N, O (isolated pairs, as ``close_pairs.py``) and the force error on
held-out base frames, so the data's cost in fidelity shows beside its effect.

Measured 2026-12-03 (``--epochs 120``, 507 base frames + 76 contact frames, one thread,
~4 min per student): neither student grew an H–H well (the shipped ones did, trained on
6,000–7,800 frames for 60–150 epochs), and the contacts made the held-out force RMSE worse
(0.181 against 0.160 eV/Å) and the O–O well deeper (1.04 against 0.06 eV). At this scale
the experiment does not reproduce the wells it was built to study; it says nothing yet
about whether contact data removes them from a full distillation.
"""

from __future__ import annotations

import argparse
import platform
import time
from pathlib import Path

import torch
from close_pairs import scan  # beside this file (``python benchmarks/NAME.py`` puts it on the path)

from mlff_distiller import StudentCalculator, __version__
from mlff_distiller.benchmarking import frame_errors, write_json
from mlff_distiller.data import (
    build_structures,
    concat_datasets,
    label,
    read_dataset,
    split_indices,
)
from mlff_distiller.export import export
from mlff_distiller.files import write_text
from mlff_distiller.training import train

ROOT = Path(__file__).resolve().parents[1]
DRIVER = ROOT / "torchscript_exports" / "drivers" / "sevennet0-tiny-v3.pt"
SOURCES = ["builtin:organic", "builtin:water-32"]
SPLIT = (0.9, 0.05, 0.05)
ELEMENTS = ("H", "C", "N", "O")


def _recipe(sampling: list[dict], originals: bool = True) -> dict:
    return {"sources": SOURCES, "conformers": 1, "seed": 3, "sampling": sampling,
            "include_originals": originals}  # fmt: skip


def _labelled(path: Path, recipe: dict) -> Path:
    if not path.is_file():
        label(build_structures(recipe), "sevennet-0", path, progress=False)
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--contacts", type=int, default=6, help="contact samples per structure")
    parser.add_argument("--work", type=Path, default=Path("runs/core-wells"))
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results")
    args = parser.parse_args()
    torch.set_num_threads(1)
    args.work.mkdir(parents=True, exist_ok=True)

    md = {"method": "md", "driver": str(DRIVER), "every": 40, "equilibration_steps": 200}
    base = _labelled(args.work / "base.h5", _recipe([
        {"method": "perturb", "n_samples": 4, "amplitude": 0.05},
        {"method": "compress", "n_samples": 2, "low": 0.75, "high": 0.92},
        {**md, "n_frames": 6, "temperature_K": 300},
    ]))  # fmt: skip
    contacts = _labelled(args.work / f"contacts-{args.contacts}.h5", _recipe(
        [{"method": "contacts", "n_samples": args.contacts, "low": 0.65, "high": 0.9}],
        originals=False,
    ))  # fmt: skip
    both = args.work / f"base+contacts-{args.contacts}.h5"
    if not both.is_file():
        concat_datasets([base, contacts], both)

    frames = read_dataset(base)
    held_out = [frames[i] for i in split_indices(frames, SPLIT, by="frame")["test"]]
    options = {"epochs": args.epochs, "split_by": "frame", "split_fractions": list(SPLIT),
               "select_on": "force_mae", "threads": 1, "seed": 0}  # fmt: skip
    runs = []
    for name, dataset in (("base", base), ("base + contacts", both)):
        start = time.perf_counter()
        best = train(dataset, "tiny", args.work / name.replace(" + ", "+"), progress=False,
                     **options)  # fmt: skip
        model = export(best, args.work / f"{name.replace(' + ', '+')}.pt", dtype="float32")
        wells = {pair: r for pair, r in scan(model).items()
                 if set(pair.split("-")) <= set(ELEMENTS)}  # fmt: skip
        runs.append({
            "data": name,
            "frames": len(read_dataset(dataset)),
            "train_s": round(time.perf_counter() - start, 1),
            "held_out_base": frame_errors(StudentCalculator(model), held_out),
            "wells": wells,
        })  # fmt: skip
        print(name, runs[-1]["held_out_base"], flush=True)

    payload = {
        "benchmark": "core_wells",
        "version": __version__,
        "machine": platform.processor() or platform.machine(),
        "options": {**options, "preset": "tiny", "contacts_per_structure": args.contacts},
        "runs": runs,
    }
    write_json(args.out / "core_wells.json", payload)
    pairs = sorted({p for run in runs for p in run["wells"]})
    lines = [
        "| data | frames | held-out force RMSE (eV/Å) | "
        + " | ".join(f"{p} well (eV)" for p in pairs)
        + " |",
        "| --- | --- | --- | " + " | ".join("---" for _ in pairs) + " |",
    ]
    for run in runs:
        cells = [f"{run['wells'][p]['core_well_eV']:.2f}" if p in run["wells"] else "0"
                 for p in pairs]  # fmt: skip
        lines.append(
            f"| {run['data']} | {run['frames']} "
            f"| {run['held_out_base']['force_rmse_eV_per_A']:.4f} | " + " | ".join(cells) + " |"
        )
    text = "\n".join(lines) + "\n"
    write_text(args.out / "core_wells.md", text)
    print(text)


if __name__ == "__main__":
    main()
