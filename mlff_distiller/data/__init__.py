"""Structures, sampling, teacher labeling and datasets.

>>> from mlff_distiller.data import structures_from_smiles, perturb, label, read_dataset
>>> mols = structures_from_smiles(["CCO", "c1ccccc1"], n_conformers=2)      # doctest: +SKIP
>>> label(perturb(mols, n_samples=4), "sevennet-0", "data.h5")              # doctest: +SKIP
>>> frames = read_dataset("data.h5")                                         # doctest: +SKIP
"""

from __future__ import annotations

from ._hdf5 import DatasetError
from .builtin import organic_set, water_box
from .dataset import (
    concat_datasets,
    dataset_metadata,
    import_extxyz,
    merge_datasets,
    read_dataset,
    write_extxyz,
)
from .labeling import fingerprint, label, parse_shard, summary
from .recipe import build_structures
from .sampling import (
    compress_bonds,
    compress_contacts,
    md_sampling,
    normal_mode_sampling,
    perturb,
    rattle_strain,
    squeeze_cells,
    torsion_sampling,
    whole_molecules,
)
from .splits import split_indices
from .structures import (
    StructureError,
    builtin_molecules,
    load_source,
    read_structures,
    structures_from_smiles,
)

__all__ = [
    "DatasetError",
    "StructureError",
    "build_structures",
    "concat_datasets",
    "builtin_molecules",
    "dataset_metadata",
    "fingerprint",
    "import_extxyz",
    "label",
    "load_source",
    "md_sampling",
    "merge_datasets",
    "normal_mode_sampling",
    "organic_set",
    "parse_shard",
    "perturb",
    "compress_bonds",
    "compress_contacts",
    "rattle_strain",
    "squeeze_cells",
    "whole_molecules",
    "read_dataset",
    "read_structures",
    "split_indices",
    "structures_from_smiles",
    "torsion_sampling",
    "summary",
    "water_box",
    "write_extxyz",
]
