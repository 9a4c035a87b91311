"""Teachers: the large force fields whose labels the students learn from.

>>> from mlff_distiller.teachers import get_teacher
>>> calc = get_teacher("sevennet-0")                      # doctest: +SKIP
>>> calc = get_teacher("ase.calculators.emt:EMT")         # any ASE calculator by import path
>>> teacher_info(calc).name
'ase.calculators.emt:EMT'
"""

from __future__ import annotations

from typing import Any

from ase.calculators.calculator import Calculator

from .base import (
    INFO_ATTRIBUTE,
    TeacherAdapter,
    TeacherError,
    TeacherInfo,
    UnsupportedElementError,
    teacher_key,
)
from .fennol import FennolAdapter
from .generic import build_from_import_path, info_for_calculator
from .orb import OrbAdapter
from .sevennet import SevenNetAdapter

__all__ = [
    "teacher_key",
    "DEFAULT_TEACHER",
    "TeacherError",
    "TeacherInfo",
    "UnsupportedElementError",
    "available_teachers",
    "get_teacher",
    "registered_teachers",
    "teacher_info",
]

#: The teacher used when none is given: its weights ship inside the ``sevenn`` wheel.
DEFAULT_TEACHER = "sevennet-0"

_ADAPTERS: tuple[TeacherAdapter, ...] = (SevenNetAdapter(), OrbAdapter(), FennolAdapter())
_REGISTRY: dict[str, TeacherAdapter] = {
    name: adapter for adapter in _ADAPTERS for name in adapter.names
}


def registered_teachers() -> dict[str, TeacherAdapter]:
    """Registered teacher names mapped to the adapter that builds them."""
    return dict(_REGISTRY)


def available_teachers() -> dict[str, str]:
    """Each registered name with a one-line status saying whether it can run here."""
    status = {}
    for name, adapter in _REGISTRY.items():
        if adapter.available():
            status[name] = f"available ({adapter.description})"
        else:
            status[name] = f"not installed: `{adapter.install_hint}`"
    return status


def get_teacher(spec: str, **kwargs: Any) -> Calculator:
    """Build a teacher calculator.

    Parameters
    ----------
    spec
        A registered name (see :func:`registered_teachers`), or ``"package.module:ClassName"``
        for any ASE calculator.
    **kwargs
        Passed to the adapter (e.g. ``device="cpu"``, ``weights_path=...`` for Orb and FeNNol)
        or to the calculator class.

    Returns
    -------
    ase.calculators.calculator.Calculator
        With a :class:`TeacherInfo` attached (read it with :func:`teacher_info`).
    """
    if not isinstance(spec, str) or not spec.strip():
        raise TeacherError(
            "teacher spec must be a non-empty string: a registered name "
            f"({', '.join(sorted(_REGISTRY))}) or 'package.module:ClassName'"
        )
    spec = spec.strip()
    if spec in _REGISTRY:
        adapter = _REGISTRY[spec]
        adapter.require()
        calc, info = adapter.build(spec, **kwargs)
    elif ":" in spec:
        calc = build_from_import_path(spec, **kwargs)
        info = info_for_calculator(calc, name=spec, kwargs=kwargs)
    else:
        raise TeacherError(
            f"unknown teacher {spec!r}: use one of {', '.join(sorted(_REGISTRY))} or an "
            "import path like 'ase.calculators.emt:EMT'"
        )
    setattr(calc, INFO_ATTRIBUTE, info)
    return calc


def teacher_info(calc: Calculator) -> TeacherInfo:
    """What is known about a teacher calculator, whether or not :func:`get_teacher` built it."""
    info = getattr(calc, INFO_ATTRIBUTE, None)
    if isinstance(info, TeacherInfo):
        return info
    return info_for_calculator(calc)
