"""Checkpoints: plain dicts of tensors and primitives, read with ``weights_only=True``.

A checkpoint carries everything needed to rebuild the student without the training code's
state: the model config and element list, the weights (EMA), the normalisation, the
dataset hash and the teacher's identity.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch

from ..devices import torch_dtype
from ..errors import InputError
from ..files import atomic_path

FORMAT = "mlff_distiller.checkpoint"
FORMAT_VERSION = 1


class CheckpointError(InputError):
    """A checkpoint is missing, unreadable or of another format."""


def save_checkpoint(payload: dict[str, Any], path: Path) -> Path:
    """Write atomically: a temporary file, then a rename."""
    path = Path(path)
    with atomic_path(path) as tmp:
        torch.save({"format": FORMAT, "format_version": FORMAT_VERSION, **payload}, tmp)
    return path


def load_checkpoint(path: str | os.PathLike) -> dict[str, Any]:
    """Read and check a checkpoint (``torch.load(weights_only=True)``: no code is run)."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {str(path)!r} does not exist")
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for damaged or foreign files
        raise CheckpointError(
            f"{str(path)!r} is not a readable mlff_distiller checkpoint "
            f"({type(exc).__name__}); retrain or restore it"
        ) from exc
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise CheckpointError(f"{str(path)!r} is not an mlff_distiller checkpoint")
    if int(data.get("format_version", 0)) > FORMAT_VERSION:
        raise CheckpointError(
            f"checkpoint {str(path)!r} has format version {data['format_version']}; "
            "upgrade mlff_distiller to read it"
        )
    return data


def model_from_checkpoint(data: dict[str, Any], dtype: torch.dtype | None = None):
    """The student described by a loaded checkpoint, with its (EMA) weights, in eval mode."""
    from . import build_model

    if dtype is None:
        dtype = torch_dtype(data.get("dtype", "float32"))
    # Cast before loading: loading into a float32 model would round float64 weights.
    # Checkpoints from before the core handover (and its pair floors) existed were trained
    # without them.
    config = {"core_handover": False, "pair_floors": None, **data["model_config"]}
    model = build_model(data["preset"], data["elements"], **config).to(dtype)
    model.load_state_dict(data["model_state"])
    return model.eval()
