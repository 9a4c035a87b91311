"""A model card for a pipeline's student, written from the run's own records.

Every number on the card comes from a file of the run (the dataset, the test report, the
active learning records, the validation report), so the card cannot say more than was
measured. Sections: what the file is, the teacher and data, accuracy against the teacher,
speed against the teacher, the validated range, and the command that reproduces it.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from ..files import write_text


def held_out_kind(test: dict[str, Any]) -> str:
    """What the test split holds: "molecules" (split by group) or "frames" (by frame)."""
    return "molecules" if test.get("split_by", "group") == "group" else "frames"


def _fmt(value: float | None, digits: int = 3) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def _dataset_facts(dataset: str) -> tuple[list[str], list[str]]:
    """Lines describing the dataset, and its elements in order of atomic number."""
    from ase.data import atomic_numbers

    from ..data import read_dataset

    frames = read_dataset(dataset)
    periodic = sum(bool(f.pbc.any()) for f in frames)
    groups = {f.info.get("group") for f in frames}
    counts: dict[str, int] = {}
    for f in frames:
        for symbol in f.get_chemical_symbols():
            counts[symbol] = counts.get(symbol, 0) + 1
    al = sum(1 for f in frames if (f.info.get("sampling") or {}).get("method") == "active_learning")
    lines = [
        f"- {len(frames)} labelled frames ({periodic} periodic), {len(groups)} distinct "
        f"molecules or boxes; {al} of them picked by active learning.",
    ]
    elements = sorted(counts, key=atomic_numbers.__getitem__)
    lines.append("- Atoms per element: " + ", ".join(f"{k} {counts[k]:,}" for k in elements) + ".")
    return lines, elements


def _validation_lines(report_path: Path) -> tuple[list[str], list[str], dict[str, Any]]:
    report = json.loads(report_path.read_text())
    accuracy = [
        "",
        f"Validation suite `{report['suite']['name']}` (verdict **{report['verdict']}**; "
        f"full report: `{report_path.parent.name}/report.md`). Force error on the student's "
        "own NVT frames relabelled by the teacher, and the NVE energy drift per engine:",
        "",
        "| system | atoms | verdict | force RMSE, student frames (eV/Å) | "
        "drift ASE / OpenMM / LAMMPS (meV/atom/ps) |",
        "| --- | --- | --- | --- | --- |",
    ]
    speed = [
        "| system | atoms | teacher ms/step (ASE) | student ms/step ASE / OpenMM / LAMMPS | "
        "speed-up (best) |",
        "| --- | --- | --- | --- | --- |",
    ]
    systems = {"molecule": [], "liquid": []}
    for s in report["systems"]:
        if "error" in s:
            accuracy.append(f"| {s['name']} | | ERROR | {s['error']} | |")
            continue
        engines = s["engines"]
        drift = " / ".join(
            _fmt(engines.get(e, {}).get("energy_drift_meV_per_atom_ps")) for e in _ENGINES
        )
        rmse = s["force_error"]["student_frames"]["force_rmse_eV_per_A"]
        accuracy.append(f"| {s['name']} | {s['atoms']} | {s['verdict']} | {rmse:.3f} | {drift} |")
        student_ms = " / ".join(
            _fmt(engines.get(e, {}).get("latency_ms_median"), 1) for e in _ENGINES
        )
        best = max(e.get("speedup_vs_teacher") or 0 for e in engines.values())
        speed.append(
            f"| {s['name']} | {s['atoms']} | {s['teacher']['latency_ms_median']:.0f} | "
            f"{student_ms} | {best:.0f}× |"
        )
        if s["verdict"] == "PASS":
            systems.setdefault(s["kind"], []).append(s["name"])
    durations = [
        p["timestep_fs"] * p["nve_steps_by_engine"].get(e, p["nve_steps"])
        for p in (s["protocol"] for s in report["systems"] if "error" not in s)
        for e in p["engines"]
    ]
    if durations and max(durations) < 1000:
        low, high = min(durations), max(durations)
        span = f"{low:g}–{high:g}" if low < high else f"{high:g}"
        accuracy += [
            "",
            f"The drift is the slope of the total energy over each engine's NVE run, {span} fs "
            "here: under a picosecond it mostly measures the integrator's bounded oscillation, "
            "not a drift (`benchmarks/lammps_nve.py --model FILE` runs 10 ps).",
        ]
    temperature = report["systems"][0]["protocol"]["temperature_K"] if report["systems"] else None
    return accuracy, speed, {"passed": systems, "temperature_K": temperature}


_ENGINES = ("ase", "openmm", "lammps")


def _start_lines(init_from: str | None) -> list[str]:
    """Where the student's weights started, when not from a random initialisation."""
    if not init_from:
        return []
    return [
        f"- Fine-tuned from `{init_from}`: it started from that student's weights, "
        "elements, pair floors and normalisation, so it also carries what that student learnt "
        "from its own data (see its card); the frames above are only this run's."
    ]


