"""The common interface every teacher adapter implements.

A teacher is any ASE calculator that returns energy and forces (and stress for periodic
cells). Adapters for known model families (SevenNet, Orb, FeNNol) know how to build the
calculator from a name and report what they know about it as :class:`TeacherInfo`, which
travels into every dataset labelled with that teacher.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import importlib.util
from abc import ABC, abstractmethod
from dataclasses import asdict, dataclass, field
from typing import Any

from ase.calculators.calculator import Calculator
from ase.data import chemical_symbols

from ..errors import InputError, RunError
from ..files import to_json

#: Attribute under which :func:`get_teacher` stores the :class:`TeacherInfo` on a calculator.
INFO_ATTRIBUTE = "mlff_teacher_info"


class TeacherError(RunError):
    """A teacher cannot be built or used as asked; the message says how to fix it."""


class UnsupportedElementError(InputError):
    """A structure holds an element the teacher was not trained on."""


@dataclass(frozen=True)
class TeacherInfo:
    """What is known about a teacher; stored with every labelled dataset.

    Parameters
    ----------
    name
        The registered name (``"sevennet-0"``) or the import path of the calculator class.
    package
        The distribution that provides the model (``"sevenn"``).
    version
        That distribution's installed version.
    cutoff
        The model's radial cutoff in Å, if known.
    elements
        Chemical symbols the model supports, if known (``None`` means unknown, not "all").
    conservative
        Whether forces are the negative gradient of the energy (``None`` if unknown).
    kwargs
        The keyword arguments the teacher was built with (JSON-serialisable subset).
    """

    name: str
    package: str
    version: str
    cutoff: float | None = None
    elements: tuple[str, ...] | None = None
    conservative: bool | None = None
    kwargs: dict[str, Any] = field(default_factory=dict)

    @property
    def key(self) -> str:
        """What makes two teachers the same labeller (name, package, version, kwargs; the
        cutoff and elements follow from them), as text: equal keys, interchangeable labels."""
        return teacher_key(self.to_dict())

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["elements"] = list(self.elements) if self.elements is not None else None
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TeacherInfo:
        elements = data.get("elements")
        return cls(
            name=data["name"],
            package=data["package"],
            version=data["version"],
            cutoff=data.get("cutoff"),
            elements=tuple(elements) if elements is not None else None,
            conservative=data.get("conservative"),
            kwargs=dict(data.get("kwargs") or {}),
        )

    def check_elements(self, symbols: set[str] | list[str], where: str = "") -> None:
        """Raise :class:`UnsupportedElementError` if any symbol is outside ``elements``."""
        if self.elements is None:
            return
        missing = sorted(set(symbols) - set(self.elements), key=chemical_symbols.index)
        if missing:
            location = f" in {where}" if where else ""
            raise UnsupportedElementError(
                f"element(s) {', '.join(missing)}{location} not supported by teacher "
                f"{self.name!r} (it knows {len(self.elements)} elements: "
                f"{_short_list(self.elements)}); remove those structures or choose another teacher"
            )


def teacher_key(info: TeacherInfo | dict[str, Any] | None) -> str:
    """:attr:`TeacherInfo.key` of a teacher or of its ``to_dict()`` as a dataset stores it
    (``None``, an unknown teacher, has a key too)."""
    if isinstance(info, TeacherInfo):
        info = info.to_dict()
    info = info or {}
    return to_json(
        {k: info.get(k) for k in ("name", "package", "version", "kwargs")}, sort_keys=True
    )


def _short_list(symbols: tuple[str, ...], limit: int = 20) -> str:
    shown = ", ".join(symbols[:limit])
    return shown if len(symbols) <= limit else f"{shown}, ..."


def package_version(distribution: str) -> str:
    """The installed version of ``distribution``, or ``"unknown"``."""
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


def json_safe_kwargs(kwargs: dict[str, Any]) -> dict[str, Any]:
    """Keep the keyword arguments that can be written to JSON; describe the rest by type."""
    safe: dict[str, Any] = {}
    for key, value in kwargs.items():
        if value is None or isinstance(value, (bool, int, float, str)):
            safe[key] = value
        elif isinstance(value, (list, tuple)) and all(
            isinstance(v, (bool, int, float, str)) for v in value
        ):
            safe[key] = list(value)
        else:
            safe[key] = f"<{type(value).__name__}>"
    return safe


class TeacherAdapter(ABC):
    """Builds one family of teacher calculators by name.

    Subclasses set ``names`` (the registered specs they answer to), ``package`` (the
    distribution to import) and ``install_hint``, and implement :meth:`build`.
    Heavy imports happen inside :meth:`build`, never at module import.
    """

    names: tuple[str, ...] = ()
    package: str = ""
    module: str = ""
    install_hint: str = ""
    description: str = ""

    def available(self) -> bool:
        """Whether the adapter's package can be imported here (without importing it)."""
        return importlib.util.find_spec(self.module) is not None

    def require(self) -> None:
        if not self.available():
            raise TeacherError(
                f"the {self.package!r} package is not installed; install it with "
                f"`{self.install_hint}`"
            )

    @abstractmethod
    def build(self, name: str, **kwargs: Any) -> tuple[Calculator, TeacherInfo]:
        """Return the calculator for registered ``name`` and what is known about it."""
