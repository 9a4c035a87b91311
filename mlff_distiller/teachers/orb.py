"""Orb teachers (orb-models). Weights come from a local ``weights_path`` or, on a machine
with internet access, from Orb's usual download.
"""

from __future__ import annotations

import os
import pickle
from pathlib import Path
from typing import Any

from ase import Atoms
from ase.calculators.calculator import Calculator, all_changes

from .base import TeacherAdapter, TeacherError, TeacherInfo, json_safe_kwargs, package_version

#: Registered name -> (loader in orb_models.forcefield.pretrained, conservative forces).
_MODELS: dict[str, tuple[str, bool]] = {
    "orb-v3-conservative-omol": ("orb_v3_conservative_omol", True),
    "orb-v3-direct-omol": ("orb_v3_direct_omol", False),
    "orb-v3-conservative-inf-omat": ("orb_v3_conservative_inf_omat", True),
    "orb-v3-direct-inf-omat": ("orb_v3_direct_inf_omat", False),
    "orb-v2": ("orb_v2", False),
}


class OrbAdapter(TeacherAdapter):
    """The Orb family; ``weights_path=`` points at a local checkpoint (a state dict)."""

    names = tuple(_MODELS)
    package = "orb-models"
    module = "orb_models"
    install_hint = "pip install orb-models==0.5.5"
    description = "Orb, needs weights_path= offline"

    def build(
        self,
        name: str,
        weights_path: str | os.PathLike | None = None,
        device: str = "cpu",
        precision: str = "float32-highest",
        compile: bool = False,
        charge: float = 0.0,
        spin: float = 1.0,
    ) -> tuple[Calculator, TeacherInfo]:
        import torch
        from orb_models.forcefield import pretrained

        loader_name, conservative = _MODELS[name]
        loader = getattr(pretrained, loader_name)
        options: dict[str, Any] = {"device": device, "precision": precision, "compile": compile}
        if weights_path is not None:
            if not Path(weights_path).is_file():
                raise TeacherError(
                    f"Orb weights file {str(weights_path)!r} does not exist; pass "
                    "weights_path= the local checkpoint of "
                    f"{name!r}"
                )
            options["weights_path"] = str(weights_path)
        # Orb's loader sets torch's process-wide default dtype; keep the caller's.
        default_dtype = torch.get_default_dtype()
        try:
            model = loader(**options)
        except (OSError, ConnectionError, ValueError, RuntimeError, pickle.UnpicklingError) as exc:
            if weights_path is not None:
                raise TeacherError(
                    f"cannot load Orb weights {str(weights_path)!r} into {name!r}: {exc}; "
                    "check the file is a checkpoint of that model"
                ) from exc
            raise TeacherError(
                f"cannot download the weights of {name!r} ({type(exc).__name__}); on a machine "
                "without internet pass weights_path= a local copy of the checkpoint"
            ) from exc
        finally:
            torch.set_default_dtype(default_dtype)

        calc = OrbTeacherCalculator(model, device=device, charge=charge, spin=spin)
        info = TeacherInfo(
            name=name,
            package=self.package,
            version=package_version(self.package),
            cutoff=float(model.system_config.radius),
            elements=None,
            conservative=conservative,
            kwargs=json_safe_kwargs(
                {
                    "weights_path": str(weights_path) if weights_path else None,
                    "precision": precision,
                    "charge": charge,
                    "spin": spin,
                }
            ),
        )
        return calc, info


def _orb_calculator_class() -> type[Calculator]:
    from orb_models.forcefield.calculator import ORBCalculator

    return ORBCalculator


class OrbTeacherCalculator(Calculator):
    """Orb's own ASE calculator, with a default total charge and spin multiplicity.

    The OMol models need ``atoms.info["charge"]`` and ``atoms.info["spin"]``; structures that
    do not carry them (most inputs) get the defaults given here instead of an error.
    Stress is given for periodic cells only.
    """

    def __init__(self, model: Any, device: str, charge: float, spin: float) -> None:
        super().__init__()
        self.inner = _orb_calculator_class()(model, device=device)
        self.implemented_properties = list(self.inner.implemented_properties)
        self.default_charge = charge
        self.default_spin = spin
        self.dtype = next(model.parameters()).dtype

    def charge_and_spin(self, atoms: Atoms) -> tuple[float, float]:
        """The total charge and spin multiplicity Orb sees for ``atoms``."""
        # Orb accepts only Python int/float; extxyz files give numpy integers.
        charge = float(atoms.info.get("charge", self.default_charge))
        spin = float(atoms.info.get("spin", self.default_spin))
        return charge, spin

    def check_state(self, atoms: Atoms, tol: float = 1e-15) -> list[str]:
        # ASE's cache ignores atoms.info: a new charge or spin on the same geometry must
        # not return the previous results.
        changes = super().check_state(atoms, tol)
        previous = self.atoms
        if previous is not None and self.charge_and_spin(atoms) != self.charge_and_spin(previous):
            changes.append("charge_spin")
        return changes

    def calculate(
        self,
        atoms: Atoms | None = None,
        properties: list[str] | None = None,
        system_changes: list[str] = all_changes,
    ) -> None:
        import torch

        super().calculate(atoms, properties, system_changes)
        work = self.atoms.copy()
        work.info["charge"], work.info["spin"] = self.charge_and_spin(work)
        # Orb featurizes in torch's default dtype: use the model's for this call only.
        default_dtype = torch.get_default_dtype()
        torch.set_default_dtype(self.dtype)
        try:
            self.inner.calculate(work, properties, system_changes)
        finally:
            torch.set_default_dtype(default_dtype)
        self.results = dict(self.inner.results)
        if not work.pbc.any():  # Orb gives zeros (no cell) or a box-dependent value
            self.results.pop("stress", None)
