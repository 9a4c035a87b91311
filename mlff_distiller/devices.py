"""Which torch device a student runs on (``"cpu"``, ``"cuda"``, ``"cuda:1"``, ``"mps"``...)
and in which precision (``"float32"`` or ``"float64"``, as configs and metadata write it).

>>> resolve_device("cpu")
device(type='cpu')
>>> torch_dtype("float64")
torch.float64
"""

from __future__ import annotations

import torch

from .errors import InputError

#: The precisions a student is trained, exported and run in, by the names files use.
DTYPES = {"float32": torch.float32, "float64": torch.float64}


def torch_dtype(name: str | torch.dtype) -> torch.dtype:
    """The torch dtype of ``"float32"`` or ``"float64"`` (a torch dtype passes through);
    anything else is an error, never a silent float32."""
    if isinstance(name, torch.dtype) and name in DTYPES.values():
        return name
    if name not in DTYPES:
        raise InputError(f"dtype must be 'float32' or 'float64', got {name!r}")
    return DTYPES[name]


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
