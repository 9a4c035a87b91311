"""Run a validation suite: a student against its teacher, in ASE, OpenMM and LAMMPS.

Per system (a failure in one is reported and the others still run):

1. Initial conditions: the structure and Maxwell-Boltzmann velocities from the suite's seed.
2. Teacher references in ASE from them: NVE and Langevin NVT. They are the expensive part and
   are reused on a rerun with the same teacher, structure and protocol (``cache/``).
3. The student from the same start: NVE in every engine, NVT in ASE.
4. Cross-engine agreement: the student's energies and forces on the same teacher frames in
   every engine; a disagreement is an integration bug and fails the system.
5. Energy drift of every NVE run (student and teacher), force errors against the teacher
   (on teacher frames, and on student frames relabelled by the teacher: the error that
   matters in MD), per-step latency and the speed-up over the teacher measured in this run,
   structure (RDF or bonds, angles, dihedrals) against the teacher's, close contacts
   (isolated pairs pushed inside 0.8 × their radii sum, student against teacher), the
   pressure of a periodic system squeezed to 0.85 of its edge with its molecules whole
   (student against teacher), and a longer student run for stability.

In the code, a system goes through four steps: ``_run_system`` (every engine call, through
:mod:`mlff_distiller.engines.runs`), ``_measure`` (the numbers, no verdicts), ``_judge``
(each check of :data:`CHECKS`, declared once with where its value and threshold are read)
and the report.

Everything lands in ``out/``: ``report.json`` (every number), ``report.md`` (tables, verdicts,
plots) and ``systems/NAME/`` (the trajectories behind the numbers, as ``.npz``).
"""

from __future__ import annotations

import datetime
import json
import os
import platform
import shlex
import sys
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .._progress import progress_bar, say
from ..engines import runs as engine_runs
from ..engines.runs import Trajectory, evaluate_ase, initial_velocities, peak_memory_mb, run_ase
from ..errors import InputError
from ..files import write_json
from . import metrics
from .compression import compression_curve
from .contacts import close_contact_wells
from .suite import (
    Suite,
    SystemSpec,
    initial_conditions_key,
    load_suite,
    student_nve_steps,
    teacher_nve_steps,
)

#: Teacher MD steps timed in every run for the speed-up (the reference trajectories may come
#: from the cache of an earlier run, their timings may not).
TEACHER_LATENCY_STEPS = 10
#: The first steps of every run are warm-up (TorchScript compiles on its first calls) and
#: are left out of the latency statistics.
WARMUP_STEPS = 3


@dataclass(frozen=True)
class Check:
    """One kind of check: its name in the report, the suite threshold it is judged by (a
    key of :data:`~mlff_distiller.validation.suite.THRESHOLD_DEFAULTS`; ``None`` when the
    threshold is fixed), which side passes, the unit of its value, and where its instances
    are read from a system's measurements (``instances(result, thresholds)``: ``(label,
    value, threshold)`` per instance, none where the measurement was not made)."""

    name: str
    threshold: str | None
    at_most: bool
    unit: str = ""
    #: How a labelled instance (one engine, one pair, one distribution) is named.
    labelled: str = "{name}[{label}]"
    instances: Callable[[dict, dict], list[tuple[str, float, float]]] = lambda result, th: []

    def judge(self, value: float, threshold: float, label: str = "") -> dict[str, Any]:
        """The report's entry for ``value`` against ``threshold`` (NaN never passes), for
        the instance ``label`` if the check has several."""
        value, threshold = float(value), float(threshold)
        passed = value <= threshold if self.at_most else value >= threshold
        return {
            "name": self.labelled.format(name=self.name, label=label) if label else self.name,
            "value": value,
            "threshold": threshold,
            "unit": self.unit,
            "verdict": "PASS" if passed else "FAIL",
        }


def _drift_allowed(drift: dict, threshold: float) -> float:
    """The suite's drift threshold plus three standard errors of the fitted slope: a short
    run's slope is mostly the integrator's bounded oscillation, and only a drift that stands
    out of it counts. NaN (a run that blew up) never passes."""
    return threshold + 3.0 * drift["energy_drift_stderr_meV_per_atom_ps"]


