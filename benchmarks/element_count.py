"""Student cost against the number of elements it knows, on the same atoms.

Run from the repo root::

    .venv/bin/python benchmarks/element_count.py [--calls 20]

The same 768-atom water box (H and O only) is evaluated by untrained ``tiny`` and
``standard`` students that know 2 to 7 elements (H, O, then C, N, F, S, Cl: the shipped
students know all 7). Reported: median ms per ``get_forces`` call through ASE, an atom moved
before every call, all models in one run. ``mlff-distill benchmark`` times 2-element
students, so this says how far a student for more elements is from its figures. Results:
``benchmarks/results/element_count.json``.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch

from mlff_distiller.benchmarking import ase_call_ms, systems, write_json
from mlff_distiller.calculators import StudentCalculator
from mlff_distiller.timing import untrained_student

RESULTS = Path(__file__).parent / "results" / "element_count.json"
ELEMENTS = ["H", "O", "C", "N", "F", "S", "Cl"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=20)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    if args.calls < 1:
        parser.error(f"--calls must be at least 1, got {args.calls}")
    atoms = systems()["water-768"]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for preset in ("tiny", "standard"):
            for n in range(2, len(ELEMENTS) + 1):
                path = untrained_student(preset, ELEMENTS[:n], Path(tmp) / f"{preset}-{n}.pt")
                ms = ase_call_ms(StudentCalculator(path), atoms.copy(), args.calls)
                rows.append({"preset": preset, "elements": n, "ms_per_call": ms})
                base = next(r["ms_per_call"] for r in rows if r["preset"] == preset)
                print(f"{preset:<9} {n} elements {ms:8.1f} ms  x{ms / base:.2f}", flush=True)
    payload = {
        "benchmark": "element_count", "atoms": len(atoms), "system": "water-768",
        "elements_order": ELEMENTS, "calls": args.calls, "rows": rows,
        "torch_threads": torch.get_num_threads(), "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }  # fmt: skip
    write_json(args.out, payload)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
