"""Short production runs of an exported student, the way a user runs them.

Each engine gets a directory with the files a user would write by hand, then runs them:

- OpenMM: ``structure.pdb`` and ``run_openmm.py``, a plain OpenMM script whose only
  student-specific line is ``create_system``; run with this Python, it writes
  ``trajectory.dcd`` and ``md.csv``.
- LAMMPS: ``data.lammps`` and ``in.lammps`` with ``pair_style mlff``, run by the stock ``lmp``
  launcher; it writes ``log.lammps`` and ``dump.lammpstrj``.

Both run Langevin dynamics at the target temperature from the same structure. The result
says how long the run took and the mean temperature over its second half.
"""

from __future__ import annotations

import csv
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
from ase import Atoms

from ..errors import InputError, RunError

OPENMM_SCRIPT = """\
# Langevin MD of a distilled student in OpenMM; the student is one line: create_system.
import torch  # noqa: F401  (before openmm, so OpenMM finds its Torch plugin)
import openmm
from openmm import app, unit

from mlff_distiller.engines.openmm import create_system

pdb = app.PDBFile("structure.pdb")
system = create_system(pdb.topology, {model!r})
integrator = openmm.LangevinMiddleIntegrator(
    {temperature} * unit.kelvin, {friction} / unit.picosecond, {timestep} * unit.femtoseconds
)
integrator.setRandomNumberSeed({seed})
simulation = app.Simulation(
    pdb.topology, system, integrator, openmm.Platform.getPlatformByName("CPU")
)
simulation.context.setPositions(pdb.positions)
simulation.context.setVelocitiesToTemperature({temperature} * unit.kelvin, {seed})
simulation.reporters.append(app.DCDReporter("trajectory.dcd", {every}))
simulation.reporters.append(
    app.StateDataReporter(
        "md.csv", {every}, step=True, time=True, potentialEnergy=True, kineticEnergy=True,
        totalEnergy=True, temperature=True, speed=True,
    )
)
simulation.step({steps})
"""


def langevin_deck(
    opening: list[str], elements: tuple[str, ...], temperature_K: float, seed: int,
    timestep_fs: float, damp_ps: float, every: int, steps: int,
) -> str:  # fmt: skip
    """``in.lammps`` of a Langevin run of a student: ``opening`` (the data's student deck),
    velocities at ``temperature_K``, thermo and a position dump every ``every`` steps."""
    from ..engines.lammps import Deck

    deck = Deck(["# Langevin MD of a distilled student in LAMMPS (pair_style mlff).", *opening])
    deck.velocities(temperature_K, seed, rotation=True).timestep(timestep_fs).nve()
    deck.comment(
        "Langevin with the centre of mass free (zero yes runs small molecules hot), so the\n"
        "temperature counts all 3N degrees of freedom."
    )
    deck.langevin(temperature_K, damp_ps, seed, all_dof=True)
    deck.thermo(every, columns=("step", "time", "temp", "pe", "ke", "etotal", "press"))
    deck.dump(every, "dump.lammpstrj", ("id", "element", "x", "y", "z"), elements, digits=12)
    return deck.run(steps).text()


def relative_path(path: Path, folder: Path) -> str:
    """``path`` as seen from ``folder`` (where the script or deck runs), so the run directory
    stays whole when it is moved."""
    return os.path.relpath(path.resolve(), folder.resolve())


def _second_half_mean(values: list[float]) -> float:
    return float(np.mean(values[len(values) // 2 :]))


def _write_pdb(atoms: Atoms, path: Path) -> None:
    """A PDB file OpenMM reads back atom for atom (one residue per atom, the box in CRYST1).

    ASE's PDB writer puts every atom in residue 1 under its element's name, and OpenMM's
    reader then merges atoms with the same name in a residue: the file must come from an
    OpenMM topology instead.
    """
    import torch  # noqa: F401  (before openmm, see mlff_distiller.engines.openmm)
    from openmm import app, unit

    from ..engines.openmm import topology_from_atoms

    with open(path, "w") as handle:
        app.PDBFile.writeFile(topology_from_atoms(atoms), atoms.positions * unit.angstrom, handle)


def run_openmm(model: Path, atoms: Atoms, settings: dict[str, Any], out: Path) -> dict[str, Any]:
    """Write and run the OpenMM script in ``out``; its trajectory and table stay there."""
    out.mkdir(parents=True, exist_ok=True)
    if atoms.pbc.any() and not atoms.pbc.all():
        raise InputError("md: OpenMM runs need a molecule or a fully periodic box")
    _write_pdb(atoms, out / "structure.pdb")
    script = OPENMM_SCRIPT.format(
        model=relative_path(model, out),
        temperature=settings["temperature_K"],
        friction=settings["friction_per_ps"],
        timestep=settings["timestep_fs"],
        every=settings["report_every"],
        steps=settings["steps"],
        seed=1,
    )
    (out / "run_openmm.py").write_text(script)
    start = time.perf_counter()
    run = subprocess.run(
        [sys.executable, "run_openmm.py"], cwd=out, capture_output=True, text=True, check=False
    )
    seconds = time.perf_counter() - start
    if run.returncode != 0:
        tail = (run.stderr or run.stdout).strip().splitlines()[-1:] or ["no output"]
        raise RunError(f"the OpenMM run in {out} failed: {tail[0]}")
    with open(out / "md.csv") as handle:
        rows = list(csv.DictReader(handle))
    temperature = [float(r["Temperature (K)"]) for r in rows]
    return {
        "engine": "openmm",
        "directory": str(out),
        "script": str(out / "run_openmm.py"),
        "trajectory": str(out / "trajectory.dcd"),
        "table": str(out / "md.csv"),
        "steps": settings["steps"],
        "wall_seconds": round(seconds, 2),
        "mean_temperature_K": _second_half_mean(temperature),
    }


def run_lammps(model: Path, atoms: Atoms, settings: dict[str, Any], out: Path) -> dict[str, Any]:
    """Write the data file and deck in ``out`` and run them with ``lmp``."""
    from ..engines import lammps

    data = lammps.write_data(atoms, out / "data.lammps")
    deck = langevin_deck(
        data.student_deck(relative_path(model, out), relative=True),
        data.elements,
        temperature_K=settings["temperature_K"],
        seed=4928459,
        timestep_fs=settings["timestep_fs"],
        damp_ps=1.0 / settings["friction_per_ps"],
        every=settings["report_every"],
        steps=settings["steps"],
    )
    start = time.perf_counter()
    lammps.run_lammps(deck, out, timeout=3600)
    seconds = time.perf_counter() - start
    rows = lammps.read_thermo(out / "log.lammps")[-1]
    return {
        "engine": "lammps",
        "directory": str(out),
        "deck": str(out / "in.lammps"),
        "trajectory": str(out / "dump.lammpstrj"),
        "log": str(out / "log.lammps"),
        "steps": settings["steps"],
        "wall_seconds": round(seconds, 2),
        "mean_temperature_K": _second_half_mean([r["Temp"] for r in rows]),
    }