def _per_engine(key: str, tolerance: str):
    def instances(result: dict, th: dict) -> list[tuple[str, float, float]]:
        cross = result["cross_engine"]
        return [(engine, agree[key], cross["tolerance"][tolerance])
                for engine, agree in cross["engines"].items()]  # fmt: skip

    return instances


def _structure(rdf: bool):
    def instances(result: dict, th: dict) -> list[tuple[str, float, float]]:
        blocks = result["structure_comparison"]
        if rdf:
            return [(pair, block["distance"], th["rdf_distance"])
                    for pair, block in blocks.get("rdf", {}).items()]  # fmt: skip
        return [(label, block["total_variation"], th["distribution_total_variation"])
                for label, block in blocks.items() if label not in ("kind", "rdf")]  # fmt: skip

    return instances


def _worst_contact(result: dict, th: dict) -> list[tuple[str, float, float]]:
    wells = result["close_contacts"]
    if not wells:
        return []
    pair = max(wells, key=lambda p: wells[p]["excess_eV"])
    return [(pair, wells[pair]["excess_eV"], th["close_contact_well_eV"])]


def _compression(result: dict, th: dict) -> list[tuple[str, float, float]]:
    curve = result.get("compression") or {}
    if not curve:
        return []  # not periodic: nothing to squeeze
    return [("", curve["worst_rel"], th["compression_pressure_rel"])]


def _stability(key: str, threshold: str):
    def instances(result: dict, th: dict) -> list[tuple[str, float, float]]:
        stability = result["stability"]
        if key not in stability:
            return []  # the run blew up: only stability_finite is judged
        return [("", stability[key], th[threshold])]

    return instances


def _temperature(result: dict, th: dict) -> list[tuple[str, float, float]]:
    """The stability run's mean temperature against its target, allowed the suite's fraction
    plus 3 standard errors of that mean: a few hundred fs of a 9-atom molecule scatter by
    ~10 % from seed to seed, and only a temperature that stands out of that counts."""
    stability = result["stability"]
    if "mean_temperature_K" not in stability:
        return []  # the run blew up: only stability_finite is judged
    target = result["protocol"]["temperature_K"]
    allowed = th["temperature_fraction"] + 3.0 * stability.get("temperature_stderr_K", 0.0) / target
    return [("", abs(stability["mean_temperature_K"] - target) / target, allowed)]


#: Every check the suite makes, declared once, in report order; :func:`_judge` evaluates
#: each on a system's measurements.
CHECKS = {
    check.name: check
    for check in (
        Check("energy_drift", "energy_drift_meV_per_atom_ps", True,
              "meV/atom/ps (threshold: the suite's + 3 standard errors of the slope)",
              instances=lambda result, th: [
                  (engine, abs(run["energy_drift_meV_per_atom_ps"]),
                   _drift_allowed(run, th["energy_drift_meV_per_atom_ps"]))
                  for engine, run in result["engines"].items()]),
        Check("energy_excursion", "energy_excursion_fraction", True,
              "fraction of kinetic energy per atom",
              instances=lambda result, th: [
                  (engine, run["max_excursion_meV_per_atom"]
                   / run["mean_kinetic_energy_meV_per_atom"], th["energy_excursion_fraction"])
                  for engine, run in result["engines"].items()]),
        Check("cross_engine_forces", "cross_engine", True, "eV/Å",
              instances=_per_engine("force_max_abs_eV_per_A", "force_eV_per_A")),
        Check("cross_engine_energy", "cross_engine", True, "relative",
              instances=_per_engine("energy_max_rel", "energy_rel")),
        Check("force_rmse_student_frames", "force_rmse_eV_per_A", True, "eV/Å",
              instances=lambda result, th: [
                  ("", result["force_error"]["student_frames"]["force_rmse_eV_per_A"],
                   th["force_rmse_eV_per_A"])]),
        Check("rdf", "rdf_distance", True, instances=_structure(rdf=True)),
        Check("distribution", "distribution_total_variation", True,
              labelled="{label}_distribution", instances=_structure(rdf=False)),
        Check("close_contact_well", "close_contact_well_eV", True,
              "eV (an isolated pair's energy well inside 0.8 × its radii sum, beyond the "
              "teacher's; the worst pair)", instances=_worst_contact),
        Check("compression_pressure", "compression_pressure_rel", True,
              "relative (pressure of the cell squeezed to 0.85-1 of its edge, molecules "
              "whole, against the teacher's; the worst fraction)", instances=_compression),
        Check("stability_finite", None, False,
              instances=lambda result, th: [("", float(result["stability"]["finite"]), 1.0)]),
        Check("stability_min_distance", "min_distance_A", False, "Å",
              instances=_stability("min_distance_A", "min_distance_A")),
        Check("stability_temperature", "temperature_fraction", True,
              "fraction of target (threshold: the suite's + 3 standard errors of the mean)",
              instances=_temperature),
    )
}  # fmt: skip


