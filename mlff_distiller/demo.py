"""The main job on the built-in default (``mlff-distill demo``).

Until the training and export stages exist, the demo runs what exists end to end: build the
built-in organic set and a small water box, sample displaced configurations, label them with
the default teacher (SevenNet-0, offline) into a dataset, and split it by molecule.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

from .data import build_structures, label, read_dataset, split_indices, summary
from .teachers import DEFAULT_TEACHER, get_teacher

#: The demo's structure recipe (see :mod:`mlff_distiller.data.recipe`).
DEMO_RECIPE = {
    "sources": ["builtin:organic", "builtin:water-32"],
    "conformers": 1,
    "seed": 0,
    "sampling": [
        {"method": "perturb", "n_samples": 2, "amplitude": 0.05},
        {"method": "rattle_strain", "n_samples": 2, "rattle": 0.03, "max_strain": 0.02},
    ],
}
QUICK_RECIPE = {
    "sources": ["smiles:O,CCO,c1ccccc1O", "builtin:water-32"],
    "conformers": 1,
    "seed": 0,
    "sampling": [{"method": "perturb", "n_samples": 1, "amplitude": 0.05}],
}


def run_demo(out_dir: Path, quick: bool = False) -> Path:
    """Label the built-in set with the default teacher into ``out_dir/dataset.h5``."""
    out_dir.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    teacher = get_teacher(DEFAULT_TEACHER)
    structures = build_structures(QUICK_RECIPE if quick else DEMO_RECIPE, teacher)
    print(f"demo: {len(structures)} structures; labeling with {DEFAULT_TEACHER}")
    dataset = label(structures, teacher, out_dir / "dataset.h5")
    splits = split_indices(read_dataset(dataset), by="group", seed=0)
    split_file = out_dir / "splits.json"
    tmp = split_file.with_name(".splits.json.tmp")
    tmp.write_text(json.dumps(splits))
    os.replace(tmp, split_file)
    info = summary(dataset)
    print(
        f"demo: done in {time.perf_counter() - start:.0f} s\n"
        f"  dataset: {dataset} ({info['frames']} frames, {info['rejected']} rejected)\n"
        f"  splits:  {split_file} (train {len(splits['train'])}, val {len(splits['val'])}, "
        f"test {len(splits['test'])}; by molecule)\n"
        "  next:    training, export and validation arrive with the following releases"
    )
    return dataset
