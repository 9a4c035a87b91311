"""How closely students reproduce their teacher, on data they never trained on.

Run from the repo root (one heavy job at a time on a small machine)::

    .venv/bin/python benchmarks/fidelity.py                       # the shipped students
    .venv/bin/python benchmarks/fidelity.py --model mine=runs/x/student.pt --model ...

Per student, against SevenNet-0 (the teacher of the shipped students):

- **(a) held-out frames**: teacher Langevin MD at 300 K and 500 K of molecules the shipped
  students trained on (the built-in organic set and water), drawn with seeds no training set
  uses, so the frames themselves are held out;
- **(b) never-seen molecules**: teacher MD at 300 K of molecules outside the built-in set;
- **(c) the student's own MD**: 300 K Langevin MD with the student (the ``standard`` suite's
  systems), frames relabelled by the teacher; a trajectory that blows up is cut where it did
  and says so;
- **vibrations**: harmonic frequencies of ethanol and paracetamol, each model at its own
  minimum, mean absolute deviation from the teacher's (cm⁻¹);
- **torsion**: a rigid scan of alanine dipeptide's φ and of ethanol's C–C–O–H dihedral,
  RMSE of the relative energies (meV) where the teacher is within 0.5 eV of its minimum;
- **compression**: 32 waters squeezed to 1-0.85 of their edge with every molecule whole
  (``validation.compression``): the student's pressure against the teacher's, worst relative
  error and the pressures at 0.85 (GPa);
- **cost**: median ``get_forces`` time per atom through ASE (µs/atom-call) on 32 waters and
  paracetamol, the teacher timed in the same run.

Everything the teacher computes is cached under ``--work`` (labels resumable, files written
atomically), so a rerun or another student costs only the student's part. Results:
``benchmarks/results/fidelity.{json,md,png}``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import ase.io
import numpy as np
import torch
from ase import Atoms, units
from ase.md.langevin import Langevin
from ase.md.velocitydistribution import Stationary, ZeroRotation, thermalize_momenta
from ase.optimize import BFGS

from mlff_distiller import StudentCalculator, __version__
from mlff_distiller.benchmarking import frame_errors, write_json
from mlff_distiller.data import label, load_source, md_sampling, read_dataset
from mlff_distiller.data.sampling import hessian
from mlff_distiller.files import atomic_path, write_text
from mlff_distiller.teachers import get_teacher
from mlff_distiller.validation.compression import compression_curve

RESULTS = Path(__file__).parent / "results"
SHIPPED = Path(__file__).parent.parent / "torchscript_exports"

#: Molecules of the built-in organic set (which the shipped students trained on) and water.
TRAINING_SYSTEMS = {
    "ethanol": "smiles:CCO",
    "paracetamol": "smiles:CC(=O)Nc1ccc(O)cc1",
    "caffeine": "smiles:Cn1cnc2c1c(=O)n(C)c(=O)n2C",
    "alanine-dipeptide": "smiles:CC(=O)N[C@@H](C)C(=O)NC",
    "aspirin": "smiles:CC(=O)Oc1ccccc1C(=O)O",
    "water-32": "builtin:water-32",
}
#: Molecules outside the built-in organic set (H, C, N, O, F, S, Cl only).
UNSEEN_SYSTEMS = {
    "toluene": "smiles:Cc1ccccc1",
    "phenol": "smiles:Oc1ccccc1",
    "acetone": "smiles:CC(C)=O",
    "2-propanol": "smiles:CC(C)O",
    "acetonitrile": "smiles:CC#N",
    "furan": "smiles:c1ccoc1",
    "morpholine": "smiles:C1COCCN1",
    "methyl-acetate": "smiles:COC(C)=O",
    "benzoic-acid": "smiles:OC(=O)c1ccccc1",
    "ace-val-nme": "smiles:CC(=O)N[C@@H](C(C)C)C(=O)NC",
    "thioanisole": "smiles:CSc1ccccc1",
    "2-chloroethanol": "smiles:OCCCl",
    "trifluoroacetamide": "smiles:NC(=O)C(F)(F)F",
    "imidazole": "smiles:c1cnc[nH]1",
}
#: The ``standard`` validation suite's systems: where the student runs its own MD.
OWN_MD_SYSTEMS = ("ethanol", "paracetamol", "alanine-dipeptide", "caffeine", "water-32")
VIBRATION_SYSTEMS = ("ethanol", "paracetamol")
#: Dihedrals (atom indices in the RDKit embedding of the SMILES) scanned rigidly.
TORSIONS = {
    # C(=O)-N-CA-C of the capped alanine: phi. Atoms: 0 C, 1 C(=O), 2 O, 3 N, 4 CA, 5 CB,
    # 6 C(=O), 7 O, 8 N, 9 C (heavy atoms in SMILES order, hydrogens after).
    "alanine-dipeptide-phi": ("alanine-dipeptide", (1, 3, 4, 6)),
    "ethanol-ccoh": ("ethanol", (0, 1, 2, 8)),
}
MIN_DISTANCE_A = 0.5


def _structure(spec: str, seed: int = 0) -> Atoms:
    atoms = load_source(spec, n_conformers=1, seed=seed)[0]
    atoms.info.pop("sampling", None)
    return atoms


def _cached_frames(path: Path, make) -> list[Atoms]:
    """Frames from ``path`` if it is there, else ``make()`` written atomically first."""
    if path.is_file():
        return ase.io.read(path, index=":")
    frames = make()
    with atomic_path(path) as tmp:
        ase.io.write(tmp, frames, format="extxyz")
    return frames


def teacher_md_set(
    work: Path, teacher, systems: dict[str, str], temperature: float, frames: int, seed: int
) -> Path:
    """Teacher MD frames of every system at ``temperature``, labelled by the teacher."""
    structures: list[Atoms] = []
    for name, spec in systems.items():
        periodic = spec.startswith("builtin:water")
        n = max(frames // 3, 4) if periodic else frames

        def make(name=name, spec=spec, n=n):
            start = _structure(spec)
            out = md_sampling(
                [start], teacher, n_frames=n, temperature_K=temperature,
                every=20, equilibration_steps=200, friction_per_fs=0.02, seed=seed,
            )  # fmt: skip
            for atoms in out:
                atoms.info["system"] = name
            return out

        cache = work / "frames" / f"teacher_{name}_{int(temperature)}K_s{seed}.extxyz"
        structures += _cached_frames(cache, make)
    path = work / f"teacher_md_{'_'.join(sorted(systems))[:40]}_{int(temperature)}K_s{seed}.h5"
    return label(structures, teacher, path, progress=False)


def set_specs(frames: int) -> dict[str, tuple]:
    """The teacher MD sets (systems, temperature, frames per system, seed) for ``--frames``."""
    return {
        "heldout_300K": (TRAINING_SYSTEMS, 300.0, frames, 9001),
        "heldout_500K": (TRAINING_SYSTEMS, 500.0, frames, 9002),
        "unseen_300K": (UNSEEN_SYSTEMS, 300.0, max(frames // 2, 1), 9003),
    }


def student_md_frames(
    calc, spec: str, steps: int, every: int, temperature: float, seed: int
) -> tuple[list[Atoms], dict]:
    """300 K Langevin MD with the student; frames every ``every`` steps after a fifth of the
    run. Stops where two atoms come closer than :data:`MIN_DISTANCE_A` or a force is not
    finite, and says so."""
    atoms = _structure(spec)
    atoms.calc = calc
    rng = np.random.default_rng(seed)
    thermalize_momenta(atoms, temperature_K=temperature, rng=rng)
    Stationary(atoms)
    if not atoms.pbc.any():
        ZeroRotation(atoms)
    dyn = Langevin(
        atoms, timestep=0.5 * units.fs, temperature_K=temperature,
        friction=0.02 / units.fs, fixcm=False, rng=rng,
    )  # fmt: skip
    frames: list[Atoms] = []
    temperatures: list[float] = []
    status = {"steps_run": 0, "stable": True}
    start = steps // 5
    for step in range(every, steps + 1, every):
        dyn.run(every)
        status["steps_run"] = step
        distances = atoms.get_all_distances(mic=bool(atoms.pbc.any()))
        np.fill_diagonal(distances, np.inf)
        if not np.isfinite(atoms.get_forces()).all() or distances.min() < MIN_DISTANCE_A:
            status["stable"] = False
            break
        temperatures.append(float(atoms.get_temperature()))
        if step > start:
            frame = atoms.copy()
            frame.calc = None
            frames.append(frame)
    status["mean_temperature_K"] = float(np.mean(temperatures)) if temperatures else None
    return frames, status


def errors_by_system(calc, frames: list[Atoms]) -> dict[str, dict[str, float]]:
    names = sorted({f.info.get("system", "?") for f in frames})
    return {
        n: frame_errors(calc, [f for f in frames if f.info.get("system", "?") == n]) for n in names
    }


def frequencies_cm(atoms: Atoms, calc) -> np.ndarray:
    """Harmonic frequencies (cm⁻¹, imaginary as negative) at ``calc``'s minimum near
    ``atoms``, the 6 rigid-body modes removed."""
    work = atoms.copy()
    work.calc = calc
    BFGS(work, logfile=None).run(fmax=1e-3, steps=500)
    masses = np.repeat(work.get_masses(), 3)
    mw = hessian(work, calc, delta=0.005) / np.sqrt(np.outer(masses, masses))
    eigvals = np.sort(np.linalg.eigvalsh(mw))
    # sqrt(eV/Å²/amu) → cm⁻¹
    to_cm = units.s / (2 * np.pi * units._c * 100)
    freqs = np.sign(eigvals) * np.sqrt(np.abs(eigvals)) * to_cm
    order = np.argsort(np.abs(freqs))
    return np.sort(freqs[order[6:]])


def torsion_scan(atoms: Atoms, calc, dihedral: tuple[int, int, int, int], points: int):
    """Energies (eV) of a rigid scan of ``dihedral`` over 360° (the side of the last atom
    rotates)."""
    from ase.neighborlist import build_neighbor_list

    a, b, c, d = dihedral
    nl = build_neighbor_list(atoms, self_interaction=False, bothways=True)
    # Atoms on d's side of the b–c bond: graph search from c without crossing to b.
    side, stack = {c}, [c]
    while stack:
        k = stack.pop()
        for m in nl.get_neighbors(k)[0]:
            if m != b and m not in side:
                side.add(m)
                stack.append(m)
    mask = [k in side and k != c for k in range(len(atoms))]
    angles = np.linspace(-180.0, 180.0, points, endpoint=False)
    energies = []
    for angle in angles:
        work = atoms.copy()
        work.set_dihedral(a, b, c, d, angle, mask=mask)
        work.calc = calc
        energies.append(work.get_potential_energy())
    return angles, np.array(energies)


def _relative_rmse_meV(student: np.ndarray, teacher: np.ndarray, window_eV: float = 0.5) -> float:
    """RMSE of the scan's energies relative to their mean, over the angles where the
    teacher is within ``window_eV`` of its minimum (a rigid scan also passes through
    clashes no MD visits)."""
    keep = teacher - teacher.min() < window_eV
    ds = (student[keep] - student[keep].mean()) - (teacher[keep] - teacher[keep].mean())
    return float(1e3 * np.sqrt(np.mean(ds**2)))


def cost_us_per_atom(calc, atoms: Atoms, calls: int) -> float:
    """Median µs per atom of a ``get_forces`` call; an atom moves before every call."""
    work = atoms.copy()
    work.calc = calc
    work.get_forces()
    times = []
    for k in range(calls):
        work.positions[k % len(work), 0] += 1e-3
        start = time.perf_counter()
        work.get_forces()
        times.append(time.perf_counter() - start)
    return 1e6 * statistics.median(times) / len(work)


def teacher_references(work: Path, teacher, points: int) -> dict:
    """Vibrational frequencies and torsion scans of the teacher (cached in ``work``)."""
    path = work / "teacher_references.json"
    if path.is_file():
        return json.loads(path.read_text())
    refs = {"frequencies_cm": {}, "torsions": {}}
    for name in VIBRATION_SYSTEMS:
        refs["frequencies_cm"][name] = frequencies_cm(
            _structure(TRAINING_SYSTEMS[name]), teacher
        ).tolist()
    for name, (system, dihedral) in TORSIONS.items():
        angles, energies = torsion_scan(
            _structure(TRAINING_SYSTEMS[system]), teacher, dihedral, points
        )
        refs["torsions"][name] = {"angles": angles.tolist(), "energies_eV": energies.tolist()}
    write_json(path, refs)
    return refs


def evaluate_student(name: str, path: Path, teacher, sets: dict, refs: dict, args) -> dict:
    calc = StudentCalculator(path)
    result: dict = {"name": name, "path": str(path)}
    for key in ("heldout_300K", "heldout_500K", "unseen_300K"):
        frames = sets[key]
        result[key] = {"all": frame_errors(calc, frames), "systems": errors_by_system(calc, frames)}
        print(f"{name} {key}: {result[key]['all']}", flush=True)

    own_frames: list[Atoms] = []
    own_status = {}
    for system in OWN_MD_SYSTEMS:
        spec = TRAINING_SYSTEMS[system]
        periodic = spec.startswith("builtin:water")
        steps = args.own_steps // 4 if periodic else args.own_steps
        frames, status = student_md_frames(
            calc, spec, steps, max(steps // args.own_frames, 1), 300.0, seed=7
        )
        for f in frames:
            f.info["system"] = system
        own_frames += frames
        own_status[system] = status
    # The student may have changed since the last run: always label its frames anew.
    own_path = args.work / f"own_{name}.h5"
    labelled = read_dataset(label(own_frames, teacher, own_path, overwrite=True, progress=False))
    result["own_md_300K"] = {
        "all": frame_errors(calc, labelled),
        "systems": errors_by_system(calc, labelled),
        "runs": own_status,
    }
    print(f"{name} own MD: {result['own_md_300K']['all']}", flush=True)

    result["vibrations"] = {}
    for system in VIBRATION_SYSTEMS:
        student = frequencies_cm(_structure(TRAINING_SYSTEMS[system]), calc)
        reference = np.array(refs["frequencies_cm"][system])
        result["vibrations"][system] = {
            "mad_cm": float(np.mean(np.abs(student - reference))),
            "max_abs_cm": float(np.max(np.abs(student - reference))),
            "frequencies_cm": student.tolist(),
        }
    result["torsions"] = {}
    for torsion, (system, dihedral) in TORSIONS.items():
        _, energies = torsion_scan(
            _structure(TRAINING_SYSTEMS[system]), calc, dihedral, args.torsion_points
        )
        reference = np.array(refs["torsions"][torsion]["energies_eV"])
        result["torsions"][torsion] = {
            "rmse_meV": _relative_rmse_meV(energies, reference),
            "energies_eV": energies.tolist(),
        }
    result["compression"] = compression_curve(
        calc, teacher, _structure(TRAINING_SYSTEMS["water-32"])
    )
    result["cost_us_per_atom_call"] = {
        system: cost_us_per_atom(calc, _structure(TRAINING_SYSTEMS[system]), args.calls)
        for system in ("paracetamol", "water-32")
    }
    print(f"{name}: vibrations {result['vibrations']}, torsions "
          f"{ {k: v['rmse_meV'] for k, v in result['torsions'].items()} }", flush=True)  # fmt: skip
    return result


def _cell(block: dict) -> str:
    return (
        f"{block['force_rmse_eV_per_A']:.3f} eV/Å, {block['energy_mae_meV_per_atom']:.1f} meV/atom"
    )


def _squeezed(curve: dict | None) -> str:
    if not curve:
        return "not measured"
    return (
        f"{curve['worst_rel']:.2f}; {curve['student_GPa'][-1]:.1f} ({curve['teacher_GPa'][-1]:.1f})"
    )


def table(payload: dict) -> str:
    header = [
        "student",
        "(a) 300 K frames",
        "(a) 500 K frames",
        "(b) unseen molecules",
        "(c) own MD: worst system; all",
        "vib. MAD ethanol / paracetamol (cm⁻¹)",
        "torsion RMSE φ / CCOH (meV)",
        "32 waters squeezed: worst rel. pressure error; GPa at 0.85 (teacher)",
        "µs/atom-call water-32 (teacher)",
    ]
    lines = ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
    teacher_cost = payload["teacher_cost_us_per_atom_call"]["water-32"]
    for r in payload["results"]:
        own = r["own_md_300K"]["systems"]
        worst = max(own, key=lambda s: own[s].get("force_rmse_eV_per_A", np.inf))
        vib = r["vibrations"]
        tors = r["torsions"]
        cells = [
            r["name"],
            _cell(r["heldout_300K"]["all"]),
            _cell(r["heldout_500K"]["all"]),
            _cell(r["unseen_300K"]["all"]),
            f"{own[worst]['force_rmse_eV_per_A']:.3f} ({worst}); "
            f"{r['own_md_300K']['all']['force_rmse_eV_per_A']:.3f}",
            f"{vib['ethanol']['mad_cm']:.0f} / {vib['paracetamol']['mad_cm']:.0f}",
            f"{tors['alanine-dipeptide-phi']['rmse_meV']:.1f} / "
            f"{tors['ethanol-ccoh']['rmse_meV']:.1f}",
            _squeezed(r.get("compression")),
            f"{r['cost_us_per_atom_call']['water-32']:.1f} ({teacher_cost:.0f})",
        ]
        lines.append("| " + " | ".join(cells) + " |")
    lines.append("")
    lines.append("Force RMSE on the student's own 300 K MD frames, per system (eV/Å):")
    lines.append("")
    lines.append("| student | " + " | ".join(OWN_MD_SYSTEMS) + " |")
    lines.append("| --- |" + " --- |" * len(OWN_MD_SYSTEMS))
    for r in payload["results"]:
        own = r["own_md_300K"]
        cells = []
        for s in OWN_MD_SYSTEMS:
            block = own["systems"].get(s, {})
            text = f"{block['force_rmse_eV_per_A']:.3f}" if block.get("frames") else "no frames"
            if not own["runs"][s]["stable"]:
                text += f" (unstable at step {own['runs'][s]['steps_run']})"
            cells.append(text)
        lines.append(f"| {r['name']} | " + " | ".join(cells) + " |")
    lines.append("")
    lines.append("Force RMSE on teacher MD of the molecules never trained on, per molecule (eV/Å):")
    lines.append("")
    unseen = list(UNSEEN_SYSTEMS)
    lines.append("| student | " + " | ".join(unseen) + " |")
    lines.append("| --- |" + " --- |" * len(unseen))
    for r in payload["results"]:
        blocks = r["unseen_300K"]["systems"]
        cells = [f"{blocks[m]['force_rmse_eV_per_A']:.3f}" if m in blocks else "–" for m in unseen]
        lines.append(f"| {r['name']} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def plot(payload: dict, path: Path) -> None:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(11, 4.2))
    FigureCanvasAgg(fig)
    ax, ax2 = fig.subplots(1, 2)
    keys = [("heldout_300K", "(a) 300 K"), ("heldout_500K", "(a) 500 K"),
            ("unseen_300K", "(b) unseen"), ("own_md_300K", "(c) own MD")]  # fmt: skip
    width = 0.8 / max(len(payload["results"]), 1)
    for k, r in enumerate(payload["results"]):
        values = [r[key]["all"]["force_rmse_eV_per_A"] for key, _ in keys]
        ax.bar(np.arange(len(keys)) + k * width, values, width, label=r["name"])
    ax.set_xticks(np.arange(len(keys)) + 0.4 - width / 2, [label for _, label in keys])
    ax.set_ylabel("force RMSE vs teacher (eV/Å)")
    ax.legend(fontsize=8)
    ref = payload["teacher_references"]["torsions"]["alanine-dipeptide-phi"]
    e = np.array(ref["energies_eV"])
    ax2.plot(ref["angles"], 1e3 * (e - e.min()), "k-", lw=2, label="teacher")
    keep = e - e.min() < 0.5  # aligned where the RMSE is taken (see _relative_rmse_meV)
    for r in payload["results"]:
        s = np.array(r["torsions"]["alanine-dipeptide-phi"]["energies_eV"])
        shift = e[keep].mean() - s[keep].mean()
        ax2.plot(ref["angles"], 1e3 * (s + shift - e.min()), label=r["name"])
    ax2.set_xlabel("alanine dipeptide φ (degrees, rigid scan)")
    ax2.set_ylabel("energy (meV)")
    ax2.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--model", action="append", default=None, metavar="NAME=PATH",
        help="a student to measure (repeatable); default: the shipped students",
    )  # fmt: skip
    parser.add_argument("--frames", type=int, default=12, help="teacher MD frames per molecule")
    parser.add_argument("--own-steps", type=int, default=2000, help="student MD steps (0.5 fs)")
    parser.add_argument("--own-frames", type=int, default=20, help="frames kept per own run")
    parser.add_argument("--torsion-points", type=int, default=24)
    parser.add_argument("--calls", type=int, default=30)
    parser.add_argument("--work", type=Path, default=Path("runs/fidelity"))
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--name", default="fidelity", help="stem of the result files")
    args = parser.parse_args()
    models = args.model or [f"{p.stem}={p}" for p in sorted(SHIPPED.glob("sevennet0-*.pt"))]
    parsed = []
    for spec in models:
        name, sep, path = spec.partition("=")
        if not sep or not Path(path).is_file():
            parser.error(f"--model {spec!r}: give NAME=PATH of an exported student or checkpoint")
        parsed.append((name, Path(path)))
    args.work.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "0")) or torch.get_num_threads())

    started = time.time()
    teacher = get_teacher("sevennet-0")
    sets = {
        key: teacher_md_set(args.work, teacher, *spec)
        for key, spec in set_specs(args.frames).items()
    }
    frames = {key: read_dataset(path) for key, path in sets.items()}
    refs = teacher_references(args.work, teacher, args.torsion_points)
    teacher_cost = {
        system: cost_us_per_atom(teacher, _structure(TRAINING_SYSTEMS[system]), 5)
        for system in ("paracetamol", "water-32")
    }
    results = [evaluate_student(n, p, teacher, frames, refs, args) for n, p in parsed]
    payload = {
        "benchmark": "fidelity",
        "teacher": "sevennet-0",
        "data": {key: len(value) for key, value in frames.items()},
        "training_systems": TRAINING_SYSTEMS,
        "unseen_systems": UNSEEN_SYSTEMS,
        "teacher_references": refs,
        "teacher_cost_us_per_atom_call": teacher_cost,
        "results": results,
        "seconds": time.time() - started,
        "machine": {"cpu_count": os.cpu_count(), "platform": platform.platform()},
        "versions": {"mlff_distiller": __version__, "torch": torch.__version__},
        "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
    }
    args.out.mkdir(parents=True, exist_ok=True)
    write_json(args.out / f"{args.name}.json", payload)
    text = table(payload)
    write_text(
        args.out / f"{args.name}.md",
        f"# Fidelity against SevenNet-0\n\n`{payload['command']}`\n\n{text}",
    )
    plot(payload, args.out / f"{args.name}.png")
    print(text)


if __name__ == "__main__":
    main()
