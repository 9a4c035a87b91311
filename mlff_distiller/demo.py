"""The main job on the built-in default (``mlff-distill demo``).

Runs what exists end to end: build the built-in organic set and a small water box, sample
displaced configurations, label them with the default teacher (SevenNet-0, offline), train a
``tiny`` student on a molecule-grouped split, and compare the student with the teacher on
held-out molecules (accuracy) and on the same structures (speed), through the exported
TorchScript file. LAMMPS and the validation suite join this job as they land.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from .data import build_structures, label, read_dataset
from .teachers import DEFAULT_TEACHER, get_teacher
from .timing import latency_ms

#: The demo's structure recipe (see :mod:`mlff_distiller.data.recipe`).
DEMO_RECIPE = {
    "sources": ["builtin:organic", "builtin:water-32"],
    "conformers": 2,
    "seed": 0,
    "sampling": [
        {"method": "perturb", "n_samples": 3, "amplitude": 0.04},
        {"method": "rattle_strain", "n_samples": 4, "rattle": 0.03, "max_strain": 0.02},
    ],
}
QUICK_RECIPE = {
    "sources": ["smiles:O,CCO,c1ccccc1O,CN,CC(=O)O", "builtin:water-32"],
    "conformers": 1,
    "seed": 0,
    "sampling": [{"method": "perturb", "n_samples": 2, "amplitude": 0.04}],
}
DEMO_EPOCHS = 60
QUICK_EPOCHS = 3


def run_demo(out_dir: Path, quick: bool = False) -> Path:
    """Label, train and compare; everything goes under ``out_dir``. Rerunning resumes."""
    from . import StudentCalculator
    from .training import train

    out_dir.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    teacher = get_teacher(DEFAULT_TEACHER)
    structures = build_structures(QUICK_RECIPE if quick else DEMO_RECIPE, teacher)
    print(f"demo: {len(structures)} structures; labeling with {DEFAULT_TEACHER}", flush=True)
    dataset = label(structures, teacher, out_dir / "dataset.h5")

    print("demo: training a tiny student (molecule-grouped train/val/test split)", flush=True)
    run = out_dir / "student"
    best = train(dataset, "tiny", run, epochs=QUICK_EPOCHS if quick else DEMO_EPOCHS)
    report = json.loads((run / "test_report.json").read_text())

    from .export import export

    model_file = export(best, out_dir / "student.pt", dtype="float32")
    student = StudentCalculator(model_file)
    frames = read_dataset(dataset)
    probes = [f for f in frames if not f.pbc.any() and "sampling" not in f.info][:3]
    for atoms in probes:
        atoms.calc = None
    student_ms = latency_ms(student, probes, repeats=20)
    teacher_ms = latency_ms(teacher, probes, repeats=3)
    summary = {
        "dataset": str(dataset),
        "checkpoint": str(best),
        "model_file": str(model_file),
        "test": {k: report[k] for k in report if k != "per_element"},
        "latency_ms_median": {"student": student_ms, "teacher": teacher_ms},
        "speedup_vs_teacher": teacher_ms / student_ms,
        "seconds": time.perf_counter() - start,
    }
    (out_dir / "summary.json").write_text(json.dumps(summary, indent=2))
    print(
        f"demo: done in {summary['seconds']:.0f} s\n"
        f"  dataset:    {dataset}\n"
        f"  student:    {model_file} (TorchScript, float32; checkpoint {best})\n"
        f"  accuracy:   {report['split']} molecules ({report['frames']} frames): "
        f"energy MAE {report['energy_mae_meV_per_atom']:.1f} meV/atom, "
        f"force RMSE {report['force_rmse_eV_per_A']:.3f} eV/Å (parity plot {run / 'parity.png'})\n"
        f"  speed:      student {student_ms:.1f} ms vs teacher {teacher_ms:.1f} ms per call "
        f"(x{teacher_ms / student_ms:.0f}, ASE, same molecules)\n"
        f"  summary:    {out_dir / 'summary.json'}\n"
        f"  OpenMM:     .venv/bin/python engines/openmm/run_student.py {model_file} <structure>\n"
        "  next:       LAMMPS and the validation suite arrive with the following releases"
    )
    return best
