"""The student as an openmm-ml potential: ``MLPotential("mlff", modelPath="student.pt")``.

openmm-ml finds this factory through the ``openmmml.potentials`` entry point, so after
``pip install mlff_distiller`` the usual openmm-ml calls work unchanged::

    from openmmml import MLPotential
    potential = MLPotential("mlff", modelPath="sevennet0-tiny.pt")
    system = potential.createSystem(topology)
    mixed = potential.createMixedSystem(topology, mm_system, ligand_atoms, interpolate=True)

The force itself is the one :func:`~mlff_distiller.engines.openmm.create_system` adds
(:func:`~mlff_distiller.engines.openmm.student_force`). The student is strictly local, so it
reports no long-range part (``getMLLongRange`` is false): in a periodic ML/MM system
openmm-ml's mechanical embedding keeps the PME interactions of ML atoms with their own
periodic images classical.

Interpolation (``interpolate=True``): openmm-ml puts copies of the ML forces inside a
``CustomCVForce``, ``lambda * ML + (1 - lambda) * MM``. Both the copy and the
``CustomCVForce``'s inner System go through ``XmlSerializer``, which crashes on a
``TorchForce`` with the pinned openmm 8.6.1 and openmmtorch 1.5 (see
``engines/openmm/README.md``). Here the ``CustomCVForce`` holds a zero-energy stand-in
instead, and a top-level ``TorchForce`` computes ``lambda * E_student`` with ``lambda`` as
its own global parameter: the same energy and forces at every ``lambda``.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from typing import Any

# isort: split
from ..errors import InputError, MissingFileError
from .openmm import student_force  # imports torch before openmm (the Torch plugin needs it)

# isort: split
import openmm
from openmm import app
from openmmml.embeddings.mechanicalembedding import MechanicalEmbedding
from openmmml.mlpotential import MLPotentialImpl, MLPotentialImplFactory

#: Keyword arguments openmm-ml's mechanical embedding forwards to ``addForces``.
_EMBEDDING_ARGS = frozenset({"mlLongRange", "linkAtomDistances"})
#: Name of the stand-in force while openmm-ml copies the ML forces.
_STAND_IN = "mlff_distiller stand-in"


class StudentPotentialImplFactory(MLPotentialImplFactory):
    """Creates :class:`StudentPotentialImpl` for ``MLPotential("mlff", modelPath=...)``."""

    def createImpl(self, name: str, modelPath: str | os.PathLike | None = None, **args):
        if args:
            raise InputError(
                f"MLPotential({name!r}) takes only modelPath, got {', '.join(sorted(args))}"
            )
        if modelPath is None:
            raise InputError(
                f"MLPotential({name!r}) needs modelPath=, the file written by mlff-distill "
                "export (e.g. MLPotential('mlff', modelPath='student.pt'))"
            )
        return StudentPotentialImpl(modelPath)


class StudentPotentialImpl(MLPotentialImpl):
    """An exported mlff_distiller student inside openmm-ml."""

    def __init__(self, modelPath: str | os.PathLike):
        from ..export import is_exported

        path = os.fspath(modelPath)
        if not os.path.isfile(path):
            raise MissingFileError(f"modelPath {path!r} does not exist")
        if not is_exported(path):
            raise InputError(
                f"modelPath {path!r} is not a file written by mlff-distill export "
                "(a training checkpoint? export it first: mlff-distill export CHECKPOINT)"
            )
        self.modelPath = path

    def addForces(
        self,
        topology: app.Topology,
        system: openmm.System,
        atoms: Iterable[int] | None,
        forceGroup: int,
        **args: Any,
    ) -> None:
        _check_args(args)
        indices = None if atoms is None else [int(i) for i in atoms]
        # openmm-ml's createSystem adds this force before any other, so the System cannot say
        # yet whether it is periodic: the topology's box decides, as it does for the System.
        if system.getNumForces():
            periodic = system.usesPeriodicBoundaryConditions()
        else:
            periodic = topology.getPeriodicBoxVectors() is not None
        force = student_force(self.modelPath, topology, periodic, indices)
        force.setForceGroup(forceGroup)
        system.addForce(force)

    def getMLLongRange(self) -> bool:
        return False  # strictly local: nothing beyond the cutoff

    def getSupportedEmbeddings(self) -> list[str]:
        return ["mechanical"]

    def createMixedSystem(
        self,
        topology: app.Topology,
        system: openmm.System,
        atoms: list[int],
        forceGroup: int,
        interpolate: bool,
        embedding: str,
        returnInfo: bool = False,
        **args: Any,
    ):
        """openmm-ml's mechanical embedding, with the ``TorchForce`` built in place rather
        than copied when ``interpolate`` is true (see the module docstring)."""
        if not interpolate:
            return MechanicalEmbedding().createMixedSystem(
                self, topology, system, atoms, forceGroup, False, returnInfo, **args
            )
        stand_in = _StandIn(self, system.usesPeriodicBoundaryConditions())
        out = MechanicalEmbedding().createMixedSystem(
            stand_in, topology, system, atoms, forceGroup, True, returnInfo, **args
        )
        mixed = out["system"] if isinstance(out, dict) else out
        _add_scaled_students(mixed, stand_in)
        return out


class _StandIn(MLPotentialImpl):
    """Adds a zero-energy force in place of the student's and records the call."""

    def __init__(self, student: StudentPotentialImpl, periodic: bool):
        self.student = student
        self.periodic = periodic
        self.calls: list[tuple[app.Topology, list[int] | None, int]] = []

    def addForces(self, topology, system, atoms, forceGroup, **args) -> None:
        _check_args(args)
        force = openmm.CustomExternalForce("0")
        force.setName(f"{_STAND_IN} (the student is a TorchForce scaled by lambda)")
        force.setForceGroup(forceGroup)
        self.calls.append((topology, None if atoms is None else list(atoms), forceGroup))
        system.addForce(force)

    def getMLLongRange(self) -> bool:
        return self.student.getMLLongRange()


