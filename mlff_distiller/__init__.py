"""mlff_distiller: distill large ML force fields into small, fast students.

>>> from mlff_distiller import StudentCalculator                         # doctest: +SKIP
"""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["StudentCalculator", "__version__"]


def __getattr__(name: str):
    # Lazy: importing the package (e.g. for the CLI's --help) must not import torch.
    if name == "StudentCalculator":
        from .calculators import StudentCalculator

        return StudentCalculator
    raise AttributeError(f"module 'mlff_distiller' has no attribute {name!r}")
