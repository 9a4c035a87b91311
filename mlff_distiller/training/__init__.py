"""Distillation training of students (``mlff-distill train``).

>>> from mlff_distiller.training import train
>>> best = train("data.h5", "tiny", "runs/tiny", epochs=50, seed=1)     # doctest: +SKIP
"""

from __future__ import annotations

from ..models.checkpoint import CheckpointError, load_checkpoint, model_from_checkpoint
from .config import DEFAULTS, make_config, parse_overrides
from .trainer import train

__all__ = [
    "DEFAULTS",
    "CheckpointError",
    "load_checkpoint",
    "make_config",
    "model_from_checkpoint",
    "parse_overrides",
    "train",
]
