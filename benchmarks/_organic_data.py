"""The data of the benchmarks that train students side by side (``atom_energy_targets.py``,
``architectures.py``): one training set and one set of never-seen molecules, labelled once
and cached.

- **Training set** (``WORK/train.h5``): the built-in organic set (2 conformers each), displaced
  atoms and 300 / 500 K MD driven by the archived ``tiny`` v3 student, labelled by SevenNet-0
  with its per-atom energies. No water: the never-seen set has none either.
- **Never-seen molecules** (``WORK/unseen-N.h5``): the first ``N`` molecules of
  ``builtin:functional-groups`` (none of them in the organic set), sampled the same way but
  more lightly.

Imported by the scripts next to it (``python benchmarks/NAME.py`` puts this folder on the
path).
"""

from __future__ import annotations

from pathlib import Path

from mlff_distiller.data import build_structures, label
from mlff_distiller.data.builtin import molecule_set

DRIVER = Path(__file__).parent.parent / "torchscript_exports" / "drivers" / "sevennet0-tiny-v3.pt"
#: Train / validation / test fractions of the training set, split by frame.
SPLIT = (0.9, 0.05, 0.05)


def training_options(epochs: int) -> dict:
    """The training options every student of these benchmarks shares: split by frame, best
    epoch by validation force MAE, one torch thread."""
    return {
        "epochs": epochs,
        "split_by": "frame",
        "split_fractions": list(SPLIT),
        "select_on": "force_mae",
        "threads": 1,
    }


def recipe(sources: list[str], conformers: int, light: bool) -> dict:
    """The structures recipe of either set (``light``: fewer MD frames per molecule)."""
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


def labelled(path: Path, spec: dict) -> Path:
    """``path``, labelled by SevenNet-0 from ``spec`` unless it is already there."""
    if not path.is_file():
        label(build_structures(spec), "sevennet-0", path)
    return path


def organic_sets(work: Path, unseen: int) -> tuple[Path, Path]:
    """The training set and the never-seen set of ``unseen`` molecules under ``work``."""
    work.mkdir(parents=True, exist_ok=True)
    train = labelled(work / "train.h5", recipe(["builtin:organic"], 2, light=False))
    smiles = [entry.smiles for entry in molecule_set("functional-groups")[:unseen]]
    never_seen = labelled(
        work / f"unseen-{unseen}.h5", recipe(["smiles:" + ",".join(smiles)], 1, light=True)
    )
    return train, never_seen
