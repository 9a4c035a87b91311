"""What one student evaluation costs per atom, by part, on one thread.

    .venv/bin/python benchmarks/evaluation_cost.py [--model torchscript_exports/sevennet0-tiny.pt]
        [--sizes 96 768 3072] [--out benchmarks/results/evaluation_cost.json]

On water boxes of ``--sizes`` atoms (one torch thread, float32 student, ~50 edges per atom):

- ``model``: the student's forward and backward from edge vectors (what LAMMPS pays per
  step, without its own neighbour list);
- ``compute, fresh``: the exported module's full ``compute`` (neighbour search, energy,
  forces) with the neighbour cache off (``skin = 0``);
- ``compute, cached``: the same with the 1 Å skin, positions moved by ~0.01 Å between calls
  as in MD (so the cache is reused; what ASE and OpenMM pay per step).

Medians of ``--calls`` timed calls after two untimed ones; µs per atom. The model file is
exported again by this version first (so the figures are this code's, whatever the file's
format version). Time it on an idle machine: torch processes sharing cores slow each other
far more than the share suggests.
"""

from __future__ import annotations

import argparse
import json
import platform
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from mlff_distiller.benchmarking import write_json
from mlff_distiller.data import water_box
from mlff_distiller.export import export, load_exported
from mlff_distiller.timing import median_ms

REPO = Path(__file__).resolve().parents[1]


def _water(n_atoms: int):
    if n_atoms <= 768:
        return water_box(max(1, n_atoms // 3))
    repeat = {3072: (2, 2, 1), 9216: (2, 2, 3)}.get(n_atoms)
    if repeat is None:
        raise SystemExit(f"--sizes: {n_atoms} above 768 must be 3072 or 9216")
    return water_box(256) * repeat


def measure(module, n_atoms: int, calls: int) -> dict:
    atoms = _water(n_atoms)
    rng = np.random.default_rng(0)
    numbers = torch.tensor(atoms.numbers)
    cell = torch.tensor(atoms.cell.array)
    pbc = torch.tensor([True] * 3)
    positions = atoms.positions.copy()
    edges, shifts = module.neighbours(torch.tensor(positions), cell, pbc)
    vectors = positions[edges[1]] - positions[edges[0]] + shifts.numpy() @ atoms.cell.array
    vectors = torch.tensor(vectors, dtype=module.model_dtype.dtype)
    species = module.species(numbers)

    def model():
        v = vectors.clone().requires_grad_(True)
        energy = module.model(v, edges, species).sum()
        torch.autograd.grad([energy], [v])

    def compute():
        positions[:] += rng.normal(scale=0.01 / 3**0.5, size=positions.shape)
        module.compute(torch.tensor(positions), numbers, cell, pbc, False)

    row = {"atoms": len(atoms), "edges_per_atom": edges.shape[1] / len(atoms)}
    with torch.jit.optimized_execution(False):
        row["model_ms"] = median_ms(model, calls)
        module.skin = 0.0
        row["compute_fresh_ms"] = median_ms(compute, calls)
        module.skin = 1.0
        row["compute_cached_ms"] = median_ms(compute, calls)
    for key in ("model", "compute_fresh", "compute_cached"):
        row[f"{key}_us_per_atom"] = 1e3 * row[f"{key}_ms"] / len(atoms)
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--model", type=Path, default=REPO / "torchscript_exports/sevennet0-tiny.pt"
    )
    parser.add_argument("--sizes", type=int, nargs="+", default=[96, 768, 3072])
    parser.add_argument("--calls", type=int, default=7)
    parser.add_argument(
        "--out", type=Path, default=REPO / "benchmarks/results/evaluation_cost.json"
    )
    args = parser.parse_args()
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as scratch:
        _, metadata = load_exported(args.model)
        path = export(args.model, Path(scratch) / "student.pt", dtype=metadata["dtype"])
        module, metadata = load_exported(path)
    rows = []
    for n_atoms in args.sizes:
        rows.append(measure(module, n_atoms, args.calls))
        row = rows[-1]
        print(
            f"{row['atoms']:>6} atoms ({row['edges_per_atom']:.0f} edges/atom): model "
            f"{row['model_us_per_atom']:.0f}, compute fresh {row['compute_fresh_us_per_atom']:.0f}"
            f", cached {row['compute_cached_us_per_atom']:.0f} us/atom",
            flush=True,
        )
    result = {
        "model": str(args.model),
        "elements": metadata["elements"],
        "preset": metadata.get("preset"),
        "dtype": metadata["dtype"],
        "threads": 1,
        "machine": {"platform": platform.platform(), "processor": platform.processor()},
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "rows": rows,
    }
    write_json(args.out, result)
    print(json.dumps({"wrote": str(args.out)}))


if __name__ == "__main__":
    main()
