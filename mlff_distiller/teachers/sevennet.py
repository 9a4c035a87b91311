"""SevenNet teachers. The ``sevenn`` wheel ships its pretrained checkpoints, so
``sevennet-0`` works offline and is the default teacher.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import Any

from ase.calculators.calculator import Calculator
from ase.data import chemical_symbols

from .base import TeacherAdapter, TeacherError, TeacherInfo, json_safe_kwargs, package_version

#: Registered name -> the model name SevenNet's loader knows (its weights are in the wheel).
_PRETRAINED = {"sevennet-0": "7net-0", "sevennet-l3i5": "7net-l3i5"}


class SevenNetAdapter(TeacherAdapter):
    """``sevennet-0`` / ``sevennet-l3i5`` (shipped weights) or ``sevennet`` with ``model=PATH``."""

    names = (*_PRETRAINED, "sevennet")
    package = "sevenn"
    module = "sevenn"
    install_hint = "pip install sevenn"
    description = "SevenNet, weights ship in the sevenn wheel"

    def build(
        self, name: str, model: str | os.PathLike | None = None, device: str = "cpu", **kwargs: Any
    ) -> tuple[Calculator, TeacherInfo]:
        if name == "sevennet":
            if model is None:
                raise TeacherError(
                    "teacher 'sevennet' needs model=PATH to a SevenNet checkpoint; "
                    "or use 'sevennet-0' for the shipped SevenNet-0 weights"
                )
            if not Path(model).is_file():
                raise TeacherError(f"SevenNet checkpoint {str(model)!r} does not exist")
            source = str(model)
        else:
            if model is not None:
                raise TeacherError(
                    f"teacher {name!r} uses its shipped weights; use 'sevennet' with "
                    "model=PATH for your own checkpoint"
                )
            source = _PRETRAINED[name]

        from sevenn.calculator import SevenNetCalculator

        with warnings.catch_warnings():
            # SevenNet warns that no GPU tensor-product accelerator is in use; on CPU that
            # is expected and not actionable.
            warnings.simplefilter("ignore")
            calc = SevenNetCalculator(model=source, device=device, **kwargs)

        elements = tuple(chemical_symbols[z] for z in sorted(int(z) for z in calc.type_map.keys()))
        info = TeacherInfo(
            name=name,
            package=self.package,
            version=package_version(self.package),
            cutoff=float(calc.cutoff),
            elements=elements,
            conservative=True,
            kwargs=json_safe_kwargs({"model": source, "device": device, **kwargs}),
        )
        return calc, info
