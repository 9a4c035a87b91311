"""``report.md`` and the plots of a validation run (``report.json`` is written by
:func:`mlff_distiller.validation.validate`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ..files import write_text
from ..plots import figure, save_figure

ENGINE_COLOURS = {"teacher": "black", "ase": "tab:blue", "openmm": "tab:orange",
                  "lammps": "tab:green"}  # fmt: skip


def _save(fig, path: Path) -> str:
    return save_figure(fig, path, dpi=110).name


def plot_system(result, runs, teacher_nve, folder: Path, structure, plot_structures) -> list[str]:
    """Energy vs time per engine, force parity, structure overlays and latency bars for one
    system; returns the PNG paths relative to the report directory."""
    name, n = result["name"], result["atoms"]
    written = []

    fig, ax = figure((6.4, 4.0))
    for engine, traj in {"teacher": teacher_nve, **runs}.items():
        e = 1000.0 * (traj.total_energy - traj.total_energy[0]) / n
        ax.plot(traj.times_ps, e, label=engine, color=ENGINE_COLOURS[engine], lw=1.2)
    ax.set_xlabel("time (ps)")
    ax.set_ylabel("total energy − start (meV/atom)")
    ax.set_title(f"{name}: NVE energy conservation")
    ax.legend()
    fig.tight_layout()
    written.append(_save(fig, folder / "energy.png"))

    with np.load(folder / "trajectories" / "relabelled.npz") as data:
        teacher_f, student_f = data["teacher_forces"].ravel(), data["student_forces"].ravel()
    fig, ax = figure((4.6, 4.4))
    ax.scatter(teacher_f, student_f, s=3, alpha=0.5)
    lim = float(np.abs(np.concatenate([teacher_f, student_f])).max()) * 1.05
    ax.plot([-lim, lim], [-lim, lim], color="grey", lw=0.8)
    ax.set_xlim(-lim, lim)
    ax.set_ylim(-lim, lim)
    rmse = result["force_error"]["student_frames"]["force_rmse_eV_per_A"]
    ax.set_title(f"{name}: student frames, RMSE {rmse:.3f} eV/Å", fontsize=9)
    ax.set_xlabel("teacher force component (eV/Å)")
    ax.set_ylabel("student force component (eV/Å)")
    fig.tight_layout()
    written.append(_save(fig, folder / "forces.png"))

    written.append(Path(plot_structures(structure, folder / "structure.png", name)).name)

    labels = ["teacher", *result["engines"]]
    values = [result["teacher"]["latency_ms_median"]] + [
        result["engines"][e]["latency_ms_median"] for e in result["engines"]
    ]
    fig, ax = figure((5.0, 3.4))
    ax.bar(labels, values, color=[ENGINE_COLOURS[label] for label in labels])
    ax.set_yscale("log")
    ax.set_ylabel("median ms per MD step")
    ax.set_title(f"{name}: per-step latency ({n} atoms)")
    fig.tight_layout()
    written.append(_save(fig, folder / "latency.png"))
    return [f"systems/{name}/{png}" for png in written]


def _fmt(value: Any, digits: int = 3) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        if value != 0 and (abs(value) < 10**-digits or abs(value) >= 10**5):
            return f"{value:.2e}"
        return f"{value:.{digits}f}"
    return str(value)


def write_markdown(report: dict[str, Any], path: Path) -> Path:
    """The human-readable report: verdicts, per-engine tables, checks and plots."""
    meta = report["model_metadata"]
    lines = [
        f"# Validation report: {report['verdict']}",
        "",
        f"- Student: `{report['model']}` ({meta.get('preset')}, {meta.get('parameters')} "
        f"parameters, {meta.get('dtype')}, elements {' '.join(meta.get('elements', []))})",
        f"- Teacher: `{report['teacher']['spec']}` ({report['teacher'].get('package')} "
        f"{report['teacher'].get('version')})",
        f"- Suite: `{report['suite']['name']}`"
        + (f" ({report['suite']['description']})" if report["suite"]["description"] else ""),
        f"- Machine: {report['machine']['platform']}, {report['machine']['cpu_count']} CPUs; "
        f"finished {report['finished']} after {report['wall_seconds'] / 60:.1f} min",
        "",
        "| system | atoms | verdict | force RMSE on student frames (eV/Å) | "
        "fastest engine | speed-up vs teacher |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for system in report["systems"]:
        engines = system.get("engines") or {}
        if engines:
            fastest = min(engines, key=lambda e: engines[e]["latency_ms_median"])
            speed = f"{fastest}", f"{engines[fastest]['speedup_vs_teacher']:.1f}×"
            rmse = system["force_error"]["student_frames"]["force_rmse_eV_per_A"]
        else:
            speed, rmse = ("–", "–"), None
        lines.append(
            f"| {system['name']} | {system.get('atoms', '–')} | {system['verdict']} | "
            f"{_fmt(rmse)} | {speed[0]} | {speed[1]} |"
        )
    for system in report["systems"]:
        lines += ["", f"## {system['name']}: {system['verdict']}", ""]
        if system.get("error"):
            lines += [f"The system could not be validated: `{system['error']}`"]
            continue
        p = system["protocol"]
        lines += [
            f"{system['formula']}, {system['atoms']} atoms, {system['kind']}, from "
            f"`{system['structure']}`. {p['temperature_K']} K, {p['timestep_fs']} fs steps: "
            f"NVE {p['nve_steps']} steps per engine"
            + "".join(f" ({e}: {n})" for e, n in p["nve_steps_by_engine"].items())
            + f", teacher NVE {p['teacher_nve_steps'] or p['nve_steps']} steps, "
            f"NVT {p['nvt_steps']} steps, stability "
            f"{p['stability_steps']} steps; seed {p['seed']}."
            + (
                " Teacher references reused from the cache."
                if system["teacher_reference_reused"]
                else ""
            ),  # fmt: skip
            "",
            "| engine | drift (meV/atom/ps) | max excursion (meV/atom) | force RMSE vs teacher "
            "(eV/Å) | ms/step median | p95 | p99 | speed-up | peak memory (MB) | verdict |",
            "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
        ]
        t = system["teacher"]
        lines.append(
            f"| teacher (ASE) | {_fmt(t['energy_drift_meV_per_atom_ps'], 4)} | "
            f"{_fmt(t['max_excursion_meV_per_atom'])} | – | {_fmt(t['latency_ms_median'], 1)} | "
            f"{_fmt(t['latency_ms_p95'], 1)} | {_fmt(t['latency_ms_p99'], 1)} | 1.0× | "
            f"{_fmt(system['memory_peak_mb']['teacher'], 0)} | – |"
        )
        for engine, e in system["engines"].items():
            lines.append(
                f"| {engine} | {_fmt(e['energy_drift_meV_per_atom_ps'], 4)} | "
                f"{_fmt(e['max_excursion_meV_per_atom'])} | {_fmt(e['force_rmse_eV_per_A'])} | "
                f"{_fmt(e['latency_ms_median'], 1)} | {_fmt(e['latency_ms_p95'], 1)} | "
                f"{_fmt(e['latency_ms_p99'], 1)} | {e['speedup_vs_teacher']:.1f}× | "
                f"{_fmt(e['memory_peak_mb'], 0)} | {e['verdict']} |"
            )
        fe = system["force_error"]
        per_element = ", ".join(
            f"{el} {v['force_rmse_eV_per_A']:.3f}"
            for el, v in fe["student_frames"]["per_element"].items()
        )
        lines += [
            "",
            "Force error against the teacher: RMSE "
            f"{_fmt(fe['teacher_frames']['force_rmse_eV_per_A'])} eV/Å on "
            f"{fe['teacher_frames']['frames']} teacher frames, "
            f"{_fmt(fe['student_frames']['force_rmse_eV_per_A'])} eV/Å on "
            f"{fe['student_frames']['frames']} student frames relabelled by the teacher "
            f"(per element: {per_element}; teacher force RMS "
            f"{_fmt(fe['student_frames']['reference_force_rms_eV_per_A'])} eV/Å).",
            "",
            _contacts_line(system.get("close_contacts", {})),
            "",
            _compression_line(system.get("compression", {})),
            "",
            "Memory is the peak resident size of the validating process after each stage; it only "
            "grows, so a later engine's figure includes the earlier ones.",
            "",
            "| check | value | threshold | verdict |",
            "| --- | --- | --- | --- |",
        ]
        for check in system["checks"]:
            lines.append(
                f"| {check['name']} | {_fmt(check['value'], 4)} {check['unit']} | "
                f"{_fmt(check['threshold'], 4)} | {check['verdict']} |"
            )
        lines += [""] + [f"![{Path(p).stem}]({p})" for p in system.get("plots", [])]
    return write_text(path, "\n".join(lines) + "\n")


def _contacts_line(wells: dict) -> str:
    """The close-contact wells of a system's element pairs, deepest first."""
    if not wells:
        return "Close contacts: not measured."
    worst = sorted(wells.items(), key=lambda kv: -kv[1]["student_eV"])
    parts = [
        f"{pair} {w['student_eV']:.2f} eV at {w['at_fraction']:.2f} × "
        f"(teacher {w['teacher_eV']:.2f})"
        for pair, w in worst[:4]
    ]
    return (
        "Close contacts (isolated pairs, energy well inside 0.8 × the covalent radii sum; "
        "a physical pair has none): " + "; ".join(parts) + "."
    )


def _compression_line(curve: dict) -> str:
    """The pressures of a periodic system squeezed with its molecules whole."""
    if not curve:
        return "Compression: not measured (not periodic)."
    parts = [
        f"{f:.2f} × edge: {s:.1f} (teacher {t:.1f})"
        for f, s, t in zip(curve["fractions"], curve["student_GPa"], curve["teacher_GPa"])
    ]
    return (
        "Compression (cell squeezed with its molecules whole; pressure in GPa): "
        + "; ".join(parts)
        + f". Worst relative error {curve['worst_rel']:.2f} at {curve['at_fraction']:.2f}."
    )
