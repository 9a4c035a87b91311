"""Isolated pairs of a student's elements pushed together: where each pair is attracted.

    .venv/bin/python benchmarks/close_pairs.py --model torchscript_exports/sevennet0-tiny.pt \
        [--model NAME=PATH ...] [--teacher sevennet-0] [--out benchmarks/results/close_pairs.json]

For every pair of the model's elements, two atoms alone in space at distances from 0.3 to
0.95 × the sum of their covalent radii (27 points): the largest force pulling them together
and where it is, and the depth of the deepest energy well inside 0.8 × (how far the energy
falls below its value at 0.8 ×, where a physical pair only climbs: bonds are ~1.0 × long).
A pair with a well there fuses once it gets that close. The ZBL core hands over to the
learned part between 0.4 and 0.7 × that sum (``models/radial.py``); no MD frame comes this
close, so the learned part is free there unless data pins it. Students with ``pair_floors``
(every student trained since 2026-12-03, and the shipped ones rebuilt with
``torchscript_exports/handover.py --pair-floors-from``) hand each pair over no closer than
their training data had it, so the learned part never sees that range.
``tests/unit/test_bad_inputs.py`` checks repulsion up to 0.6 × only; this maps the whole
range (near 0.95 × some attraction is chemistry: bonds start there), and out to 2.5 × where
each model binds the pair (a bond's well lies near 1.0–1.2 ×).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from ase import Atoms
from ase.data import atomic_numbers, covalent_radii

from mlff_distiller import StudentCalculator
from mlff_distiller.benchmarking import write_json
from mlff_distiller.export import load_exported
from mlff_distiller.files import write_text
from mlff_distiller.validation.contacts import pair_curve

REPO = Path(__file__).resolve().parents[1]
FRACTIONS = np.linspace(0.3, 0.95, 27)
#: Inside this fraction of the radii sum a physical pair's energy only rises.
WELL_EDGE = 0.8
#: Beyond the scan, out to 2.5 ×: where each model binds the pair (a bond's well is near
#: 1.0-1.2 ×), or where floors moved the handover to.
FAR = np.linspace(0.95, 2.5, 32)[1:]


def scan(path: Path, teacher: str | None = None) -> dict[str, dict[str, float]]:
    """``"A-B"`` → the largest attractive force (eV/Å) and the fraction of the radii sum
    where it is (NaN where the model never attracts the pair in the range), the depth of
    its energy well inside :data:`WELL_EDGE` × (eV, 0 without one) and where it bottoms,
    and how far its lowest energy out to 2.5 × lies below the energy at 2.5 × (eV) and
    where."""
    elements = load_exported(path)[1]["elements"]
    if teacher is None:
        calc = StudentCalculator(str(path))
    else:  # the teacher, on the pairs of this student's elements
        from mlff_distiller.teachers import get_teacher

        calc = get_teacher(teacher)
    direction = np.array([0.6, 0.8, 0.0])
    out = {}
    for a, first in enumerate(elements):
        for second in elements[a:]:
            rsum = covalent_radii[atomic_numbers[first]] + covalent_radii[atomic_numbers[second]]
            worst, where = 0.0, None
            energies = []
            for x in FRACTIONS:
                atoms = Atoms([first, second], positions=[[0, 0, 0], x * rsum * direction])
                atoms.calc = calc
                pull = -float(atoms.get_forces()[1] @ direction)  # > 0: pulled together
                energies.append(atoms.get_potential_energy())
                if pull > worst:
                    worst, where = pull, float(x)
            inside = FRACTIONS <= WELL_EDGE + 1e-9
            well = np.asarray(energies)[inside]
            depth = float(well[-1] - well.min())
            curve = np.concatenate([energies, pair_curve(calc, first, second, FAR)])
            grid = np.concatenate([FRACTIONS, FAR])
            out[f"{first}-{second}"] = {
                "attraction_eV_per_A": worst,
                "at_fraction": float("nan") if where is None else where,
                "core_well_eV": depth,
                "well_at_fraction": float(FRACTIONS[inside][well.argmin()]),
                "binding_eV": float(curve[-1] - curve.min()),
                "binding_at_fraction": float(grid[curve.argmin()]),
            }
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", action="append", required=True, metavar="[NAME=]PATH")
    parser.add_argument(
        "--teacher",
        help="also scan this teacher (e.g. sevennet-0) on the pairs of the first model's elements",
    )
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks/results/close_pairs.json")
    args = parser.parse_args()
    results = {}
    for spec in args.model:
        name, _, path = spec.rpartition("=")
        results[name or Path(path).stem] = scan(Path(path))
    if args.teacher:
        first = Path(args.model[0].rpartition("=")[2])
        results[f"teacher {args.teacher}"] = scan(first, teacher=args.teacher)
    write_json(args.out, {"fractions": [0.3, 0.95, len(FRACTIONS)], "models": results})
    lines = [
        "| model | pair | largest attraction (eV/Å) | at × radii sum | well inside 0.8 × (eV) "
        "| bottom at × | lowest point out to 2.5 × (eV below E(2.5 ×)) | at × |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for name, pairs in results.items():
        for pair, r in sorted(pairs.items(), key=lambda kv: -kv[1]["attraction_eV_per_A"]):
            lines.append(
                f"| {name} | {pair} | {r['attraction_eV_per_A']:.1f} | {r['at_fraction']:.2f} "
                f"| {r['core_well_eV']:.2f} | {r['well_at_fraction']:.2f} "
                f"| {r['binding_eV']:.2f} | {r['binding_at_fraction']:.2f} |"
            )
    text = "\n".join(lines) + "\n"
    write_text(args.out.with_suffix(".md"), text)
    print(text)


if __name__ == "__main__":
    main()
