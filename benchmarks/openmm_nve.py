"""Energy conservation of a float64 student in OpenMM: NVE of 32 waters (96 atoms).

Run from the repo root::

    .venv/bin/python benchmarks/openmm_nve.py [--checkpoint best.pt] [--nve-ps 10]

Without ``--checkpoint`` a student is distilled first (labels cached in ``runs/openmm_nve``):
strained and rattled copies of the built-in 32-water box labelled by SevenNet-0, then the
``--preset`` student trained for ``--epochs`` in float64. The checkpoint is exported in
float64 and run through ``create_system`` on OpenMM's CPU platform: Langevin NVT at 300 K,
then Verlet NVE at 0.5 fs. Reported: the drift (slope of a linear fit of the total energy,
meV/atom/ps), the largest excursion of the total energy from its first value (meV/atom),
its standard deviation, and the mean kinetic energy per atom for scale. A run whose kinetic
energy passes three times equipartition is stopped and marked ``"stable": false`` (the
student, not the integrator, failed). Results: ``benchmarks/results/openmm_nve.json``.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import ase.io
import numpy as np
import torch
from ase import units

# isort: split
import openmm
from openmm import unit
from tqdm import tqdm

from mlff_distiller import __version__
from mlff_distiller.benchmarking import write_json
from mlff_distiller.data import import_extxyz, label, rattle_strain, water_box, write_extxyz
from mlff_distiller.data.waterbox import make_water_box
from mlff_distiller.engines.openmm import KJ_PER_MOL_PER_EV, create_system, make_context
from mlff_distiller.export import export
from mlff_distiller.training import train

RESULTS = Path(__file__).parent / "results" / "openmm_nve.json"
WORK = Path("runs") / "openmm_nve"


def distill(work: Path, preset: str, epochs: int) -> Path:
    """Label strained/rattled water boxes with SevenNet-0 and train a float64 student.

    Small rattles alone leave holes: water dissociated within 0.1 ps of 300 K NVE. Larger
    rattles (0.1 and 0.15 Å) are mostly rejected by the force filter, so thermal frames from
    classical MD are added; the labelled sets are joined through extended XYZ (the
    teacher's labels and provenance kept).
    """
    box = water_box(32)
    near = rattle_strain([box], n_samples=32, rattle=0.05, max_strain=0.02, seed=0)
    wide = rattle_strain([box], n_samples=12, rattle=0.1, seed=1)
    wide += rattle_strain([box], n_samples=12, rattle=0.15, seed=2)
    # Thermal configurations (flexible TIP3P MD at 300 and 400 K): the bond stretches and
    # hydrogen-bond geometries MD visits, which rattling alone does not give.
    thermal = [
        make_water_box(32, seed=seed, temperature_K=temp, equilibration_ps=2.0)
        for temp, seeds in ((300.0, range(1, 31)), (400.0, range(31, 51)))
        for seed in seeds
    ]
    parts = [label(near, "sevennet-0", work / "water.h5")]
    parts.append(label(wide, "sevennet-0", work / "water_wide.h5"))
    parts.append(label(thermal, "sevennet-0", work / "water_thermal.h5"))
    combined = work / "water_all.extxyz"
    ase.io.write(
        combined,
        [a for p in parts for a in ase.io.read(write_extxyz(p, work / f"{p.stem}.extxyz"), ":")],
    )
    dataset = import_extxyz(combined, work / "water_all.h5", teacher="sevennet-0", overwrite=True)
    return train(
        dataset,
        preset,
        work / f"student_{preset}",
        epochs=epochs,
        dtype="float64",
        split_by="frame",
        overwrite=True,
    )


def run(system, atoms, args) -> dict:
    """NVT then NVE; returns time (ps), total and kinetic energies (eV) along NVE."""
    dt = args.dt_fs * unit.femtoseconds
    integrator = openmm.LangevinMiddleIntegrator(
        args.temperature * unit.kelvin, 1 / unit.picosecond, dt
    )
    integrator.setRandomNumberSeed(1)
    verlet = openmm.VerletIntegrator(dt)
    compound = openmm.CompoundIntegrator()
    compound.addIntegrator(integrator)
    compound.addIntegrator(verlet)
    context = make_context(system, compound, args.platform, atoms=atoms)
    context.setVelocitiesToTemperature(args.temperature * unit.kelvin, 1)
    every = args.report_every
    nvt_steps = round(args.nvt_ps * 1000 / args.dt_fs)
    for _ in tqdm(range(0, nvt_steps, every), desc="NVT", unit_scale=every, unit="step"):
        compound.step(every)
    compound.setCurrentIntegrator(1)
    times, total, kinetic = [], [], []
    # Three times the equipartition kinetic energy: the student has left its valid range.
    blow_up = 3 * 1.5 * len(atoms) * units.kB * args.temperature
    nve_steps = round(args.nve_ps * 1000 / args.dt_fs)
    start = time.perf_counter()
    for k in tqdm(range(0, nve_steps + 1, every), desc="NVE", unit_scale=every, unit="step"):
        if k:
            compound.step(every)
        state = context.getState(getEnergy=True)
        e_kin = state.getKineticEnergy().value_in_unit(unit.kilojoule_per_mole)
        e_pot = state.getPotentialEnergy().value_in_unit(unit.kilojoule_per_mole)
        times.append(k * args.dt_fs / 1000)
        total.append((e_kin + e_pot) / KJ_PER_MOL_PER_EV)
        kinetic.append(e_kin / KJ_PER_MOL_PER_EV)
        if kinetic[-1] > blow_up:
            break
    elapsed = time.perf_counter() - start
    return {
        "t": np.array(times),
        "total": np.array(total),
        "kinetic": np.array(kinetic),
        "ms_per_step": 1000 * elapsed / max(1, round(times[-1] * 1000 / args.dt_fs)),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", type=Path, help="float64 student (default: distil one)")
    parser.add_argument("--preset", default="tiny", help="student preset when distilling")
    parser.add_argument("--epochs", type=int, default=100, help="when distilling")
    parser.add_argument("--work", type=Path, default=WORK, help="where the distilled run goes")
    parser.add_argument("--nvt-ps", type=float, default=2.0)
    parser.add_argument("--nve-ps", type=float, default=10.0)
    parser.add_argument("--dt-fs", type=float, default=0.5)
    parser.add_argument("--temperature", type=float, default=300.0, help="K")
    parser.add_argument("--report-every", type=int, default=20, help="steps")
    parser.add_argument("--platform", default="CPU")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()

    checkpoint = args.checkpoint or distill(args.work, args.preset, args.epochs)
    model = export(checkpoint, args.work / "student_float64.pt", dtype="float64")
    atoms = water_box(32)
    system = create_system(atoms, model)
    md = run(system, atoms, args)

    n = len(atoms)
    if len(md["t"]) < 3:
        raise SystemExit("the student blew up during NVT equilibration; no NVE to analyse")
    slope, _ = np.polyfit(md["t"], md["total"], 1)
    excursion = np.abs(md["total"] - md["total"][0]).max()
    stable = md["t"][-1] >= args.nve_ps - 1e-9
    result = {
        "system": f"water_box(32): {n} atoms, periodic cube of {atoms.cell.lengths()[0]:.3f} Å",
        "student": {"checkpoint": str(checkpoint), "dtype": "float64", "model": str(model)},
        "protocol": {
            "platform": args.platform,
            "nvt": f"LangevinMiddleIntegrator {args.temperature} K, 1/ps, {args.nvt_ps} ps",
            "nve": f"VerletIntegrator, {args.nve_ps} ps",
            "dt_fs": args.dt_fs,
            "report_every_steps": args.report_every,
        },
        "stable": bool(stable),
        "note": "statistics over the whole NVE run"
        if stable
        else f"the kinetic energy passed 3x equipartition at {md['t'][-1]:.3f} ps (the student "
        "left its valid range); statistics cover the run up to there",
        "energy_drift_meV_per_atom_ps": 1000 * slope / n,
        "max_excursion_meV_per_atom": 1000 * excursion / n,
        "total_energy_std_meV_per_atom": 1000 * md["total"].std() / n,
        "mean_kinetic_energy_meV_per_atom": 1000 * md["kinetic"].mean() / n,
        "ms_per_step": md["ms_per_step"],
        "environment": {
            "mlff_distiller": __version__,
            "torch": torch.__version__,
            "openmm": openmm.__version__,
            "python": sys.version.split()[0],
            "machine": platform.machine(),
            "torch_threads": torch.get_num_threads(),
        },
    }
    write_json(args.out, result)
    print(json.dumps({k: v for k, v in result.items() if k != "environment"}, indent=2))


if __name__ == "__main__":
    main()
