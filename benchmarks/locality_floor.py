"""How well can any strictly local student match its teacher? The error floor set by the
cutoff, measured on the teacher itself.

Run from the repo root (one heavy job at a time on a small machine)::

    .venv/bin/python benchmarks/locality_floor.py                  # cutoffs 4, 5, 6 Å
    .venv/bin/python benchmarks/locality_floor.py --cutoffs 5 6 7 --sigmas 0.05

A student whose interaction range is ``r_c`` predicts the force on atom ``i`` from the
atoms within ``r_c`` of ``i`` alone. SevenNet-0 passes messages over five layers of 5 Å, so
its force on ``i`` also depends on atoms farther away. Hold every atom within ``r_c`` of
``i`` fixed, displace the others (Gaussian, ``sigma`` Å per Cartesian component), and the
teacher's force on ``i`` changes: the spread of those forces is an error no student of range
``r_c`` can avoid, whatever its descriptor, size or data. Reported per cutoff and ``sigma``
as an RMS over atoms and components of that spread (eV/Å), system by system.

It is a lower bound of the floor in MD: thermal motion at 300 K moves soft coordinates
(torsions, water's hydrogen bonds) farther than a small Gaussian displacement does, and
whole groups move together.

Frames: 300 K Langevin MD driven by the shipped ``tiny`` student (cheap; only the geometry
is used), a few frames per system, seeded. Results:
``benchmarks/results/locality_floor.{json,md}``.
"""

from __future__ import annotations

import argparse
import platform
import time
from pathlib import Path

import numpy as np
import torch
from ase import Atoms, units
from ase.md.langevin import Langevin
from ase.md.velocitydistribution import Stationary, ZeroRotation, thermalize_momenta
from fidelity import TRAINING_SYSTEMS as SYSTEMS  # the standard suite's kind of systems

from mlff_distiller import StudentCalculator, __version__
from mlff_distiller.benchmarking import write_json
from mlff_distiller.data import load_source
from mlff_distiller.teachers import get_teacher

RESULTS = Path(__file__).parent / "results"
DRIVER = Path(__file__).parent.parent / "torchscript_exports" / "sevennet0-tiny.pt"


def md_frames(spec: str, n_frames: int, every: int, seed: int) -> list[Atoms]:
    """``n_frames`` frames of 300 K Langevin MD with the shipped ``tiny``, ``every`` steps
    apart after ``every`` steps of equilibration."""
    atoms = load_source(spec, n_conformers=1, seed=seed)[0]
    atoms.calc = StudentCalculator(DRIVER)
    rng = np.random.default_rng(seed)
    thermalize_momenta(atoms, temperature_K=300.0, rng=rng)
    Stationary(atoms)
    if not atoms.pbc.any():
        ZeroRotation(atoms)
    dyn = Langevin(
        atoms, timestep=0.5 * units.fs, temperature_K=300.0, friction=0.02 / units.fs,
        fixcm=False, rng=rng,
    )  # fmt: skip
    dyn.run(every)
    frames = []
    for _ in range(n_frames):
        dyn.run(every)
        frame = Atoms(atoms.numbers, atoms.positions, cell=atoms.cell, pbc=atoms.pbc)
        frames.append(frame)
    return frames


def distances_from(atoms: Atoms, i: int) -> np.ndarray:
    """Distances (Å) of every atom from atom ``i``, minimum image where periodic."""
    return atoms.get_distances(i, np.arange(len(atoms)), mic=bool(atoms.pbc.any()))


def spread(teacher, frame: Atoms, centre: int, cutoff: float, sigma: float, samples: int, rng):
    """Per-component variance (ddof 1) of the teacher's force on ``centre`` over ``samples``
    configurations that share every atom within ``cutoff`` of it; ``None`` where no atom
    lies outside."""
    outside = distances_from(frame, centre) > cutoff
    if not outside.any():
        return None
    forces = []
    for _ in range(samples):
        work = frame.copy()
        positions = work.positions.copy()
        positions[outside] += rng.normal(0.0, sigma, size=(int(outside.sum()), 3))
        work.positions = positions
        work.calc = teacher
        forces.append(work.get_forces()[centre])
    return np.var(np.array(forces), axis=0, ddof=1)


def table(payload: dict) -> str:
    cutoffs = payload["options"]["cutoffs"]
    lines = []
    for sigma in payload["options"]["sigmas"]:
        lines += [
            f"Displacement sigma {sigma:g} Å beyond the cutoff: RMS spread of the teacher's "
            "force on the centre atom (eV/Å)",
            "",
            "| system | atoms | " + " | ".join(f"r_c = {c:g} Å" for c in cutoffs) + " |",
            "| --- | --- | " + " | ".join("---" for _ in cutoffs) + " |",
        ]
        for name, result in payload["systems"].items():
            cells = []
            for c in cutoffs:
                value = result["floor"][f"{sigma:g}"][f"{c:g}"]
                cells.append("—" if value is None else f"{value:.4f}")
            lines.append(f"| {name} | {result['atoms']} | " + " | ".join(cells) + " |")
        lines.append("")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cutoffs", type=float, nargs="+", default=[4.0, 5.0, 6.0])
    parser.add_argument("--sigmas", type=float, nargs="+", default=[0.05, 0.1])
    parser.add_argument("--frames", type=int, default=2, help="MD frames per system")
    parser.add_argument("--centres", type=int, default=6, help="atoms per frame")
    parser.add_argument("--samples", type=int, default=6, help="configurations per centre")
    parser.add_argument("--systems", nargs="+", default=list(SYSTEMS), choices=list(SYSTEMS))
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    torch.set_num_threads(1)
    start = time.perf_counter()
    teacher = get_teacher("sevennet-0")
    rng = np.random.default_rng(0)
    systems = {}
    for k, name in enumerate(args.systems):
        frames = md_frames(SYSTEMS[name], args.frames, every=200, seed=100 + k)
        floor: dict[str, dict[str, float | None]] = {}
        for sigma in args.sigmas:
            floor[f"{sigma:g}"] = {}
            for cutoff in args.cutoffs:
                variances = []
                for frame in frames:
                    size = min(args.centres, len(frame))
                    centres = rng.choice(len(frame), size=size, replace=False)
                    for centre in centres:
                        v = spread(teacher, frame, int(centre), cutoff, sigma, args.samples, rng)
                        # An atom with nothing beyond the cutoff has no floor: count it as 0.
                        variances.append(np.zeros(3) if v is None else v)
                floor[f"{sigma:g}"][f"{cutoff:g}"] = float(np.sqrt(np.mean(variances)))
        systems[name] = {"atoms": len(frames[0]), "floor": floor}
        print(name, floor, flush=True)
    payload = {
        "benchmark": "locality_floor",
        "version": __version__,
        "machine": platform.processor() or platform.machine(),
        "teacher": "sevennet-0",
        "options": {
            "cutoffs": args.cutoffs,
            "sigmas": args.sigmas,
            "frames": args.frames,
            "centres": args.centres,
            "samples": args.samples,
        },
        "seconds": round(time.perf_counter() - start, 1),
        "systems": systems,
    }
    write_json(args.out / "locality_floor.json", payload)
    (args.out / "locality_floor.md").write_text(table(payload))
    print(table(payload))


if __name__ == "__main__":
    main()