def write_model_card(
    summary: dict[str, Any], config: dict[str, Any], path: Path, command: str
) -> Path:
    """Write the card of the run described by ``summary`` (see ``run_pipeline``);
    ``command`` is the one that reproduces the run."""
    from ..export import load_exported

    model = Path(summary["student"])
    _, meta = load_exported(model)
    test = summary["test"]
    sha = hashlib.sha256(model.read_bytes()).hexdigest()
    data_lines, elements = _dataset_facts(summary["dataset"])
    init_from = (config["student"].get("training") or {}).get("init_from")
    lines = [
        f"# {summary['name']}",
        "",
        f"A `{meta['preset']}` student ({meta['parameters']:,} parameters, {meta['dtype']}, "
        f"cutoff {meta['cutoff']} Å, interaction range {meta['interaction_range']} Å) distilled "
        f"from **{config['teacher']}**. File size {model.stat().st_size / 1e6:.1f} MB, "
        f"SHA-256 `{sha[:16]}…`. Elements it accepts: {' '.join(meta['elements'])}.",
        "",
        "```",
        f"pair_style mlff {model.name}            # LAMMPS (units metal or real)",
        f'create_system(topology, "{model.name}")  # OpenMM, mlff_distiller.engines.openmm',
        f'StudentCalculator("{model.name}")        # ASE',
        "```",
        "",
        "## Data",
        "",
        f"- Teacher: {config['teacher']} {config['teacher_kwargs'] or ''}".rstrip(),
        f"- Structure sources: {', '.join(config['structures']['sources'])}; sampling: "
        + "; ".join(
            ", ".join(f"{k} {v}" for k, v in step.items())
            for step in config["structures"].get("sampling") or []
        ),
        *data_lines,
        *_start_lines(init_from),
        "",
        "## Accuracy against the teacher",
        "",
        f"- Held-out {held_out_kind(test)} ({test['split']} split, "
        + (
            (
                "whole molecules this run did not train on; the student it was fine-tuned "
                "from may have"
                if init_from
                else "whole molecules never trained on"
            )
            if test.get("split_by", "group") == "group"
            else "random frames of molecules that are also in the training set"
        )
        + f", {test['frames']} frames): energy MAE "
        f"{test['energy_mae_meV_per_atom']:.1f} meV/atom, "
        f"force MAE {test['force_mae_eV_per_A']:.3f} eV/Å, force RMSE "
        f"{test['force_rmse_eV_per_A']:.3f} eV/Å.",
    ]
    for entry in summary["active_learning"]:
        errors = entry["on_trajectory"]["eval"]
        if errors["frames"]:
            temperature = config["active_learning"]["temperature_K"]
            lines.append(
                f"- Round {entry['round']} student on its own {temperature:.0f} K MD frames "
                f"({errors['frames']} random frames relabelled by the teacher): force RMSE "
                f"{errors['force_rmse_eV_per_A']:.3f} eV/Å."
            )
    validation = summary.get("validation")
    scope: dict[str, Any] = {}
    if validation:
        accuracy, speed, scope = _validation_lines(Path(validation["report_json"]))
        lines += accuracy
        lines += [
            "",
            "## Speed against the teacher",
            "",
            "Median ms per MD step, teacher and student timed in the same validation run on "
            "this project's 2-core CPU machine (no GPU):",
            "",
            *speed,
        ]
    untrained = ", ".join(sorted(set(meta["elements"]) - set(elements)))
    lines += ["", "## Validated range", ""]
    if scope:
        passed = scope["passed"]
        lines.append(
            f"- Passed the suite at {scope['temperature_K']:.0f} K: molecules "
            f"{', '.join(passed.get('molecule') or ['none'])}; liquids "
            f"{', '.join(passed.get('liquid') or ['none'])}."
        )
    lines += [
        f"- Trained elements: {', '.join(elements)}."
        + (
            ""
            if list(meta["elements"]) == elements
            else f" The file also accepts {untrained}; nothing about them was trained or checked."
        ),
        "- System types in the data: the structure sources above (isolated molecules; water "
        "boxes where listed). Anything else (surfaces, ions, reactions, other phases, other "
        "temperatures) is outside what was validated: run `mlff-distill validate` with your "
        "own suite before trusting it there.",
        "",
        "## Reproduce",
        "",
        "```bash",
        command,
        "```",
        "",
    ]
    return write_text(path, "\n".join(lines))
