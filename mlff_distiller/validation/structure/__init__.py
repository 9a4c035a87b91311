"""Structure of teacher and student trajectories: radial distribution functions for liquids,
distributions of bonds, angles and dihedrals (and peptide phi/psi) for molecules.

Both trajectories start from the same structure, so the covalent topology is taken once, from
the first teacher frame, and measured in every frame of both. Distances and angles are computed
with MDAnalysis, with the minimum image for periodic frames.

>>> from mlff_distiller.validation.structure import compare_structures, plot_structures
>>> comparison = compare_structures(teacher_frames, student_frames)  # doctest: +SKIP
>>> plot_structures(comparison, "structure.png", "water-32")  # doctest: +SKIP

The package is split by job: :mod:`.topology` (which terms to measure),
:mod:`.distributions` (measuring and comparing them) and :mod:`.plots` (figures).
"""

from .distributions import (
    HISTOGRAM_BINS,
    RDF_R_MAX,
    compare_structures,
    distribution_distance,
    measure,
    radial_distribution,
    rdf_distance,
)
from .plots import UNITS, plot_structures
from .topology import ARITY, backbone_dihedrals, bonded_terms

__all__ = [
    "ARITY",
    "HISTOGRAM_BINS",
    "RDF_R_MAX",
    "UNITS",
    "backbone_dihedrals",
    "bonded_terms",
    "compare_structures",
    "distribution_distance",
    "measure",
    "plot_structures",
    "radial_distribution",
    "rdf_distance",
]
