"""Isolated pairs of a student's elements pushed together: where each pair is attracted.

    .venv/bin/python benchmarks/close_pairs.py --model torchscript_exports/sevennet0-tiny.pt \
        [--model NAME=PATH ...] [--out benchmarks/results/close_pairs.json]

For every pair of the model's elements, two atoms alone in space at distances from 0.3 to
0.95 × the sum of their covalent radii (27 points): the largest force pulling them together
and where it is. The ZBL core hands over to the learned part between 0.4 and 0.7 × that sum
(``models/radial.py``); no MD frame comes this close, so the learned part is free there
unless data pins it. ``tests/unit/test_bad_inputs.py`` checks repulsion up to 0.6 × only;
this maps the whole range. (Near 0.95 × some attraction is chemistry: bonds start there.)
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

REPO = Path(__file__).resolve().parents[1]
FRACTIONS = np.linspace(0.3, 0.95, 27)


def scan(path: Path) -> dict[str, dict[str, float]]:
    """``"A-B"`` → the largest attractive force (eV/Å) and the fraction of the radii sum
    where it is, for each pair the model attracts anywhere in the range."""
    calc = StudentCalculator(str(path))
    elements = load_exported(path)[1]["elements"]
    direction = np.array([0.6, 0.8, 0.0])
    out = {}
    for a, first in enumerate(elements):
        for second in elements[a:]:
            rsum = covalent_radii[atomic_numbers[first]] + covalent_radii[atomic_numbers[second]]
            worst, where = 0.0, None
            for x in FRACTIONS:
                atoms = Atoms([first, second], positions=[[0, 0, 0], x * rsum * direction])
                atoms.calc = calc
                pull = -float(atoms.get_forces()[1] @ direction)  # > 0: pulled together
                if pull > worst:
                    worst, where = pull, float(x)
            if where is not None:
                out[f"{first}-{second}"] = {"attraction_eV_per_A": worst, "at_fraction": where}
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", action="append", required=True, metavar="[NAME=]PATH")
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks/results/close_pairs.json")
    args = parser.parse_args()
    results = {}
    for spec in args.model:
        name, _, path = spec.rpartition("=")
        results[name or Path(path).stem] = scan(Path(path))
    write_json(args.out, {"fractions": [0.3, 0.95, len(FRACTIONS)], "models": results})
    lines = [
        "| model | pair | largest attraction (eV/Å) | at × radii sum |",
        "| --- | --- | --- | --- |",
    ]
    for name, pairs in results.items():
        for pair, r in sorted(pairs.items(), key=lambda kv: -kv[1]["attraction_eV_per_A"]):
            lines.append(
                f"| {name} | {pair} | {r['attraction_eV_per_A']:.1f} | {r['at_fraction']:.2f} |"
            )
    text = "\n".join(lines) + "\n"
    write_text(args.out.with_suffix(".md"), text)
    print(text)


if __name__ == "__main__":
    main()
