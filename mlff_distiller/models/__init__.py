"""Student models: strictly local, energy-conserving, TorchScript-able.

>>> from mlff_distiller.models import build_model
>>> model = build_model("tiny", elements=["H", "C", "O"])
>>> sum(p.numel() for p in model.parameters()) > 10_000
True
"""

from __future__ import annotations

from ase.data import atomic_numbers as _Z
from ase.data import covalent_radii as _RCOV

from ..errors import InputError
from .base import Student
from .graph import build_graph, collate, evaluate, species_indices
from .moment import MomentStudent
from .presets import PRESETS, model_config
from .tensor_moment import TensorMomentStudent

__all__ = [
    "PRESETS",
    "MomentStudent",
    "Student",
    "TensorMomentStudent",
    "build_graph",
    "build_model",
    "collate",
    "evaluate",
    "model_config",
    "species_indices",
]


def build_model(
    preset: str, elements: list[str], avg_neighbors: float = 10.0, **overrides
) -> MomentStudent | TensorMomentStudent:
    """A student of ``preset`` size for ``elements`` (chemical symbols, in model order);
    ``overrides`` change the preset's hyperparameters (``cutoff``, ``hidden``, ...)."""
    unknown = [el for el in elements if el not in _Z]
    if unknown or not elements:
        raise InputError(f"elements must be chemical symbols, got {elements}")
    config = model_config(preset, **overrides)
    architecture = config.pop("architecture")
    cls = TensorMomentStudent if architecture == "tensor_moment" else MomentStudent
    numbers = [_Z[el] for el in elements]
    return cls(
        atomic_numbers=numbers,
        covalent_radii=[float(_RCOV[z]) for z in numbers],
        avg_neighbors=avg_neighbors,
        **config,
    )
