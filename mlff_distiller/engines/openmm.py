"""Run an exported student in OpenMM through ``openmmtorch.TorchForce``.

OpenMM speaks nm and kJ/mol, the student Å and eV; the conversion happens here and only
here (:data:`ANGSTROM_PER_NM`, :data:`KJ_PER_MOL_PER_EV`, both from :mod:`ase.units`).
OpenMM loads its plugins at import time and silently skips the Torch plugin when torch's
libraries are not loaded yet; this module imports torch first, and loads the skipped plugin
itself when a script imported openmm before torch.
Examples: ``engines/openmm/`` (``run_student.py`` and its README).
"""

from __future__ import annotations

import itertools
import os
import re

import torch

# isort: split
import openmm
import openmmtorch
from ase import Atoms, units
from openmm import app

from ..errors import InputError, RunError
from ..export import load_exported

#: Å per nm.
ANGSTROM_PER_NM = units.nm / units.Angstrom
#: kJ/mol per eV.
KJ_PER_MOL_PER_EV = units.mol / units.kJ
#: Bonded force type: its terms' name, atoms per term, trailing parameters (force constants)
#: to zero when the student takes a term over.
_TERMS = {
    openmm.HarmonicBondForce: ("Bond", 2, 1),
    openmm.HarmonicAngleForce: ("Angle", 3, 1),
    openmm.PeriodicTorsionForce: ("Torsion", 4, 1),
    openmm.RBTorsionForce: ("Torsion", 4, 6),
}


_TORCH_PLUGIN_FAILURE = re.compile(
    r"Error loading library (\S*OpenMMTorch(Reference|CPU|CUDA)\S*): "
)
_plugins_checked = False


def _ensure_torch_plugin() -> None:
    """Load openmm-torch's plugins if ``import openmm`` ran before ``import torch``.

    OpenMM loads its plugins when it is imported; the TorchForce plugins need torch's
    libraries and fail silently without them, after which every Context says it "does not
    support all required kernels". By now torch is loaded, so the failed plugins load.
    """
    global _plugins_checked
    if _plugins_checked:
        return
    for failure in openmm.Platform.getPluginLoadFailures():
        match = _TORCH_PLUGIN_FAILURE.match(failure)
        if match is None:
            continue
        try:
            openmm.Platform.loadPluginLibrary(match.group(1))
        except openmm.OpenMMException as exc:
            if match.group(2) == "Reference":
                raise RunError(
                    f"OpenMM cannot load openmm-torch's plugin ({str(exc).splitlines()[0]}); "
                    "import torch before openmm, in a fresh Python process"
                ) from None
    _plugins_checked = True


