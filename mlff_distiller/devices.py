"""Which torch device a student runs on: ``"cpu"``, ``"cuda"``, ``"cuda:1"``, ``"mps"``...

>>> resolve_device("cpu")
device(type='cpu')
"""

from __future__ import annotations

import torch

from .errors import InputError


def resolve_device(device: str | torch.device | None) -> torch.device:
    """``device`` as a :class:`torch.device` (``None`` is the CPU); a device this machine
    does not have is an error that says what it has."""
    if device is None:
        return torch.device("cpu")
    try:
        resolved = torch.device(device)
    except (RuntimeError, TypeError):
        raise InputError(
            f"device {device!r} is not a torch device; use 'cpu', 'cuda' or 'cuda:N'"
        ) from None
    if resolved.type == "cuda":
        if not torch.cuda.is_available():
            built = torch.version.cuda
            why = (
                f"this torch is built for CUDA {built} but finds no GPU"
                if built
                else "this torch is built without CUDA"
            )
            raise InputError(f"device {device!r} asked for, but {why}; use device='cpu'")
        count = torch.cuda.device_count()
        if resolved.index is not None and resolved.index >= count:
            raise InputError(
                f"device {device!r} asked for, but this machine has {count} CUDA device(s) "
                f"(cuda:0 to cuda:{count - 1})"
            )
    elif resolved.type == "mps" and not torch.backends.mps.is_available():
        raise InputError(f"device {device!r} asked for, but MPS is not available; use 'cpu'")
    elif resolved.type not in ("cpu", "cuda", "mps"):
        raise InputError(f"device {device!r} is not supported; use 'cpu', 'cuda' or 'cuda:N'")
    return resolved
