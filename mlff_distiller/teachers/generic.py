"""Any ASE calculator as a teacher, by import path (``"package.module:ClassName"``)."""

from __future__ import annotations

import importlib
from typing import Any

from ase.calculators.calculator import BaseCalculator, Calculator

from .base import TeacherError, TeacherInfo, json_safe_kwargs, package_version


def build_from_import_path(spec: str, **kwargs: Any) -> Calculator:
    """Import ``module:attribute`` and call it with ``kwargs``; the result must be a calculator."""
    module_name, _, attribute = spec.partition(":")
    if not module_name or not attribute:
        raise TeacherError(
            f"teacher import path {spec!r} must look like 'package.module:ClassName'"
        )
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise TeacherError(
            f"cannot import {module_name!r} for teacher {spec!r} ({exc}); install the package "
            "that provides it in this environment"
        ) from exc
    target: Any = module
    for part in attribute.split("."):
        if not hasattr(target, part):
            raise TeacherError(f"module {module_name!r} has no attribute {attribute!r}")
        target = getattr(target, part)
    if not callable(target):
        raise TeacherError(f"{spec!r} is not callable; point to a calculator class or factory")
    try:
        calc = target(**kwargs)
    except TypeError as exc:
        raise TeacherError(f"cannot build {spec!r} with arguments {sorted(kwargs)}: {exc}") from exc
    if not isinstance(calc, BaseCalculator):
        raise TeacherError(f"{spec!r} returned {type(calc).__name__}, not an ASE calculator")
    return calc


def info_for_calculator(
    calc: Calculator, name: str | None = None, kwargs: dict[str, Any] | None = None
) -> TeacherInfo:
    """Describe a calculator we know nothing special about (cutoff and elements unknown)."""
    cls = type(calc)
    top_module = cls.__module__.split(".")[0]
    distribution = _distribution_for_module(top_module)
    return TeacherInfo(
        name=name or f"{cls.__module__}:{cls.__qualname__}",
        package=distribution,
        version=package_version(distribution),
        cutoff=None,
        elements=None,
        conservative=None,
        kwargs=json_safe_kwargs(kwargs or {}),
    )


def _distribution_for_module(top_module: str) -> str:
    from importlib.metadata import packages_distributions

    candidates = packages_distributions().get(top_module, [])
    return candidates[0] if candidates else top_module
