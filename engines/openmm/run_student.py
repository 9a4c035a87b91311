"""Molecular dynamics with an exported student in OpenMM: Langevin NVT, then Verlet NVE.

Reads like any OpenMM script; the only student-specific line is ``create_system``::

    python engines/openmm/run_student.py model.pt water.pdb --nvt-steps 2000 --nve-steps 2000

The structure is a PDB file (box from its CRYST1 record) or anything ``ase.io.read``
understands (extended XYZ, CIF, ...; periodic when its ``pbc`` is set). Writes
``trajectory.dcd`` and ``md.csv`` (step, time, energies, temperature) in ``--out``.
"""

from __future__ import annotations

# torch before openmm: OpenMM skips its Torch plugin when torch is not loaded yet.
import torch  # noqa: F401

# isort: split
import argparse
import sys
from pathlib import Path

import ase.io
from openmm import CompoundIntegrator, LangevinMiddleIntegrator, Platform, VerletIntegrator, unit
from openmm.app import DCDReporter, PDBFile, Simulation, StateDataReporter

from mlff_distiller.engines.openmm import create_system, topology_from_atoms


def load(path: Path):
    """Topology and positions of a PDB file or of any structure ASE reads."""
    if path.suffix.lower() in (".pdb", ".ent"):
        pdb = PDBFile(str(path))
        return pdb.topology, pdb.positions
    atoms = ase.io.read(path)
    return topology_from_atoms(atoms), atoms.positions * unit.angstrom


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", help="exported student (mlff-distill export)")
    parser.add_argument("structure", type=Path, help="PDB, extxyz or any ASE-readable file")
    parser.add_argument("--temperature", type=float, default=300.0, help="K (default 300)")
    parser.add_argument("--friction", type=float, default=1.0, help="1/ps (default 1)")
    parser.add_argument("--timestep", type=float, default=0.5, help="fs (default 0.5)")
    parser.add_argument("--nvt-steps", type=int, default=10000)
    parser.add_argument("--nve-steps", type=int, default=10000)
    parser.add_argument("--report-every", type=int, default=100, help="steps")
    parser.add_argument("--platform", default="CPU", help="Reference, CPU, CUDA, OpenCL")
    parser.add_argument("--out", type=Path, default=Path("."), help="output directory")
    args = parser.parse_args()

    topology, positions = load(args.structure)
    system = create_system(topology, args.model)
    temperature = args.temperature * unit.kelvin
    timestep = args.timestep * unit.femtoseconds

    integrator = CompoundIntegrator()
    integrator.addIntegrator(
        LangevinMiddleIntegrator(temperature, args.friction / unit.picosecond, timestep)
    )
    integrator.addIntegrator(VerletIntegrator(timestep))
    simulation = Simulation(topology, system, integrator, Platform.getPlatformByName(args.platform))
    simulation.context.setPositions(positions)
    simulation.context.setVelocitiesToTemperature(temperature)
    args.out.mkdir(parents=True, exist_ok=True)
    every = args.report_every
    columns = dict(step=True, time=True, potentialEnergy=True, kineticEnergy=True)
    simulation.reporters += [
        DCDReporter(str(args.out / "trajectory.dcd"), every),
        StateDataReporter(
            str(args.out / "md.csv"), every, totalEnergy=True, temperature=True, **columns
        ),
        StateDataReporter(sys.stdout, every * 10, temperature=True, speed=True, **columns),
    ]
    print(f"NVT at {args.temperature} K for {args.nvt_steps} steps")
    simulation.step(args.nvt_steps)
    print(f"NVE for {args.nve_steps} steps")
    integrator.setCurrentIntegrator(1)
    simulation.step(args.nve_steps)


if __name__ == "__main__":
    main()
