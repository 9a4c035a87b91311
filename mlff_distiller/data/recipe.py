"""A structure recipe: sources plus sampling steps, as written in a YAML config.

>>> recipe = {
...     "sources": ["builtin:organic", "builtin:water-32"],
...     "conformers": 1,
...     "seed": 0,
...     "sampling": [
...         {"method": "perturb", "n_samples": 2, "amplitude": 0.04},
...         {"method": "rattle_strain", "n_samples": 2},
...     ],
... }
>>> structures = build_structures(recipe)                     # doctest: +SKIP

Each sampling step applies to the structures it suits (``normal_modes`` and ``torsions`` to
molecules, ``rattle_strain`` and ``squeeze`` (cells compressed with their molecules
kept whole) to periodic cells, ``perturb``, ``md``, ``compress`` (squeezed
bonds) and ``contacts`` (squeezed non-bonded pairs) to both); the result is the original
structures (unless ``include_originals: false``)
followed by every step's samples.
A step's ``apply_to: molecules`` or ``apply_to: cells`` narrows it further (teacher MD of
the molecules at one temperature and of the water boxes at another, say), and its
``sources:`` (a list of the recipe's own source specs) to the structures those sources gave
(a large set sampled lightly beside a small one sampled thoroughly).
Steps that need a calculator (``normal_modes``, ``md``) use the teacher, or, with
``driver: student.pt`` (an exported student or a checkpoint), that student: student MD is
tens of times cheaper than teacher MD and visits what the student's own MD visits (active
learning's premise); the teacher still labels every frame it yields.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

from ase import Atoms
from ase.calculators.calculator import Calculator

from ..errors import InputError
from ..files import to_json
from .cache import read_structure_cache, write_structure_cache
from .sampling import (
    compress_bonds,
    compress_contacts,
    md_sampling,
    normal_mode_sampling,
    perturb,
    rattle_strain,
    squeeze_cells,
    torsion_sampling,
)
from .structures import load_source

RECIPE_KEYS = {"sources", "conformers", "seed", "sampling", "include_originals"}
_METHODS = {
    "perturb": (perturb, "any", False),
    "rattle_strain": (rattle_strain, "periodic", False),
    "normal_modes": (normal_mode_sampling, "molecule", True),
    "md": (md_sampling, "any", True),
    "torsions": (torsion_sampling, "molecule", False),
    "compress": (compress_bonds, "any", False),
    "contacts": (compress_contacts, "any", False),
    "squeeze": (squeeze_cells, "periodic", False),
}
#: A step's optional ``apply_to:`` key narrows it to molecules or to periodic cells. (Not
#: ``on:``, which YAML 1.1 reads as the boolean true.)
_APPLY_TO = {"all": "any", "molecules": "molecule", "cells": "periodic"}


#: Sampling options that count something: whole numbers, never negative.
_COUNTS = ("n_samples", "n_frames", "every", "equilibration_steps")


def check_recipe(recipe: dict[str, Any]) -> None:
    """Refuse a recipe with unknown keys, no sources, an unknown sampling method or
    ``apply_to``, or a negative or fractional count, before any work (or teacher) starts."""
    unknown = set(recipe) - RECIPE_KEYS
    if unknown:
        raise InputError(
            f"unknown structure option(s) {', '.join(sorted(unknown))}; "
            f"known: {', '.join(sorted(RECIPE_KEYS))}"
        )
    if not recipe.get("sources"):
        raise InputError("no structure sources: give sources, e.g. ['builtin:organic']")
    conformers = recipe.get("conformers", 1)
    if isinstance(conformers, bool) or not isinstance(conformers, int) or conformers < 1:
        raise InputError(f"conformers must be a whole number >= 1, got {conformers!r}")
    for step_index, step in enumerate(recipe.get("sampling") or []):
        method = step.get("method")
        if method not in _METHODS:
            raise InputError(
                f"sampling step {step_index} has method {method!r}; "
                f"use one of {', '.join(_METHODS)}"
            )
        if "driver" in step:
            if not _METHODS[method][2]:
                raise InputError(
                    f"sampling step {step_index} ({method}) takes no driver: only md and "
                    "normal_modes run a calculator"
                )
            if not Path(str(step["driver"])).is_file():
                raise InputError(
                    f"sampling step {step_index} ({method}): driver {step['driver']!r} does not "
                    "exist; give an exported student (.pt) or a training checkpoint"
                )
        apply_to = step.get("apply_to", "all")
        if apply_to not in _APPLY_TO:
            raise InputError(
                f"sampling step {step_index} ({method}) has apply_to: {apply_to!r}; "
                f"use one of {', '.join(_APPLY_TO)}"
            )
        only = step.get("sources")
        if only is not None:
            if not isinstance(only, list) or not only:
                raise InputError(
                    f"sampling step {step_index} ({method}): sources must be a list of the "
                    f"recipe's sources, got {only!r}"
                )
            strangers = [str(spec) for spec in only if spec not in recipe["sources"]]
            if strangers:
                raise InputError(
                    f"sampling step {step_index} ({method}): sources {', '.join(strangers)} "
                    f"are not among the recipe's sources ({', '.join(map(str, recipe['sources']))})"
                )
        for key in _COUNTS:
            value = step.get(key, 0)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise InputError(
                    f"sampling step {step_index} ({method}): {key} must be a whole number "
                    f">= 0, got {value!r}"
                )


def build_structures(
    recipe: dict[str, Any],
    calculator: Calculator | None = None,
    cache_dir: str | Path | None = None,
    calculator_key: Any = None,
) -> list[Atoms]:
    """Structures from a recipe (see the module docstring); ``calculator`` drives MD and
    normal-mode sampling.

    With ``cache_dir``, each sampling step's samples are kept there in a file named by a
    hash of everything the step depends on (the recipe's sources, conformers and seed, the
    step itself, the digest of its driver, and ``calculator_key``, which names the
    calculator for steps that use it). A rerun reads the steps it already did, so an
    interrupted build resumes at the step it was in and a recipe with one more step
    computes only that step. Files of steps the recipe no longer has are removed at the end.
    """
    check_recipe(recipe)
    seed = int(recipe.get("seed", 0))
    base: list[Atoms] = []
    base_spec: list[str] = []  # the source spec each base structure came from
    for spec in recipe["sources"]:
        loaded = load_source(str(spec), n_conformers=int(recipe.get("conformers", 1)), seed=seed)
        base.extend(loaded)
        base_spec.extend([spec] * len(loaded))
    out = list(base) if recipe.get("include_originals", True) else []
    kept: set[str] = set()
    for step_index, written in enumerate(recipe.get("sampling") or []):
        step = dict(written)
        method = step.pop("method")
        function, suits, needs_calc = _METHODS[method]
        apply_to = step.pop("apply_to", "all")
        only = step.pop("sources", None)
        targets = [
            a
            for a, spec in zip(base, base_spec, strict=True)
            if _suits(a, suits)
            and _suits(a, _APPLY_TO[apply_to])
            and (only is None or spec in only)
        ]
        if not targets:
            continue
        step.setdefault("seed", seed + step_index + 1)
        cached = None
        if cache_dir is not None:
            cached = Path(cache_dir) / _step_file(recipe, step_index, written, calculator_key)
            kept.add(cached.name)
            if cached.is_file():
                out.extend(read_structure_cache(cached))
                continue
        driver = step.pop("driver", None)
        if driver is not None:
            from ..calculators import StudentCalculator

            step["calculator"] = StudentCalculator(str(driver))
        elif needs_calc:
            if calculator is None:
                raise InputError(f"sampling method {method!r} needs a teacher calculator")
            step["calculator"] = calculator
        try:
            samples = function(targets, **step)
        except TypeError as exc:
            raise InputError(f"sampling step {step_index} ({method}): {exc}") from exc
        if driver is not None:
            for sample in samples:
                sample.info["sampling"]["driver"] = Path(str(driver)).name
        if cached is not None:
            write_structure_cache(samples, cached)
        out.extend(samples)
    if cache_dir is not None:
        for stale in Path(cache_dir).glob("step-*.json"):
            if stale.name not in kept:
                stale.unlink()
    return out


def _step_file(
    recipe: dict[str, Any], index: int, step: dict[str, Any], calculator_key: Any
) -> str:
    """The cache file name of sampling step ``index`` (as the recipe writes it): its position
    and method (for people) and a hash of what its samples depend on."""
    seed = int(recipe.get("seed", 0))
    method = str(step["method"])
    inputs: dict[str, Any] = {
        "sources": [str(spec) for spec in recipe["sources"]],
        "conformers": int(recipe.get("conformers", 1)),
        "seed": seed,
        "step": {"seed": seed + index + 1, **step},
    }
    if "driver" in step:
        inputs["driver_sha256"] = hashlib.sha256(Path(str(step["driver"])).read_bytes()).hexdigest()
    elif _METHODS[method][2]:
        inputs["calculator"] = calculator_key
    text = to_json(inputs, sort_keys=True)
    return f"step-{index:02d}-{method}-{hashlib.sha256(text.encode()).hexdigest()[:16]}.json"


def needs_calculator(recipe: dict[str, Any]) -> bool:
    """Whether a sampling step of ``recipe`` (``md``, ``normal_modes`` without a
    ``driver``) needs the teacher."""
    return any(
        _METHODS.get(step.get("method"), (None, None, False))[2] and "driver" not in step
        for step in recipe.get("sampling") or []
    )


def _suits(atoms: Atoms, suits: str) -> bool:
    periodic = bool(atoms.pbc.any())
    return suits == "any" or (suits == "periodic") == periodic
