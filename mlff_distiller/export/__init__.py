"""Export students to TorchScript files that ASE, OpenMM and LAMMPS load.

>>> from mlff_distiller.export import export, load_exported
>>> export("runs/tiny/best.pt", "tiny.pt", dtype="float64")              # doctest: +SKIP
>>> module, metadata = load_exported("tiny.pt")                          # doctest: +SKIP
"""

from __future__ import annotations

from .exporter import (
    FORMAT_VERSION,
    METADATA_FILE,
    ExportError,
    export,
    export_module,
    is_exported,
    load_exported,
    student_checkpoint,
)
from .module import ExportedStudent

__all__ = [
    "FORMAT_VERSION",
    "METADATA_FILE",
    "ExportError",
    "ExportedStudent",
    "export",
    "export_module",
    "is_exported",
    "load_exported",
    "student_checkpoint",
]
