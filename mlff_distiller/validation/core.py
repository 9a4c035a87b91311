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
   structure (RDF or bonds, angles, dihedrals) against the teacher's, and a longer student
   run for stability.

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
    threshold is fixed), which side passes, and the unit of its value."""

    name: str
    threshold: str | None
    at_most: bool
    unit: str = ""
    #: How a labelled instance (one engine, one pair, one distribution) is named.
    labelled: str = "{name}[{label}]"

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


#: Every check the suite makes, declared once; ``_validate_system`` measures, then judges
#: each measurement by its entry here.
CHECKS = {
    check.name: check
    for check in (
        Check("energy_drift", "energy_drift_meV_per_atom_ps", True,
              "meV/atom/ps (threshold: the suite's + 3 standard errors of the slope)"),
        Check("energy_excursion", "energy_excursion_fraction", True,
              "fraction of kinetic energy per atom"),
        Check("cross_engine_forces", "cross_engine", True, "eV/Å"),
        Check("cross_engine_energy", "cross_engine", True, "relative"),
        Check("force_rmse_student_frames", "force_rmse_eV_per_A", True, "eV/Å"),
        Check("rdf", "rdf_distance", True),
        Check("distribution", "distribution_total_variation", True,
              labelled="{label}_distribution"),
        Check("stability_finite", None, False),
        Check("stability_min_distance", "min_distance_A", False, "Å"),
        Check("stability_temperature", "temperature_fraction", True, "fraction of target"),
    )
}  # fmt: skip


#: LAMMPS errors that mean the atoms flew apart (a student failing, not a bug of the suite).
_LAMMPS_BLOW_UP = ("Lost atoms", "Out of range atoms", "Non-numeric atom coords")


def _drift_allowed(drift: dict, threshold: float) -> float:
    """The suite's drift threshold plus three standard errors of the fitted slope: a short
    run's slope is mostly the integrator's bounded oscillation, and only a drift that stands
    out of it counts. NaN (a run that blew up) never passes."""
    return threshold + 3.0 * drift["energy_drift_stderr_meV_per_atom_ps"]


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
    from ..calculators import StudentCalculator

    p, th = spec.protocol, spec.thresholds
    atoms = spec.load(suite.base)
    missing = sorted(set(atoms.get_chemical_symbols()) - set(metadata["elements"]))
    if missing:
        raise InputError(
            f"elements {missing} are not in the student (it knows {metadata['elements']})"
        )
    kind = spec.resolved_kind(atoms)
    n = len(atoms)
    folder = out / "systems" / spec.name
    (folder / "trajectories").mkdir(parents=True, exist_ok=True)
    stage = _Stage(progress, spec.name)
    dt, every, T = p["timestep_fs"], p["record_every"], p["temperature_K"]
    velocities = initial_velocities(atoms, T, p["seed"])
    key = f"{spec.name}-{initial_conditions_key(teacher_key, atoms, p)}"
    result: dict[str, Any] = {
        "name": spec.name,
        "structure": spec.structure,
        "kind": kind,
        "warmup_steps_untimed": WARMUP_STEPS,
        "atoms": n,
        "formula": atoms.get_chemical_formula(),
        "periodic": bool(atoms.pbc.all()),
        "protocol": p,
        "thresholds": th,
        "memory_peak_mb": {},
    }

    # 2. Teacher references (cached), and the teacher's step time measured now.
    common = {"temperature_K": T, "friction_per_ps": p["friction_per_ps"], "seed": p["seed"]}
    reference = (cache, key, stage, atoms, velocities, teacher, dt, every, common)
    teacher_nve, cached_nve = _teacher_run("nve", teacher_nve_steps(p), *reference)
    teacher_nvt, cached_nvt = _teacher_run("nvt", p["nvt_steps"], *reference)
    result["teacher_reference_reused"] = bool(cached_nve and cached_nvt)
    timing = run_ase(atoms, velocities, teacher, "nve", TEACHER_LATENCY_STEPS, dt, every)
    result["teacher"] = {
        **metrics.energy_drift(teacher_nve.times_ps, teacher_nve.total_energy, n),
        **metrics.latency(timing.step_seconds[WARMUP_STEPS:]),
        "mean_kinetic_energy_meV_per_atom": float(1000 * teacher_nve.kinetic_energy.mean() / n),
    }
    result["memory_peak_mb"]["teacher"] = peak_memory_mb()
    teacher_nve.save(folder / "trajectories" / "teacher_nve.npz")
    teacher_nvt.save(folder / "trajectories" / "teacher_nvt.npz")

    # 3. Student runs from the same initial conditions.
    student = StudentCalculator(model_path)
    runs: dict[str, Trajectory] = {}
    for engine in p["engines"]:
        steps = student_nve_steps(p, engine)
        bar = stage(f"student NVE ({engine})", steps)
        try:
            runs[engine] = engine_runs.run(
                engine, atoms, velocities, student if engine == "ase" else model_path, "nve",
                steps, dt, every, folder / "lammps", progress=bar.update,
            )  # fmt: skip
        finally:
            bar.close()
        runs[engine].save(folder / "trajectories" / f"student_nve_{engine}.npz")
        result["memory_peak_mb"][engine] = peak_memory_mb()
    bar = stage("student NVT (ASE)", p["nvt_steps"])
    try:
        student_nvt = run_ase(
            atoms, velocities, student, "nvt", p["nvt_steps"], dt, every,
            progress=bar.update, **common,
        )  # fmt: skip
    finally:
        bar.close()
    student_nvt.save(folder / "trajectories" / "student_nvt.npz")

    # 4. Cross-engine agreement on teacher frames.
    picks = _evenly(p["cross_engine_frames"], len(teacher_nvt.times_ps), skip_first=True)
    frames = teacher_nvt.frames(picks)
    reference_e, reference_f = evaluate_ase(student, frames)
    tolerance = th["cross_engine"][metadata["dtype"]]
    cross: dict[str, Any] = {"frames": picks, "tolerance": tolerance, "engines": {}}
    engine_forces = {"ase": reference_f}
    for engine in p["engines"]:
        if engine == "ase":
            continue
        e, f = engine_runs.evaluate(engine, model_path, frames, folder / "lammps_frames")
        engine_forces[engine] = f
        cross["engines"][engine] = {
            "energy_max_rel": float(np.max(np.abs(e - reference_e) / np.abs(reference_e))),
            "force_max_abs_eV_per_A": float(np.max(np.abs(f - reference_f))),
        }
    np.savez_compressed(
        folder / "trajectories" / "cross_engine.npz",
        frames=np.array(picks),
        teacher_forces=teacher_nvt.forces[picks],
        **{f"forces_{engine}": f for engine, f in engine_forces.items()},
    )
    result["cross_engine"] = cross

    # 5a. Force errors: teacher frames (all recorded NVT frames, student in ASE) and student
    # frames relabelled by the teacher.
    all_teacher = teacher_nvt.frames()
    _, student_on_teacher = evaluate_ase(student, all_teacher)
    relabel = _evenly(p["relabel_frames"], len(student_nvt.times_ps), skip_first=True)
    bar = stage("teacher relabels student frames", len(relabel))
    teacher_f = []
    for frame in student_nvt.frames(relabel):
        teacher_f.append(evaluate_ase(teacher, [frame])[1][0])
        bar.update(1)
    bar.close()
    teacher_f = np.array(teacher_f)
    np.savez_compressed(
        folder / "trajectories" / "relabelled.npz",
        frames=np.array(relabel),
        numbers=atoms.numbers,
        teacher_forces=teacher_f,
        student_forces=student_nvt.forces[relabel],
    )
    result["force_error"] = {
        "teacher_frames": metrics.force_errors(
            atoms.numbers, teacher_nvt.forces, student_on_teacher
        ),
        "student_frames": metrics.force_errors(
            atoms.numbers, teacher_f, student_nvt.forces[relabel]
        ),
    }

    # 5b. Per engine: drift, force error on the cross-engine frames, latency, speed-up.
    teacher_ms = result["teacher"]["latency_ms_median"]
    checks: list[dict] = []
    engines: dict[str, Any] = {}
    for engine, traj in runs.items():
        drift = metrics.energy_drift(traj.times_ps, traj.total_energy, n)
        ke = 1000 * traj.kinetic_energy.mean() / n
        lat = metrics.latency(traj.step_seconds[WARMUP_STEPS:])
        # (value, threshold) per check; the drift's threshold widens by its slope's error.
        measured = {
            "energy_drift": (
                abs(drift["energy_drift_meV_per_atom_ps"]),
                _drift_allowed(drift, th["energy_drift_meV_per_atom_ps"]),
            ),
            "energy_excursion": (
                drift["max_excursion_meV_per_atom"] / ke,
                th["energy_excursion_fraction"],
            ),
        }
        if engine != "ase":
            agree = cross["engines"][engine]
            measured["cross_engine_forces"] = (
                agree["force_max_abs_eV_per_A"],
                tolerance["force_eV_per_A"],
            )
            measured["cross_engine_energy"] = (agree["energy_max_rel"], tolerance["energy_rel"])
        engine_checks = [
            CHECKS[name].judge(value, limit, engine) for name, (value, limit) in measured.items()
        ]
        on_frames = metrics.force_errors(atoms.numbers, teacher_nvt.forces[picks],
                                         engine_forces[engine])  # fmt: skip
        engines[engine] = {
            **drift,
            "mean_kinetic_energy_meV_per_atom": float(ke),
            "force_rmse_eV_per_A": on_frames["force_rmse_eV_per_A"],
            **lat,
            "speedup_vs_teacher": float(teacher_ms / lat["latency_ms_median"]),
            "memory_peak_mb": result["memory_peak_mb"][engine],
            "verdict": "PASS" if all(c["verdict"] == "PASS" for c in engine_checks) else "FAIL",
        }
        checks += engine_checks
    result["engines"] = engines

    rmse = result["force_error"]["student_frames"]["force_rmse_eV_per_A"]
    checks.append(CHECKS["force_rmse_student_frames"].judge(rmse, th["force_rmse_eV_per_A"]))

    # 5c. Structure against the teacher.
    from .structure import compare_structures, plot_structures

    structure = compare_structures(teacher_nvt.frames(), student_nvt.frames())
    result["structure_comparison"] = structure
    for label, block in structure.items():
        if label == "kind":
            continue
        if label == "rdf":
            for pair, rdf in block.items():
                checks.append(CHECKS["rdf"].judge(rdf["distance"], th["rdf_distance"], pair))
        else:
            tv, limit = block["total_variation"], th["distribution_total_variation"]
            checks.append(CHECKS["distribution"].judge(tv, limit, label))

    # 5d. Stability: a longer student NVT in the fastest engine available.
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
    stability: dict[str, Any] = {"engine": stable_engine, "steps": p["stability_steps"]}
    if long is None:
        stability.update({"finite": False, "error": crashed})
        checks.append(CHECKS["stability_finite"].judge(0, 1))
    else:
        long.save(folder / "trajectories" / f"stability_nvt_{stable_engine}.npz")
        cell = long.cell if np.abs(long.cell).sum() > 0 else None
        closest = min(metrics.min_distance(x, cell) for x in long.positions)
        burn = len(long.times_ps) // 5  # the first fifth equilibrates
        mean_t = float(long.temperature_K[burn:].mean())
        finite = bool(np.isfinite(long.positions).all() and np.isfinite(long.total_energy).all())
        stability.update(
            {"finite": finite, "min_distance_A": closest, "mean_temperature_K": mean_t,
             "duration_ps": float(long.times_ps[-1])}
        )  # fmt: skip
        off = abs(mean_t - T) / T
        checks += [
            CHECKS["stability_finite"].judge(float(finite), 1),
            CHECKS["stability_min_distance"].judge(closest, th["min_distance_A"]),
            CHECKS["stability_temperature"].judge(off, th["temperature_fraction"]),
        ]
    result["stability"] = stability
    result["checks"] = checks
    result["verdict"] = "PASS" if all(c["verdict"] == "PASS" for c in checks) else "FAIL"

    from .report import plot_system

    result["plots"] = plot_system(result, runs, teacher_nve, folder, structure, plot_structures)
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