def _judge(result: dict[str, Any], thresholds: dict[str, Any]) -> list[dict[str, Any]]:
    """Every check of :data:`CHECKS` on one system's measurements, in declaration order,
    with the engine each instance belongs to (``None`` for the system's own checks)."""
    judged = []
    for check in CHECKS.values():
        for label, value, limit in check.instances(result, thresholds):
            entry = check.judge(value, limit, label)
            judged.append((label if label in result["engines"] else None, entry))
    return judged


#: LAMMPS errors that mean the atoms flew apart (a student failing, not a bug of the suite).
_LAMMPS_BLOW_UP = ("Lost atoms", "Out of range atoms", "Non-numeric atom coords")


def _evenly(count: int, available: int, skip_first: bool = False) -> list[int]:
    start = 1 if skip_first and available > 1 else 0
    picks = np.linspace(start, available - 1, num=min(count, available - start))
    return sorted(set(int(round(i)) for i in picks))


class _Stage:
    """A progress bar per stage, on stderr."""

    def __init__(self, enabled: bool, system: str):
        self.enabled = enabled
        self.system = system

    def __call__(self, label: str, total: int):
        bar = progress_bar(total, 0, self.enabled, "step", f"{self.system}: {label}")
        return bar


def _teacher_run(
    protocol: str, steps: int, cache: Path, key: str, stage, atoms, velocities, teacher, dt,
    every, common: dict[str, Any],
) -> tuple[Trajectory, bool]:  # fmt: skip
    """A teacher reference trajectory: from the cache if this exact run was done before."""
    path = cache / f"{key}-teacher-{protocol}.npz"
    if path.is_file():
        return Trajectory.load(path), True
    bar = stage(f"teacher {protocol.upper()} (ASE)", steps)
    try:
        traj = run_ase(atoms, velocities, teacher, protocol, steps, dt, every,
                       progress=bar.update, engine="teacher", **common)  # fmt: skip
    finally:
        bar.close()
    traj.save(path)
    return traj, False


@dataclass
class _Runs:
    """What the engines computed for one system; the measurements are made from this alone."""

    teacher_nve: Trajectory
    teacher_nvt: Trajectory
    teacher_reused: bool
    teacher_timing: Trajectory  # a few teacher steps timed now (the references may be cached)
    student_nve: dict[str, Trajectory]  # per engine
    student_nvt: Trajectory  # ASE
    picks: list[int]  # the cross-engine frames, indices into teacher_nvt
    on_picks: dict[str, tuple[np.ndarray, np.ndarray]]  # engine -> student (energies, forces)
    student_on_teacher: np.ndarray  # student forces on every teacher NVT frame
    relabel: list[int]  # the relabelled student frames, indices into student_nvt
    teacher_on_student: np.ndarray  # teacher forces on them
    contacts: dict[str, dict[str, float]]  # close-contact wells per element pair
    compression: dict[str, Any]  # pressures of the squeezed cell ({} for a molecule)
    stability_engine: str
    stability: Trajectory | None  # None: the run blew up
    crashed: str | None
    memory_peak_mb: dict[str, float]


