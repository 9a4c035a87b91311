"""Periodic boxes of liquid water, equilibrated with a classical water model in OpenMM.

The boxes shipped in ``mlff_distiller/data/builtin/`` (read them with
:func:`mlff_distiller.data.builtin.water_box`) were made by :func:`make_water_box`;
``python -m mlff_distiller.data.waterbox`` regenerates them all.

Recipe
------
1. ``openmm.app.Modeller.addSolvent(numAdded=N)`` cuts ``N`` molecules out of OpenMM's
   pre-equilibrated TIP3P box; their oxygens are then rescaled (molecules kept rigid) into a
   cubic cell whose edge gives the target density exactly (0.997 g/cm³, liquid water at 300 K).
2. Flexible TIP3P (``tip3p.xml`` with ``rigidWater=False``, so bond and angle vibrations are
   sampled), PME electrostatics with the long-range dispersion correction.
3. Energy minimisation, then NVT Langevin dynamics (``LangevinMiddleIntegrator``, 1/ps
   friction, 0.5 fs step) for ``equilibration_ps`` at ``temperature_K``. The cell never changes.
   OpenMM's CPU platform runs on one thread with deterministic forces, so a seed reproduces a
   box exactly on the same machine (other CPUs may round differently).
4. Whole molecules are wrapped into the cell by their oxygen and returned as ``ase.Atoms`` in Å
   with atoms in O, H, H order per molecule.

Cutoff: OpenMM's minimum-image convention needs the cutoff below half the box edge, so the
real-space cutoff is ``min(9 Å, 0.48 × edge)``: 9 Å for 256 molecules, 7.5 Å for 128, 6.0 Å for
64 and 4.7 Å for 32 (edge 9.87 Å). PME keeps the electrostatics complete at every size; only the
Lennard-Jones tail beyond the cutoff is replaced by the mean-field dispersion correction.
Boxes whose cutoff would fall below 3.5 Å (fewer than 13 molecules) are refused, because the
oxygen Lennard-Jones core (σ = 3.15 Å) would no longer be inside the cutoff.
"""

from __future__ import annotations

import math
import time
from pathlib import Path

import ase.io
import numpy as np
from ase import Atoms, units

from ..errors import InputError
from ..files import atomic_path
from .builtin import WATER_BOX_SIZES, water_box_filename

#: Density of liquid water at 300 K and 1 bar, in g/cm³.
WATER_DENSITY_G_CM3 = 0.997
#: Largest real-space cutoff used, in Å.
MAX_CUTOFF_A = 9.0
#: Smallest real-space cutoff accepted, in Å (just above the TIP3P oxygen σ of 3.15 Å).
MIN_CUTOFF_A = 3.5
#: Fraction of the box edge the cutoff may reach (OpenMM requires less than one half).
CUTOFF_FRACTION = 0.48
#: Molecular mass of water from ASE's masses, in g/mol (so stored densities match ASE's).
_WATER_MASS = float(Atoms("OH2").get_masses().sum())
_TIMESTEP_FS = 0.5
_FRICTION_PER_PS = 1.0


def box_edge_A(n_molecules: int, density_g_cm3: float = WATER_DENSITY_G_CM3) -> float:
    """Edge in Å of the cube holding ``n_molecules`` waters at ``density_g_cm3``.

    Examples
    --------
    >>> round(box_edge_A(32), 2)
    9.87
    """
    volume_cm3 = n_molecules * _WATER_MASS / (units._Nav * density_g_cm3)
    return (volume_cm3 * 1e24) ** (1.0 / 3.0)


def cutoff_A(edge_A: float) -> float:
    """Real-space nonbonded cutoff in Å for a cubic box of edge ``edge_A``.

    Examples
    --------
    >>> cutoff_A(30.0), round(cutoff_A(9.86), 2)
    (9.0, 4.73)
    """
    return min(MAX_CUTOFF_A, CUTOFF_FRACTION * edge_A)


#: Fewest molecules whose box allows a cutoff of :data:`MIN_CUTOFF_A`.
MIN_MOLECULES = math.ceil(
    WATER_DENSITY_G_CM3 * (MIN_CUTOFF_A / CUTOFF_FRACTION) ** 3 * 1e-24 * units._Nav / _WATER_MASS
)


