"""FeNNol teachers: FENNIX models (JAX) read from a local model file (``.fnx``).

>>> from mlff_distiller.teachers import get_teacher
>>> calc = get_teacher("fennol", weights_path="model.fnx")  # doctest: +SKIP
"""

from __future__ import annotations

import functools
import os
from pathlib import Path
from typing import Any

from ase.calculators.calculator import Calculator, all_changes
from ase.data import atomic_numbers

from .base import (
    TeacherAdapter,
    TeacherError,
    TeacherInfo,
    json_safe_kwargs,
    package_version,
)


class FennolAdapter(TeacherAdapter):
    """A FENNIX model file, run by FeNNol's ``fennol.ase.FENNIXCalculator``.

    Forces are ``-jax.grad`` of the total energy (conservative). Stress is the strain
    derivative of the energy, given for cells periodic in all three directions only;
    otherwise asking for it raises ASE's ``PropertyNotImplementedError``. FeNNol refuses
    partially periodic cells (``NotImplementedError``).
    """

    names = ("fennol",)
    package = "fennol"
    module = "fennol"
    install_hint = 'pip install ".[fennol]"'
    description = "FeNNol FENNIX model (JAX), needs weights_path= a local .fnx file"

    def build(
        self,
        name: str,
        weights_path: str | os.PathLike | None = None,
        device: str = "cpu",
        dtype: str = "float64",
        **kwargs: Any,
    ) -> tuple[Calculator, TeacherInfo]:
        """Load the FENNIX model file ``weights_path`` (written by ``FENNIX.save``).

        ``device`` becomes JAX's default device and ``dtype="float64"`` turns on JAX's
        64-bit mode; both are process-wide JAX settings. Other keyword arguments go to
        ``FENNIXCalculator`` (``energy_terms``, ``use_atom_padding``, ``graph_config``).
        """
        fix = "pass weights_path= a local FENNIX model file (.fnx, from FENNIX.save)"
        if weights_path is None:
            raise TeacherError(f"the 'fennol' teacher needs a model file: {fix}")
        path = Path(weights_path)
        if not path.is_file():
            raise TeacherError(f"FeNNol model file {str(path)!r} does not exist; {fix}")
        if dtype not in ("float32", "float64"):
            raise TeacherError(f"dtype must be 'float32' or 'float64', not {dtype!r}")
        import jax

        try:
            jax.config.update("jax_default_device", jax.devices(device)[0])
        except RuntimeError as exc:
            raise TeacherError(f"JAX has no {device!r} device ({exc}); use device='cpu'") from exc
        try:
            calc = _calculator_class()(str(path), use_float64=dtype == "float64", **kwargs)
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise TeacherError(
                f"cannot load FeNNol model {str(path)!r} ({type(exc).__name__}: "
                f"{exc}); check the keyword arguments; {fix}"
            ) from exc
        model = calc.model
        if not model.energy_terms:
            raise TeacherError(
                f"FeNNol model {str(path)!r} declares no energy terms, so its energy "
                "and forces would be zero; pass energy_terms= the outputs to sum"
            )
        graph_cutoffs = [g["cutoff"] or 0.0 for g in model._graphs_properties.values()]
        info = TeacherInfo(
            name=name,
            package=self.package,
            version=package_version(self.package),
            cutoff=float(max(graph_cutoffs, default=model.cutoff or 0.0)) or None,
            elements=_declared_species(model._input_args),
            conservative=True,
            kwargs=json_safe_kwargs(
                {"weights_path": str(path), "device": device, "dtype": dtype, **kwargs}
            ),
        )
        return calc, info


def _declared_species(config: Any) -> tuple[str, ...] | None:
    """Elements allowed by every ``species_order`` in the model's definition, if any."""
    found: list[set[str]] = []

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                if key == "species_order" and value is not None:
                    items = value.split(",") if isinstance(value, str) else value
                    found.append({str(s).strip() for s in items})
                else:
                    walk(value)
        elif isinstance(node, (list, tuple)):
            for value in node:
                walk(value)

    walk(config)
    allowed = set.intersection(*found) if found else None
    return None if allowed is None else tuple(sorted(allowed, key=atomic_numbers.get))


@functools.cache
def _calculator_class() -> type[Calculator]:
    from ase.calculators.calculator import PropertyNotImplementedError
    from fennol.ase import FENNIXCalculator

    class FennolTeacherCalculator(FENNIXCalculator):
        """FENNIXCalculator + ``free_energy``, a stress check and a pbc-aware cache."""

        implemented_properties = ("energy", "free_energy", "forces", "stress")

        def calculate(
            self,
            atoms: Any = None,
            properties: list[str] | None = None,
            system_changes: list[str] = all_changes,
        ) -> None:
            properties = list(properties or ["energy"])
            target = atoms if atoms is not None else self.atoms
            if "stress" in properties and not target.pbc.all():
                raise PropertyNotImplementedError(
                    "FeNNol gives stress only for cells periodic in all three directions"
                )
            if "pbc" in system_changes:  # FeNNol's cache only notices "cell" changes
                self._raw_inputs = None
            super().calculate(atoms, properties, system_changes)
            self.results["free_energy"] = self.results["energy"]

    return FennolTeacherCalculator