def _run_system(spec: SystemSpec, atoms, teacher, teacher_key: str, model_path: Path,
                folder: Path, cache: Path, stage) -> _Runs:  # fmt: skip
    """Every engine call of a system: teacher references, student MD in each engine, the
    cross-engine frames, the teacher's relabelling and the stability run."""
    from ..calculators import StudentCalculator

    p = spec.protocol
    dt, every, T = p["timestep_fs"], p["record_every"], p["temperature_K"]
    velocities = initial_velocities(atoms, T, p["seed"])
    key = f"{spec.name}-{initial_conditions_key(teacher_key, atoms, p)}"
    memory: dict[str, float] = {}

    # Teacher references (cached), and the teacher's step time measured now.
    common = {"temperature_K": T, "friction_per_ps": p["friction_per_ps"], "seed": p["seed"]}
    reference = (cache, key, stage, atoms, velocities, teacher, dt, every, common)
    teacher_nve, cached_nve = _teacher_run("nve", teacher_nve_steps(p), *reference)
    teacher_nvt, cached_nvt = _teacher_run("nvt", p["nvt_steps"], *reference)
    timing = run_ase(atoms, velocities, teacher, "nve", TEACHER_LATENCY_STEPS, dt, every)
    memory["teacher"] = peak_memory_mb()

    # The student from the same initial conditions: NVE in every engine, NVT in ASE.
    student = StudentCalculator(model_path)
    nve: dict[str, Trajectory] = {}
    for engine in p["engines"]:
        steps = student_nve_steps(p, engine)
        bar = stage(f"student NVE ({engine})", steps)
        try:
            nve[engine] = engine_runs.run(
                engine, atoms, velocities, student if engine == "ase" else model_path, "nve",
                steps, dt, every, folder / "lammps", progress=bar.update,
            )  # fmt: skip
        finally:
            bar.close()
        memory[engine] = peak_memory_mb()
    bar = stage("student NVT (ASE)", p["nvt_steps"])
    try:
        student_nvt = run_ase(atoms, velocities, student, "nvt", p["nvt_steps"], dt, every,
                              progress=bar.update, **common)  # fmt: skip
    finally:
        bar.close()

    # The student on the same teacher frames in every engine.
    picks = _evenly(p["cross_engine_frames"], len(teacher_nvt.times_ps), skip_first=True)
    frames = teacher_nvt.frames(picks)
    on_picks = {"ase": evaluate_ase(student, frames)}
    for engine in p["engines"]:
        if engine != "ase":
            on_picks[engine] = engine_runs.evaluate(engine, model_path, frames,
                                                    folder / "lammps_frames")  # fmt: skip

    # The student on every teacher frame, and the teacher on student frames.
    _, student_on_teacher = evaluate_ase(student, teacher_nvt.frames())
    relabel = _evenly(p["relabel_frames"], len(student_nvt.times_ps), skip_first=True)
    bar = stage("teacher relabels student frames", len(relabel))
    teacher_f = []
    for frame in student_nvt.frames(relabel):
        teacher_f.append(evaluate_ase(teacher, [frame])[1][0])
        bar.update(1)
    bar.close()

    # Isolated pairs of the system's elements pushed together, student and teacher.
    contacts = close_contact_wells(student, teacher, atoms.get_chemical_symbols())
    # A periodic system squeezed with its molecules whole, student and teacher.
    compression = compression_curve(student, teacher, atoms)

    # Stability: a longer student NVT in the fastest engine available.
    stable_engine = "lammps" if "lammps" in p["engines"] else "ase"
    bar = stage(f"stability NVT ({stable_engine})", p["stability_steps"])
    stable_every = max(every, p["stability_steps"] // 200)
    try:
        long = engine_runs.run(
            stable_engine, atoms, velocities, student if stable_engine == "ase" else model_path,
            "nvt", p["stability_steps"], dt, stable_every, folder / "lammps_stability",
            progress=bar.update, **common,
        )  # fmt: skip
        crashed = None
    except FloatingPointError as exc:
        long, crashed = None, str(exc)
    except Exception as exc:  # LAMMPS raises a bare Exception for a run that fell apart
        if not any(word in str(exc) for word in _LAMMPS_BLOW_UP):
            raise
        first = str(exc).strip().splitlines()[0]
        long, crashed = None, f"the student's run blew up in LAMMPS ({first})"
    finally:
        bar.close()
    return _Runs(
        teacher_nve, teacher_nvt, bool(cached_nve and cached_nvt), timing, nve, student_nvt,
        picks, on_picks, student_on_teacher, relabel, np.array(teacher_f), contacts,
        compression, stable_engine, long, crashed, memory,
    )  # fmt: skip


def _save(runs: _Runs, numbers: np.ndarray, folder: Path) -> None:
    """The trajectories behind the report's numbers, in ``folder/trajectories``."""
    out = folder / "trajectories"
    runs.teacher_nve.save(out / "teacher_nve.npz")
    runs.teacher_nvt.save(out / "teacher_nvt.npz")
    for engine, traj in runs.student_nve.items():
        traj.save(out / f"student_nve_{engine}.npz")
    runs.student_nvt.save(out / "student_nvt.npz")
    np.savez_compressed(
        out / "cross_engine.npz",
        frames=np.array(runs.picks),
        teacher_forces=runs.teacher_nvt.forces[runs.picks],
        **{f"forces_{engine}": f for engine, (_, f) in runs.on_picks.items()},
    )
    np.savez_compressed(
        out / "relabelled.npz",
        frames=np.array(runs.relabel),
        numbers=numbers,
        teacher_forces=runs.teacher_on_student,
        student_forces=runs.student_nvt.forces[runs.relabel],
    )
    if runs.stability is not None:
        runs.stability.save(out / f"stability_nvt_{runs.stability_engine}.npz")


def _measure(runs: _Runs, numbers: np.ndarray, p: dict, tolerance: dict) -> dict[str, Any]:
    """A system's measurements from its runs (no verdicts): the teacher's drift and speed,
    cross-engine agreement, force errors, each engine's drift and speed, structure against
    the teacher, stability."""
    from .structure import compare_structures

    n = len(numbers)
    memory = runs.memory_peak_mb
    result: dict[str, Any] = {"teacher_reference_reused": runs.teacher_reused}
    result["teacher"] = {
        **metrics.energy_drift(runs.teacher_nve.times_ps, runs.teacher_nve.total_energy, n),
        **metrics.latency(runs.teacher_timing.step_seconds[WARMUP_STEPS:]),
        "mean_kinetic_energy_meV_per_atom": float(
            1000 * runs.teacher_nve.kinetic_energy.mean() / n
        ),
    }
    reference_e, reference_f = runs.on_picks["ase"]
    result["cross_engine"] = {
        "frames": runs.picks,
        "tolerance": tolerance,
        "engines": {
            engine: {
                "energy_max_rel": float(np.max(np.abs(e - reference_e) / np.abs(reference_e))),
                "force_max_abs_eV_per_A": float(np.max(np.abs(f - reference_f))),
            }
            for engine, (e, f) in runs.on_picks.items()
            if engine != "ase"
        },
    }
    teacher_nvt = runs.teacher_nvt
    result["force_error"] = {
        "teacher_frames": metrics.force_errors(
            numbers, teacher_nvt.forces, runs.student_on_teacher
        ),  # fmt: skip
        "student_frames": metrics.force_errors(
            numbers, runs.teacher_on_student, runs.student_nvt.forces[runs.relabel]
        ),
    }
    teacher_ms = result["teacher"]["latency_ms_median"]
    engines: dict[str, Any] = {}
    for engine, traj in runs.student_nve.items():
        lat = metrics.latency(traj.step_seconds[WARMUP_STEPS:])
        on_frames = metrics.force_errors(numbers, teacher_nvt.forces[runs.picks],
                                         runs.on_picks[engine][1])  # fmt: skip
        engines[engine] = {
            **metrics.energy_drift(traj.times_ps, traj.total_energy, n),
            "mean_kinetic_energy_meV_per_atom": float(1000 * traj.kinetic_energy.mean() / n),
            "force_rmse_eV_per_A": on_frames["force_rmse_eV_per_A"],
            **lat,
            "speedup_vs_teacher": float(teacher_ms / lat["latency_ms_median"]),
            "memory_peak_mb": memory[engine],
        }
    result["engines"] = engines
    result["structure_comparison"] = compare_structures(teacher_nvt.frames(),
                                                        runs.student_nvt.frames())  # fmt: skip

    result["close_contacts"] = runs.contacts
    result["compression"] = runs.compression
    stability = stability_measures(runs.stability, runs.crashed)
    stability.update({"engine": runs.stability_engine, "steps": p["stability_steps"]})
    result["stability"] = stability
    return result


def stability_measures(long: Trajectory | None, crashed: str | None = None) -> dict[str, Any]:
    """The stability run's measures: finite, closest approach of any two atoms, and the mean
    temperature over its second half (``long`` None: the run blew up, ``crashed`` says how).

    The first half equilibrates: a start made by another model (the built-in water boxes are
    TIP3P's) relaxes for a few tenths of a ps and heats the run (32 waters at a 300 K target:
    the students ~340 K over the first 0.25 ps, ~300 K after; the teacher's own 20 fs from
    the same start reach 330-380 K)."""
    if long is None:
        return {"finite": False, "error": crashed}
    cell = long.cell if np.abs(long.cell).sum() > 0 else None
    finite = bool(np.isfinite(long.positions).all() and np.isfinite(long.total_energy).all())
    judged = np.asarray(long.temperature_K[len(long.times_ps) // 2 :], dtype=float)
    return {
        "finite": finite,
        "min_distance_A": min(metrics.min_distance(x, cell) for x in long.positions),
        "mean_temperature_K": float(judged.mean()),
        "temperature_stderr_K": block_stderr(judged),
        "duration_ps": float(long.times_ps[-1]),
    }


def block_stderr(values: np.ndarray, blocks: int = 5) -> float:
    """The standard error of the mean of a correlated series, from the scatter of the means
    of ``blocks`` consecutive blocks (0 for a series too short to have two per block)."""
    values = np.asarray(values, dtype=float)
    per = len(values) // blocks
    if per < 2:
        return 0.0
    means = values[: per * blocks].reshape(blocks, per).mean(axis=1)
    return float(means.std(ddof=1) / np.sqrt(blocks))


def _validate_system(
    spec: SystemSpec,
    suite: Suite,
    teacher_key: str,
    teacher,
    model_path: Path,
    metadata: dict[str, Any],
    out: Path,
    cache: Path,
    progress: bool,
) -> dict[str, Any]:
    """One system: runs, then measurements, then checks, then the report's plots."""
    from .report import plot_system
    from .structure import plot_structures

    p, th = spec.protocol, spec.thresholds
    atoms = spec.load(suite.base)
    missing = sorted(set(atoms.get_chemical_symbols()) - set(metadata["elements"]))
    if missing:
        raise InputError(
            f"elements {missing} are not in the student (it knows {metadata['elements']})"
        )
    folder = out / "systems" / spec.name
    (folder / "trajectories").mkdir(parents=True, exist_ok=True)
    runs = _run_system(spec, atoms, teacher, teacher_key, model_path, folder, cache,
                       _Stage(progress, spec.name))  # fmt: skip
    _save(runs, atoms.numbers, folder)

    result: dict[str, Any] = {
        "name": spec.name,
        "structure": spec.structure,
        "kind": spec.resolved_kind(atoms),
        "warmup_steps_untimed": WARMUP_STEPS,
        "atoms": len(atoms),
        "formula": atoms.get_chemical_formula(),
        "periodic": bool(atoms.pbc.all()),
        "protocol": p,
        "thresholds": th,
        "memory_peak_mb": runs.memory_peak_mb,
        **_measure(runs, atoms.numbers, p, th["cross_engine"][metadata["dtype"]]),
    }
    judged = _judge(result, th)
    for engine, block in result["engines"].items():
        own = [entry for owner, entry in judged if owner == engine]
        block["verdict"] = "PASS" if all(c["verdict"] == "PASS" for c in own) else "FAIL"
    result["checks"] = checks = [entry for _, entry in judged]
    result["verdict"] = "PASS" if all(c["verdict"] == "PASS" for c in checks) else "FAIL"
    result["plots"] = plot_system(result, runs.student_nve, runs.teacher_nve, folder,
                                  result["structure_comparison"], plot_structures)  # fmt: skip
    return result


def validate(
    model: str | os.PathLike,
    teacher: str = "sevennet-0",
    suite: str | os.PathLike = "quick",
    out: str | os.PathLike = "validation_report",
    cache: str | os.PathLike | None = None,
    progress: bool = True,
    teacher_kwargs: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Validate an exported student against its teacher; write and return the report.

    Parameters
    ----------
    model
        A file written by ``mlff-distill export``.
    teacher
        A teacher spec for :func:`mlff_distiller.teachers.get_teacher`.
    suite
        A built-in suite name (``quick``, ``standard``) or a suite YAML file.
    out
        The report directory (``report.json``, ``report.md``, plots, trajectories).
    cache
        Where teacher reference trajectories are kept for reuse (default ``out/cache``).
    teacher_kwargs
        Keyword arguments for the teacher (e.g. ``weights_path``).

    Returns
    -------
    dict
        The report (also in ``out/report.json``); ``report["verdict"]`` is PASS or FAIL.
    """
    from ..environment import environment_report
    from ..export import load_exported
    from ..teachers import get_teacher, teacher_info
    from .report import write_markdown

    started = time.time()
    model_path = Path(model).resolve()
    _, metadata = load_exported(model_path)  # clear error for a missing or foreign file
    loaded = load_suite(suite)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    cache_dir = Path(cache) if cache else out / "cache"
    cache_dir.mkdir(parents=True, exist_ok=True)
    calc = get_teacher(teacher, **(teacher_kwargs or {}))
    # Teacher references are reused only for the same teacher with the same options.
    teacher_key = teacher + json.dumps(teacher_kwargs or {}, sort_keys=True, default=str)
    if "lammps" in {e for s in loaded.systems for e in s.protocol["engines"]}:
        from ..engines.lammps import plugin_path

        plugin_path()  # a missing plugin is an error before hours of teacher MD

    report: dict[str, Any] = {
        "format": "mlff_distiller.validation",
        "suite": {"name": loaded.name, "description": loaded.description,
                  "digest": loaded.digest(), "source": loaded.source},
        "model": str(model_path),
        "model_metadata": metadata,
        "teacher": {"spec": teacher, **teacher_info(calc).to_dict()},
        "versions": environment_report(),
        "machine": {"platform": platform.platform(), "processor": platform.machine(),
                    "cpu_count": os.cpu_count(), "python": sys.version.split()[0]},
        "seeds": {s.name: s.protocol["seed"] for s in loaded.systems},
        "command": shlex.join(sys.argv),
        "started": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "systems": [],
    }  # fmt: skip
    for spec in loaded.systems:
        say(progress, f"validate: {spec.name} ({spec.structure})")
        began = time.time()
        try:
            entry = _validate_system(
                spec, loaded, teacher_key, calc, model_path, metadata, out, cache_dir, progress
            )
        except Exception as exc:  # noqa: BLE001 - one system's failure must not stop the rest
            entry = {
                "name": spec.name,
                "structure": spec.structure,
                "verdict": "FAIL",
                "error": f"{type(exc).__name__}: {exc}",
                "traceback": traceback.format_exc(),
                "engines": {},
                "checks": [],
            }
            say(progress, f"validate: {spec.name} failed: {entry['error']}")
        entry["wall_seconds"] = time.time() - began
        report["systems"].append(entry)
    report["verdict"] = "PASS" if all(s["verdict"] == "PASS" for s in report["systems"]) else "FAIL"
    report["finished"] = datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")
    report["wall_seconds"] = time.time() - started
    write_json(out / "report.json", report)
    write_markdown(report, out / "report.md")
    return report
