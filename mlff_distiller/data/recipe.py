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
molecules, ``rattle_strain`` to periodic cells, ``perturb`` and ``md`` to both); the result is the
original structures (unless ``include_originals: false``) followed by every step's samples.
A step's ``apply_to: molecules`` or ``apply_to: cells`` narrows it further (teacher MD of
the molecules at one temperature and of the water boxes at another, say).
Steps that need a calculator (``normal_modes``, ``md``) use the teacher.
"""

from __future__ import annotations

from typing import Any

from ase import Atoms
from ase.calculators.calculator import Calculator

from .sampling import md_sampling, normal_mode_sampling, perturb, rattle_strain, torsion_sampling
from .structures import load_source

RECIPE_KEYS = {"sources", "conformers", "seed", "sampling", "include_originals"}
_METHODS = {
    "perturb": (perturb, "any", False),
    "rattle_strain": (rattle_strain, "periodic", False),
    "normal_modes": (normal_mode_sampling, "molecule", True),
    "md": (md_sampling, "any", True),
    "torsions": (torsion_sampling, "molecule", False),
}
#: A step's optional ``apply_to:`` key narrows it to molecules or to periodic cells. (Not
#: ``on:``, which YAML 1.1 reads as the boolean true.)
_APPLY_TO = {"all": "any", "molecules": "molecule", "cells": "periodic"}


def build_structures(recipe: dict[str, Any], calculator: Calculator | None = None) -> list[Atoms]:
    """Structures from a recipe (see the module docstring); ``calculator`` drives MD and
    normal-mode sampling."""
    unknown = set(recipe) - RECIPE_KEYS
    if unknown:
        raise ValueError(
            f"unknown structure option(s) {', '.join(sorted(unknown))}; "
            f"known: {', '.join(sorted(RECIPE_KEYS))}"
        )
    sources = recipe.get("sources")
    if not sources:
        raise ValueError("no structure sources: give sources, e.g. ['builtin:organic']")
    seed = int(recipe.get("seed", 0))
    base: list[Atoms] = []
    for spec in sources:
        base.extend(
            load_source(str(spec), n_conformers=int(recipe.get("conformers", 1)), seed=seed)
        )
    out = list(base) if recipe.get("include_originals", True) else []
    for step_index, step in enumerate(recipe.get("sampling") or []):
        step = dict(step)
        method = step.pop("method", None)
        if method not in _METHODS:
            raise ValueError(
                f"sampling step {step_index} has method {method!r}; "
                f"use one of {', '.join(_METHODS)}"
            )
        function, suits, needs_calc = _METHODS[method]
        apply_to = step.pop("apply_to", "all")
        if apply_to not in _APPLY_TO:
            raise ValueError(
                f"sampling step {step_index} ({method}) has apply_to: {apply_to!r}; "
                f"use one of {', '.join(_APPLY_TO)}"
            )
        targets = [a for a in base if _suits(a, suits) and _suits(a, _APPLY_TO[apply_to])]
        if not targets:
            continue
        step.setdefault("seed", seed + step_index + 1)
        if needs_calc:
            if calculator is None:
                raise ValueError(f"sampling method {method!r} needs a teacher calculator")
            step["calculator"] = calculator
        try:
            out.extend(function(targets, **step))
        except TypeError as exc:
            raise ValueError(f"sampling step {step_index} ({method}): {exc}") from exc
    return out


def needs_calculator(recipe: dict[str, Any]) -> bool:
    """Whether a sampling step of ``recipe`` (``md``, ``normal_modes``) needs the teacher."""
    return any(
        _METHODS.get(step.get("method"), (None, None, False))[2]
        for step in recipe.get("sampling") or []
    )


def _suits(atoms: Atoms, suits: str) -> bool:
    periodic = bool(atoms.pbc.any())
    return suits == "any" or (suits == "periodic") == periodic
