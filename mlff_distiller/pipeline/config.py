"""The pipeline's YAML config: defaults, merging and checks.

A config names the teacher, the structures, the student and what to do with it; every
section has defaults, so the smallest config is a teacher and a list of sources::

    teacher: sevennet-0
    structures:
      sources: [builtin:organic, builtin:water-32]

The full set of keys and their defaults is :data:`DEFAULTS`; ``mlff-distill run --help``
points here, and the built-in configs (:data:`BUILTIN`) are complete examples.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import yaml

from ..errors import InputError
from ..shipped import resolve_student

#: Every key the pipeline reads, with its default.
DEFAULTS: dict[str, Any] = {
    "name": "student",
    "out": None,  # the run directory; the command line's --out wins
    "teacher": "sevennet-0",
    "teacher_kwargs": {},
    # A structure recipe, as for `mlff-distill dataset label` (sources, conformers, seed,
    # sampling steps); see mlff_distiller.data.recipe.
    "structures": {},
    "labeling": {"max_force": 50.0, "chunk_size": 8},
    "student": {"preset": "tiny", "training": {}},
    "active_learning": {
        "rounds": 0,
        # Students trained with different seeds; their force disagreement picks frames
        # (1: no committee, frames are drawn at random from the student's trajectories).
        "committee": 3,
        # Epochs of the committee's extra members (null: the main student's epochs).
        "committee_epochs": None,
        # Starting structures per round, drawn from the recipe's unsampled structures.
        "systems": 8,
        "temperature_K": 300.0,
        "timestep_fs": 0.5,
        "friction_per_ps": 10.0,
        "steps": 400,
        "every": 10,
        # The frames with the largest committee disagreement, labelled and added per round.
        "select": 24,
        "max_per_system": 4,
        # Random trajectory frames labelled to measure the on-trajectory force error (also
        # added to the training data afterwards).
        "eval_frames": 8,
        "seed": 0,
        # Where the student's MD runs: ase, or lammps (pair_style mlff with the committee,
        # which scores inside LAMMPS; periodic boxes of any size) on nprocs MPI ranks.
        "engine": "ase",
        "nprocs": 1,
    },
    "export": {"dtype": "float32"},
    # Short runs of the exported student in the production engines; null skips them.
    "md": {
        "structure": "builtin:water-32",
        "engines": ["openmm", "lammps"],
        "steps": 1000,
        "temperature_K": 300.0,
        "timestep_fs": 0.5,
        "friction_per_ps": 10.0,
        "report_every": 50,
    },
    # The validation suite (quick, standard or a suite YAML); null skips validation.
    "validation": {"suite": "quick", "cache": None},
}

#: Sections whose value is a mapping merged key by key over the defaults.
_SECTIONS = ("labeling", "student", "active_learning", "export", "md", "validation")
#: Sections that ``null`` switches off.
_OPTIONAL = ("md", "validation")
#: Built-in configs, by name (files next to this module).
BUILTIN = {"demo": "demo.yaml", "demo-quick": "demo-quick.yaml"}


class ConfigError(InputError):
    """A pipeline config is missing, malformed or has unknown keys."""


def load_config(source: str | Path | dict[str, Any]) -> dict[str, Any]:
    """A complete config from a YAML path, a built-in name or a mapping; unknown keys and
    wrong types are errors that name the key."""
    if isinstance(source, dict):
        raw, where = copy.deepcopy(source), "the config"
    else:
        path = Path(__file__).parent / BUILTIN[str(source)] if source in BUILTIN else Path(source)
        where = str(source)
        try:
            raw = yaml.safe_load(path.read_text())
        except FileNotFoundError:
            raise ConfigError(
                f"config {where!r} does not exist; give a YAML file or one of {', '.join(BUILTIN)}"
            ) from None
        except yaml.YAMLError as exc:
            raise ConfigError(f"config {where!r} is not valid YAML: {exc}") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{where} must be a mapping of options (teacher:, structures:, ...)")
    _refuse_unknown(raw, DEFAULTS, f"in {where}")
    config = copy.deepcopy(DEFAULTS)
    for key, value in raw.items():
        if key in _OPTIONAL and value is None:
            config[key] = None
        elif key in _SECTIONS:
            config[key] = _merge_section(key, config[key], value, where)
        else:
            config[key] = value
    _check(config, where)
    return config


def _merge_section(key: str, default: dict, value: Any, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ConfigError(f"{key}: in {where} must be a mapping, got {value!r}")
    _refuse_unknown(value, default, f"under {key}: in {where}")
    return {**default, **value}


def _refuse_unknown(given: dict, known: dict, place: str) -> None:
    unknown = set(given) - set(known)
    if unknown:
        raise ConfigError(
            f"unknown key(s) {', '.join(sorted(unknown))} {place}; known: {', '.join(known)}"
        )


def _check(config: dict[str, Any], where: str) -> None:
    if not (config["structures"] or {}).get("sources"):
        raise ConfigError(
            f"{where} has no structures: add structures: {{sources: [builtin:organic, ...]}}"
        )
    if not isinstance(config["student"].get("training") or {}, dict):
        raise ConfigError(f"student: training: in {where} must be a mapping of training options")
    from ..training.config import make_config

    try:  # checked now, not after an hour of labeling
        training = make_config(
            config["student"]["preset"], dict(config["student"]["training"] or {})
        )
        if "init_from" in training:
            resolve_student(training["init_from"])
    except (ValueError, FileNotFoundError) as exc:
        raise ConfigError(f"student: in {where}: {exc}") from None
    if config["export"]["dtype"] not in ("float32", "float64"):
        raise ConfigError(f"export: dtype: must be float32 or float64 in {where}")
    al = config["active_learning"]
    for key in ("rounds", "committee", "systems", "steps", "every", "select", "eval_frames"):
        if not isinstance(al[key], int) or al[key] < 0:
            raise ConfigError(
                f"active_learning: {key}: must be a non-negative integer in {where}, "
                f"got {al[key]!r}"
            )
    if al["rounds"] and al["committee"] < 1:
        raise ConfigError(
            f"active_learning: committee: must be at least 1 for rounds > 0 in {where} "
            "(1: frames drawn at random from the student's trajectories; 2 or more: the "
            "frames the committee disagrees on most)"
        )
    if al["engine"] not in ("ase", "lammps"):
        raise ConfigError(
            f"active_learning: engine: must be ase or lammps in {where}, got {al['engine']!r}"
        )
    if isinstance(al["nprocs"], bool) or not isinstance(al["nprocs"], int) or al["nprocs"] < 1:
        raise ConfigError(
            f"active_learning: nprocs: must be a whole number >= 1 in {where}, got {al['nprocs']!r}"
        )
    if al["rounds"] and (al["every"] < 1 or al["steps"] < al["every"]):
        raise ConfigError(
            f"active_learning: needs 1 <= every <= steps in {where}, "
            f"got every {al['every']} and steps {al['steps']}"
        )
    md = config["md"]
    if md is not None:
        bad = set(md["engines"]) - {"openmm", "lammps"}
        if bad:
            raise ConfigError(
                f"md: engines: may hold openmm and lammps in {where}, got {', '.join(sorted(bad))}"
            )
