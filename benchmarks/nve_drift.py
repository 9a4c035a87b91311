"""Energy conservation of students in every engine, from an equilibrated start.

Run from the repo root (one heavy job at a time on a small machine)::

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/nve_drift.py              # the shipped students
    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/nve_drift.py --model mine=runs/x/student.pt \\
        --float64 --systems water-32 --name nve_drift-mine

For each student and each system of the ``standard`` validation suite (ethanol, paracetamol,
alanine dipeptide, caffeine, 32 waters): ``--nvt-ps`` of Langevin NVT in ASE with the
student itself at ``--temperature`` (friction 10/ps), then, from the positions and
velocities it ends with (centre-of-mass motion removed), ``--nve-ps`` of velocity-Verlet NVE
at ``--timestep`` fs in ASE, OpenMM (TorchForce, CPU platform) and LAMMPS
(``pair_style mlff``, one rank), the same start in every engine. Reported per run: the drift
(slope of a least-squares line through the total energy, meV/atom/ps) with its standard
error, the largest excursion of the total energy from its first value and its standard
deviation (meV/atom), and the median wall time per step.

Why an equilibrated start: the validation suites start NVE from Maxwell-Boltzmann velocities
on the input structure, and while the kinetic energy spreads over the modes the integrator's
O(dt²) error of the total energy changes too; over a 2 ps run that transient reads as a slope
(32 waters, the shipped ``tiny``: -0.014 meV/atom/ps in the suite's 2 ps ASE run). Started
from an equilibrated state, the slope measures energy conservation.

``--float64`` adds each student re-exported in float64 (``mlff_distiller.export.export``:
the weights cast exactly), so float32's rounding can be told from the integrator's error.

Every run is cached under ``--work`` (one JSON per student file, system and engine, keyed
by the file's SHA-256 and the protocol, written atomically), so an interrupted run resumes.
Results: ``benchmarks/results/<name>.{json,md}``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import platform
import statistics
import sys
from pathlib import Path

import numpy as np
from ase import Atoms, units
from ase.md.langevin import Langevin
from ase.md.velocitydistribution import Stationary

from mlff_distiller import StudentCalculator, __version__
from mlff_distiller.benchmarking import write_json
from mlff_distiller.engines import runs as engine_runs
from mlff_distiller.engines.runs import initial_velocities
from mlff_distiller.errors import MlffDistillerError
from mlff_distiller.files import atomic_path, write_text
from mlff_distiller.validation import load_suite
from mlff_distiller.validation.metrics import energy_drift

RESULTS = Path(__file__).parent / "results"
SHIPPED = Path(__file__).parent.parent / "torchscript_exports"
ENGINES = ("ase", "openmm", "lammps")
RECORD_EVERY = 20
# The systems, and the structure each starts from, are those of the ``standard`` suite.
SUITE = load_suite("standard")
SYSTEMS = {spec.name: spec for spec in SUITE.systems}


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()[:16]


def _read(path: Path):
    return json.loads(path.read_text()) if path.exists() else None


def equilibrate(model: Path, atoms: Atoms, args, cache: Path) -> tuple[np.ndarray, np.ndarray]:
    """Positions and velocities (ASE units) after ``--nvt-ps`` of Langevin NVT in ASE."""
    if cache.exists():
        state = np.load(cache)
        return state["positions"], state["velocities"]
    work = atoms.copy()
    work.set_velocities(initial_velocities(atoms, args.temperature, args.seed))
    work.calc = StudentCalculator(str(model))
    friction = 10.0 / (1000 * units.fs)  # 10 per ps
    rng = np.random.default_rng(args.seed)
    dyn = Langevin(work, args.timestep * units.fs, temperature_K=args.temperature,
                   friction=friction, rng=rng)  # fmt: skip
    dyn.run(round(1000 * args.nvt_ps / args.timestep))
    Stationary(work)
    positions, velocities = work.get_positions(), work.get_velocities()
    if not (np.isfinite(positions).all() and np.isfinite(velocities).all()):
        raise SystemExit(f"{model.name}: the NVT equilibration of {cache.parent.name} blew up")
    with atomic_path(cache) as tmp:
        np.savez(tmp, positions=positions, velocities=velocities)
    return positions, velocities


def nve(model: Path, engine: str, atoms: Atoms, start, args, folder: Path) -> dict:
    """One NVE run of ``engine`` from ``start`` (positions, velocities): its drift and cost."""
    positions, velocities = start
    moved = atoms.copy()
    moved.set_positions(positions)
    steps = round(1000 * args.nve_ps / args.timestep)
    try:
        traj = engine_runs.run(engine, moved, velocities, model, "nve", steps, args.timestep,
                               RECORD_EVERY, folder / "lammps")  # fmt: skip
    except (MlffDistillerError, FloatingPointError) as error:  # a blown-up run is a result
        return {"error": f"{type(error).__name__}: {error}"}
    n = len(atoms)
    return {
        **energy_drift(traj.times_ps, traj.total_energy, n),
        "mean_temperature_K": float(np.mean(traj.temperature_K)),
        "ms_per_step_median": 1000.0 * statistics.median(traj.step_seconds.tolist()),
        "steps": steps,
    }


def table(payload: dict) -> str:
    p = payload["protocol"]
    lines = [
        "# NVE energy drift from an equilibrated start",
        "",
        f"`{payload['command']}` ({p['nvt_ps']} ps NVT in ASE at {p['temperature_K']} K, then "
        f"{p['nve_ps']} ps NVE at {p['timestep_fs']} fs in each engine from the same state; "
        f"mlff_distiller {payload['version']}, {payload['machine']}).",
        "",
        "Drift: slope of a least-squares line through the total energy, meV/atom/ps (± one "
        "standard error); excursion: the largest distance of the total energy from its first "
        "value, meV/atom.",
        "",
        "| student | system | engine | drift | ± | excursion | mean T (K) | ms/step |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    worst: dict[str, float] = {}
    for name, systems in payload["students"].items():
        for system, engines in systems.items():
            for engine, r in engines.items():
                if "error" in r:
                    lines.append(f"| {name} | {system} | {engine} | {r['error']} | | | | |")
                    worst[name] = float("inf")
                    continue
                drift = r["energy_drift_meV_per_atom_ps"]
                worst[name] = max(worst.get(name, 0.0), abs(drift))
                lines.append(
                    f"| {name} | {system} | {engine} | {drift:+.4f} | "
                    f"{r['energy_drift_stderr_meV_per_atom_ps']:.4f} | "
                    f"{r['max_excursion_meV_per_atom']:.3f} | {r['mean_temperature_K']:.0f} | "
                    f"{r['ms_per_step_median']:.2f} |"
                )
    lines += ["", "| student | largest abs(drift), meV/atom/ps |", "| --- | --- |"]
    lines += [f"| {name} | {value:.4f} |" for name, value in worst.items()]
    return "\n".join(lines) + "\n"


def _students(args) -> dict[str, Path]:
    students = {}
    for spec in args.model or [
        f"{s}={SHIPPED / f'sevennet0-{s}.pt'}" for s in ("tiny", "standard")
    ]:
        name, sep, path = spec.partition("=")
        if not sep or not Path(path).is_file():
            raise SystemExit(f"--model {spec!r}: give NAME=PATH of an exported student file")
        students[name] = Path(path)
    if args.float64:
        from mlff_distiller.export import export

        for name, path in list(students.items()):
            target = args.work / "float64" / f"{name}-{_sha(path)}.pt"
            if not target.exists():
                target.parent.mkdir(parents=True, exist_ok=True)
                export(path, target, dtype="float64")
            students[f"{name}-float64"] = target
    return students


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", action="append", help="NAME=PATH (repeat); default: shipped")
    parser.add_argument("--float64", action="store_true", help="also each student in float64")
    parser.add_argument("--systems", nargs="+", choices=list(SYSTEMS), default=list(SYSTEMS))
    parser.add_argument("--engines", nargs="+", choices=ENGINES, default=list(ENGINES))
    parser.add_argument("--nvt-ps", type=float, default=1.0)
    parser.add_argument("--nve-ps", type=float, default=10.0)
    parser.add_argument("--timestep", type=float, default=0.5, help="fs")
    parser.add_argument("--temperature", type=float, default=300.0, help="K")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--work", type=Path, default=Path("runs/nve_drift"))
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--name", default="nve_drift", help="stem of the result files")
    args = parser.parse_args()
    if min(args.nvt_ps, args.nve_ps, args.timestep) <= 0:
        raise SystemExit("--nvt-ps, --nve-ps and --timestep must be positive")

    protocol = {"nvt_ps": args.nvt_ps, "nve_ps": args.nve_ps, "timestep_fs": args.timestep,
                "temperature_K": args.temperature, "seed": args.seed}  # fmt: skip
    key = hashlib.sha256(json.dumps(protocol, sort_keys=True).encode()).hexdigest()[:8]
    students = _students(args)
    results: dict[str, dict] = {}
    for name, model in students.items():
        results[name] = {}
        for system in args.systems:
            atoms = SYSTEMS[system].load(SUITE.base)
            folder = args.work / f"{_sha(model)}-{key}" / system
            start = equilibrate(model, atoms, args, folder / "start.npz")
            results[name][system] = {}
            for engine in args.engines:
                cached = folder / f"{engine}.json"
                result = _read(cached)
                if result is None:
                    result = nve(model, engine, atoms, start, args, folder)
                    write_json(cached, result)
                results[name][system][engine] = result
                drift = result.get("energy_drift_meV_per_atom_ps", float("nan"))
                print(f"{name} {system} {engine}: drift {drift:+.4f} meV/atom/ps", flush=True)

    payload = {
        "command": " ".join(["benchmarks/nve_drift.py", *sys.argv[1:]]),
        "version": __version__,
        "machine": f"{platform.machine()} {platform.python_version()}",
        "protocol": protocol,
        "models": {name: str(path) for name, path in students.items()},
        "students": results,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    write_json(args.out / f"{args.name}.json", payload)
    write_text(args.out / f"{args.name}.md", table(payload))
    print(table(payload))


if __name__ == "__main__":
    main()