def make_water_box(
    n_molecules: int,
    seed: int = 0,
    temperature_K: float = 300.0,
    equilibration_ps: float = 10.0,
) -> Atoms:
    """Build, minimise and equilibrate a cubic periodic box of liquid water.

    Parameters
    ----------
    n_molecules
        Number of water molecules (13 or more, see the module docstring on the cutoff).
    seed
        Seed of the initial velocities and of the Langevin thermostat.
    temperature_K
        Thermostat temperature in kelvin.
    equilibration_ps
        Length of the NVT run after minimisation, in picoseconds (0 to only minimise).

    Returns
    -------
    ase.Atoms
        ``3 * n_molecules`` atoms in O, H, H order, Å, ``pbc=True``, cubic cell, molecules whole
        and oxygens inside the cell. ``info`` records ``source``, ``group``, ``density_g_cm3`` and
        the recipe (``water_model``, ``temperature_K``, ``equilibration_ps``, ``seed``,
        ``cutoff_A``, ``timestep_fs``, ``generator``).

    Examples
    --------
    >>> atoms = make_water_box(16, equilibration_ps=0.1)
    >>> len(atoms), atoms.info["group"]
    (48, 'water')
    """
    # torch before openmm: OpenMM loads its plugins once, at import, and the TorchForce plugin
    # only loads if torch has already put its CUDA runtime libraries in reach (see DESIGN.md).
    import torch  # noqa: F401

    # isort: split
    import openmm
    from openmm import app, unit

    edge = box_edge_A(n_molecules)
    cutoff = cutoff_A(edge)
    if n_molecules < MIN_MOLECULES:
        raise InputError(
            f"cannot build a box of {n_molecules} water molecules: the {edge:.1f} Å edge allows "
            f"a cutoff of only {cutoff:.2f} Å (< {MIN_CUTOFF_A} Å); "
            f"use at least {MIN_MOLECULES} molecules"
        )
    if equilibration_ps < 0 or seed < 0:
        raise InputError(
            f"equilibration_ps and seed must be >= 0, got {equilibration_ps} and {seed}"
        )

    forcefield = app.ForceField("tip3p.xml")
    modeller = app.Modeller(app.Topology(), [])
    modeller.addSolvent(forcefield, model="tip3p", numAdded=n_molecules, neutralize=False)
    topology = modeller.topology
    positions_A = np.array(modeller.positions.value_in_unit(unit.angstrom))
    symbols = [atom.element.symbol for atom in topology.atoms()]
    if symbols != ["O", "H", "H"] * n_molecules:
        raise RuntimeError("OpenMM returned water atoms in an unexpected order")
    positions_A = _rescale_into_cube(positions_A.reshape(n_molecules, 3, 3), edge)

    topology.setPeriodicBoxVectors(np.eye(3) * edge * unit.angstrom)
    system = forcefield.createSystem(
        topology,
        nonbondedMethod=app.PME,
        nonbondedCutoff=cutoff * unit.angstrom,
        rigidWater=False,
        constraints=None,
    )
    integrator = openmm.LangevinMiddleIntegrator(
        temperature_K * unit.kelvin,
        _FRICTION_PER_PS / unit.picosecond,
        _TIMESTEP_FS * unit.femtosecond,
    )
    integrator.setRandomNumberSeed(seed + 1)  # OpenMM reads 0 as "pick a random seed"
    simulation = app.Simulation(
        topology,
        system,
        integrator,
        openmm.Platform.getPlatformByName("CPU"),
        # Threaded and non-deterministic force sums make runs diverge; this makes the same
        # seed give the same box on the same machine, at no cost on 2 cores.
        {"Threads": "1", "DeterministicForces": "true"},
    )
    simulation.context.setPositions(positions_A.reshape(-1, 3) * unit.angstrom)
    simulation.minimizeEnergy()
    simulation.context.setVelocitiesToTemperature(temperature_K * unit.kelvin, seed + 1)
    simulation.step(round(equilibration_ps * 1000.0 / _TIMESTEP_FS))
    state = simulation.context.getState(getPositions=True)
    final_A = np.array(state.getPositions(asNumpy=True).value_in_unit(unit.angstrom))

    atoms = Atoms(
        symbols=symbols,
        positions=_wrap_molecules(final_A.reshape(n_molecules, 3, 3), edge).reshape(-1, 3),
        cell=np.eye(3) * edge,
        pbc=True,
    )
    mass_g = atoms.get_masses().sum() / units._Nav
    atoms.info.update(
        source=f"builtin:water_{n_molecules}",
        group="water",
        density_g_cm3=round(float(mass_g / (atoms.get_volume() * 1e-24)), 6),
        water_model="tip3p-flexible",
        temperature_K=float(temperature_K),
        equilibration_ps=float(equilibration_ps),
        seed=int(seed),
        cutoff_A=round(cutoff, 4),
        timestep_fs=_TIMESTEP_FS,
        generator=f"mlff_distiller.data.waterbox (openmm {openmm.__version__}, PME, NVT Langevin)",
    )
    return atoms


def _rescale_into_cube(molecules: np.ndarray, edge: float) -> np.ndarray:
    """Move molecules (shape ``(n, 3, 3)``, Å) rigidly so their oxygens span ``[0, edge)³``."""
    oxygens = molecules[:, 0, :]
    low = oxygens.min(axis=0)
    span = np.maximum(oxygens.max(axis=0) - low, 1e-6)
    # Leave one mean O–O spacing between the last oxygen and the periodic image of the first.
    spacing = edge / len(molecules) ** (1.0 / 3.0)
    new_oxygens = (oxygens - low) * ((edge - spacing) / span) + 0.5 * spacing
    return molecules - oxygens[:, None, :] + new_oxygens[:, None, :]


def _wrap_molecules(molecules: np.ndarray, edge: float) -> np.ndarray:
    """Wrap each oxygen into ``[0, edge)³`` and put its hydrogens at their nearest image."""
    oxygens = molecules[:, 0, :] - edge * np.floor(molecules[:, 0, :] / edge)
    offsets = molecules - molecules[:, :1, :]
    offsets -= edge * np.round(offsets / edge)
    return oxygens[:, None, :] + offsets


def _write_atomically(atoms: Atoms, path: Path) -> None:
    """Write ``atoms`` as extxyz to a temporary file beside ``path``, then rename it."""
    with atomic_path(path) as tmp:
        ase.io.write(tmp, atoms, format="extxyz")


def main() -> None:
    """Regenerate every shipped water box in ``mlff_distiller/data/builtin/``."""
    out_dir = Path(__file__).resolve().parent / "builtin"
    for n in WATER_BOX_SIZES:
        start = time.perf_counter()
        atoms = make_water_box(n)
        path = out_dir / water_box_filename(n)
        _write_atomically(atoms, path)
        print(
            f"{path.name}: {len(atoms)} atoms, edge {atoms.cell[0, 0]:.3f} Å, "
            f"{atoms.info['density_g_cm3']:.4f} g/cm³, cutoff {atoms.info['cutoff_A']:.2f} Å, "
            f"{time.perf_counter() - start:.1f} s",
            flush=True,
        )


if __name__ == "__main__":
    main()