def _check_args(args: dict[str, Any]) -> None:
    unknown = set(args) - _EMBEDDING_ARGS
    if unknown:
        raise InputError(
            f"MLPotential('mlff') does not take {', '.join(sorted(unknown))} "
            "(it takes modelPath only)"
        )


def _add_scaled_students(system: openmm.System, stand_in: _StandIn) -> None:
    """Add, for each stand-in, the student's force times the interpolation parameter.

    openmm-ml's interpolating ``CustomCVForce`` computes ``lambda * (sum of ML terms) +
    (1 - lambda) * (MM terms)``; its ML term is the zero-energy stand-in, so a top-level
    ``TorchForce`` whose energy is ``lambda * E_student`` (``lambda`` a global parameter of
    the TorchForce, shared by name with the CustomCVForce) gives the same total energy and
    forces without a TorchForce inside the CustomCVForce (whose inner System would be built
    by XmlSerializer, which crashes on it)."""
    holders = [
        force
        for force in system.getForces()
        if isinstance(force, openmm.CustomCVForce)
        and any(
            force.getCollectiveVariable(k).getName().startswith(_STAND_IN)
            for k in range(force.getNumCollectiveVariables())
        )
    ]
    if len(holders) != 1 or holders[0].getNumGlobalParameters() != 1:
        raise RuntimeError(
            "openmm-ml built an interpolating System this version of mlff_distiller does not "
            "know (expected one CustomCVForce with one global parameter holding the ML "
            "terms); use interpolate=False or report it"
        )
    parameter = holders[0].getGlobalParameterName(0)
    for topology, atoms, group in stand_in.calls:
        force = student_force(
            stand_in.student.modelPath,
            topology,
            stand_in.periodic,
            atoms,
            scale_parameter=parameter,
        )
        force.setForceGroup(group)
        system.addForce(force)