class OpenMMStudent(torch.nn.Module):
    """The TorchForce module (``setOutputsForces(True)``): ``forward(positions [N, 3] nm,
    boxvectors [3, 3] nm or None)`` evaluates the atoms in ``indices`` (default: all) with
    the student's ``compute`` and returns the energy (kJ/mol) and the forces on all ``N``
    particles (kJ/mol/nm), in float64 whatever precision the platform passes.

    TorchForce moves the module to the Context's device (the CUDA platform's GPU); every
    tensor here follows ``positions``."""

    def __init__(
        self,
        model: torch.jit.ScriptModule,
        numbers: list[int],
        periodic: bool,
        indices: list[int] | None = None,
    ) -> None:
        super().__init__()
        self.model = model
        self.register_buffer("numbers", torch.tensor(numbers, dtype=torch.long))
        self.register_buffer("pbc", torch.tensor([periodic] * 3))
        self.subset = indices is not None
        self.register_buffer("indices", torch.tensor(indices or [], dtype=torch.long))
        self.length = float(ANGSTROM_PER_NM)
        self.energy = float(KJ_PER_MOL_PER_EV)

    def forward(
        self, positions: torch.Tensor, boxvectors: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        # float64 whatever the platform passes: the student casts its edge vectors (not
        # the absolute positions) to its own dtype.
        everything = positions.to(torch.float64)
        chosen = everything[self.indices] if self.subset else everything
        cell = torch.zeros(3, 3, dtype=torch.float64, device=positions.device)
        if boxvectors is not None:
            cell = boxvectors.to(torch.float64) * self.length
        out = self.model.compute(chosen * self.length, self.numbers, cell, self.pbc, False)
        forces = out["forces"] * (self.energy * self.length)
        if self.subset:
            forces = torch.zeros_like(everything).index_copy(0, self.indices, forces)
        return out["energy"] * self.energy, forces


class _ScaledPeriodic(torch.nn.Module):
    """``forward(positions, boxvectors, scale)``: the student's energy and forces times a
    global parameter of the TorchForce (openmm-ml's ``lambda_interpolate``)."""

    def __init__(self, student: OpenMMStudent) -> None:
        super().__init__()
        self.student = student

    def forward(
        self, positions: torch.Tensor, boxvectors: torch.Tensor, scale: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        energy, forces = self.student(positions, boxvectors)
        factor = scale.to(torch.float64)
        return factor * energy, factor * forces


class _ScaledMolecule(torch.nn.Module):
    """``forward(positions, scale)``: as :class:`_ScaledPeriodic`, without a box."""

    def __init__(self, student: OpenMMStudent) -> None:
        super().__init__()
        self.student = student

    def forward(
        self, positions: torch.Tensor, scale: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        energy, forces = self.student(positions)
        factor = scale.to(torch.float64)
        return factor * energy, factor * forces


def make_context(
    system: openmm.System,
    integrator: openmm.Integrator,
    platform: str = "CPU",
    properties: dict[str, str] | None = None,
    atoms: Atoms | None = None,
) -> openmm.Context:
    """An OpenMM ``Context`` of ``system`` on the platform named ``platform`` (with its
    ``properties``, e.g. ``{"Threads": "1"}``), and, given ``atoms``, their positions (and
    box, if periodic) set in OpenMM's units. Every Context the project makes comes from
    here; a platform this OpenMM lacks is a one-line error naming the ones it has."""
    _ensure_torch_plugin()
    names = [
        openmm.Platform.getPlatform(k).getName() for k in range(openmm.Platform.getNumPlatforms())
    ]
    if platform not in names:
        raise RunError(
            f"OpenMM has no {platform} platform here (it has {', '.join(names)}); "
            "choose one of those"
        )
    chosen = openmm.Platform.getPlatformByName(platform)
    context = openmm.Context(system, integrator, chosen, dict(properties or {}))
    if atoms is not None:
        if atoms.pbc.all():
            context.setPeriodicBoxVectors(*(atoms.cell.array / ANGSTROM_PER_NM))
        context.setPositions(atoms.positions / ANGSTROM_PER_NM)
    return context


def topology_from_atoms(atoms: Atoms) -> app.Topology:
    """An OpenMM topology of ``atoms``: one residue per atom, no bonds, the cell as the box
    when ``atoms`` is periodic in all three directions (partial periodicity is an error)."""
    if atoms.pbc.any() and not atoms.pbc.all():
        raise InputError(
            f"OpenMM boxes are periodic in all three directions; got pbc={atoms.pbc.tolist()}"
        )
    topology = app.Topology()
    chain = topology.addChain()
    for symbol in atoms.get_chemical_symbols():
        residue = topology.addResidue(symbol, chain)
        topology.addAtom(symbol, app.Element.getBySymbol(symbol), residue)
    if atoms.pbc.all():
        if atoms.cell.rank < 3:
            raise InputError("a periodic ase.Atoms needs a 3-dimensional cell")
        topology.setPeriodicBoxVectors(
            [openmm.Vec3(*(row / ANGSTROM_PER_NM)) for row in atoms.cell.array]
        )
    return topology


def _as_topology(source: app.Topology | Atoms | str | os.PathLike) -> app.Topology:
    if isinstance(source, app.Topology):
        return source
    if isinstance(source, Atoms):
        return topology_from_atoms(source)
    if isinstance(source, (str, os.PathLike)):
        return app.PDBFile(os.fspath(source)).topology
    raise TypeError(
        "source must be an openmm.app.Topology, an ase.Atoms or the path of a PDB file, "
        f"got {type(source).__name__}"
    )


def student_force(
    model_path: str | os.PathLike,
    topology: app.Topology,
    periodic: bool,
    indices: list[int] | None = None,
    scale_parameter: str | None = None,
) -> openmmtorch.TorchForce:
    """The ``TorchForce`` evaluating the exported student on the atoms of ``topology``
    (``indices`` of them, or all), their elements checked against the model's; with
    ``scale_parameter``, its energy times that global parameter of the Context (default 1).

    The one place a student force is built: :func:`create_system`,
    :func:`create_mixed_system` and openmm-ml's ``MLPotential("mlff")``
    (:mod:`~mlff_distiller.engines.openmmml`) all call it.
    """
    atoms = list(topology.atoms())
    if indices is not None:
        atoms = [atoms[i] for i in indices]
    _ensure_torch_plugin()
    module, metadata = load_exported(model_path)
    known = [int(z) for z in metadata["atomic_numbers"]]
    numbers = []
    for atom in atoms:
        if atom.element is None or atom.element.atomic_number not in known:
            name = atom.element.symbol if atom.element else f"atom {atom.name!r} (no element)"
            raise InputError(
                f"{name} is not in the model {os.fspath(model_path)!r}, which knows "
                f"{', '.join(metadata['elements'])}"
            )
        numbers.append(atom.element.atomic_number)
    # The student's compute() returns the forces (autograd inside the module, the weights
    # frozen), so TorchForce takes them as they are instead of differentiating the energy.
    # load_exported rebuilds files of older format versions as the current module.
    wrapper = OpenMMStudent(module, numbers, periodic, indices)
    if scale_parameter is not None:
        wrapper = (_ScaledPeriodic if periodic else _ScaledMolecule)(wrapper)
    force = openmmtorch.TorchForce(torch.jit.script(wrapper.eval()))
    force.setOutputsForces(True)
    if scale_parameter is not None:
        force.addGlobalParameter(scale_parameter, 1.0)
    force.setName("mlff_distiller student")
    force.setUsesPeriodicBoundaryConditions(periodic)
    return force


def create_system(
    source: app.Topology | Atoms | str | os.PathLike,
    model_path: str | os.PathLike,
    *,
    removeCMMotion: bool = True,
    molecules: bool = False,
) -> openmm.System:
    """An :class:`openmm.System` whose only potential is the exported student.

    Parameters
    ----------
    source
        An :class:`openmm.app.Topology` (periodic when it has a box), an :class:`ase.Atoms`
        (periodic when ``pbc`` is all true) or the path of a PDB file (periodic with a
        ``CRYST1`` record). Triclinic boxes must be in OpenMM's reduced form.
    model_path
        A file written by ``mlff-distill export`` (float32 or float64).
    removeCMMotion
        Add a :class:`openmm.CMMotionRemover`, as ``ForceField.createSystem`` does.
    molecules
        Tell OpenMM which atoms form molecules: a ``HarmonicBondForce`` with force constant
        0 (no energy, no force) on every bond of the topology, or, for an ``ase.Atoms``, on
        every covalent bond (1.2 × the sum of covalent radii). ``MonteCarloBarostat`` then
        scales molecules' centres instead of every atom, and
        ``getState(enforcePeriodicBox=True)`` (what the DCD and PDB reporters ask for) wraps
        whole molecules. Without it every atom is its own molecule.

    Returns
    -------
    openmm.System
        One particle per atom (element masses, or an ``ase.Atoms``'s own), a ``TorchForce``
        and the default box.

    Raises
    ------
    ValueError
        An element the model does not know (named, with the model's elements), or
        ``molecules`` with a topology that has no bonds.
    TypeError
        ``source`` is none of the accepted types.

    Examples
    --------
    >>> system = create_system(water_box(32), "model.pt")                 # doctest: +SKIP
    >>> integrator = openmm.LangevinMiddleIntegrator(300, 1, 0.0005)      # doctest: +SKIP
    """
    topology = _as_topology(source)
    atoms = list(topology.atoms())
    box = topology.getPeriodicBoxVectors()
    force = student_force(model_path, topology, box is not None)
    masses = [atom.element.mass for atom in atoms]
    if isinstance(source, Atoms):
        masses = source.get_masses().tolist()  # ASE's (possibly edited) masses, in Da
    system = openmm.System()
    for mass in masses:
        system.addParticle(mass)
    if box is not None:
        system.setDefaultPeriodicBoxVectors(*box)
    system.addForce(force)
    if molecules:
        system.addForce(_molecule_bonds(source, topology))
    if removeCMMotion:
        system.addForce(openmm.CMMotionRemover())
    return system


def _molecule_bonds(source, topology: app.Topology) -> openmm.HarmonicBondForce:
    """Zero-energy bonds that tell OpenMM the molecules (see ``create_system``)."""
    if isinstance(source, Atoms):
        from ..data.structures import covalent_bonds

        pairs = covalent_bonds(source)
    else:
        pairs = [(bond[0].index, bond[1].index) for bond in topology.bonds()]
    if not pairs:
        raise InputError(
            "molecules=True but the topology has no bonds: use a PDB with CONECT records or "
            "standard residues, add bonds to the Topology, or pass an ase.Atoms (bonds are "
            "then found from covalent radii)"
        )
    force = openmm.HarmonicBondForce()
    force.setName("mlff_distiller molecules (zero energy)")
    for i, j in pairs:
        force.addBond(i, j, 0.1, 0.0)
    force.setUsesPeriodicBoundaryConditions(topology.getPeriodicBoxVectors() is not None)
    return force


def create_mixed_system(
    system: openmm.System,
    topology: app.Topology,
    ml_atoms: list[int],
    model_path: str | os.PathLike,
) -> openmm.System:
    """A copy of a classical ``system`` in which the student describes ``ml_atoms``.

    As in openmm-ml: bonded terms (bonds, angles, periodic, RB and CMAP torsions) whose atoms
    all lie in ``ml_atoms`` are switched off (their parameters zeroed, indices unchanged),
    every ML–ML pair of the ``NonbondedForce`` becomes an exception with zero charge product
    and epsilon (an exclusion in a ``CustomNonbondedForce``), and a ``TorchForce`` adds the
    student energy of the ML atoms alone. ML–MM interactions stay classical.

    Examples
    --------
    >>> ligand = [a.index for a in topology.atoms() if a.residue.name == "LIG"]  # doctest: +SKIP
    >>> mixed = create_mixed_system(system, topology, ligand, "model.pt")       # doctest: +SKIP
    """
    ml = sorted(set(int(i) for i in ml_atoms))
    if not ml or ml[0] < 0 or ml[-1] >= system.getNumParticles():
        raise InputError(f"ml_atoms must be indices between 0 and {system.getNumParticles() - 1}")
    pairs = list(itertools.combinations(ml, 2))
    mixed = openmm.XmlSerializer.clone(system)
    for force in mixed.getForces():
        _remove_internal(force, set(ml))
        if isinstance(force, openmm.NonbondedForce):
            for i, j in pairs:
                force.addException(i, j, 0.0, 1.0, 0.0, True)
        elif isinstance(force, openmm.CustomNonbondedForce):
            done = (force.getExclusionParticles(k) for k in range(force.getNumExclusions()))
            excluded = {(min(p), max(p)) for p in done}
            for i, j in pairs:
                if (i, j) not in excluded:
                    force.addExclusion(i, j)
    periodic = system.usesPeriodicBoundaryConditions()
    mixed.addForce(student_force(model_path, topology, periodic, ml))
    return mixed


def _remove_internal(force: openmm.Force, inside: set[int]) -> None:
    """Zero the force constants of the bonded terms whose atoms all lie in ``inside``."""
    if isinstance(force, openmm.CMAPTorsionForce):
        size = force.getMapParameters(0)[0] if force.getNumMaps() else 0
        zero_map = force.addMap(size, [0.0] * size * size) if size else -1
        for k in range(force.getNumTorsions()):
            _, *atoms = force.getTorsionParameters(k)
            if set(atoms) <= inside:
                force.setTorsionParameters(k, zero_map, *atoms)
        return
    if type(force) not in _TERMS:
        return
    name, n_atoms, n_zero = _TERMS[type(force)]
    for k in range(getattr(force, f"getNum{name}s")()):
        parameters = list(getattr(force, f"get{name}Parameters")(k))
        if set(parameters[:n_atoms]) <= inside:
            parameters[-n_zero:] = [0.0] * n_zero
            getattr(force, f"set{name}Parameters")(k, *parameters)
