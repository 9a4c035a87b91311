"""What one training step costs: forces from the written-out gradient, differentiated once,
against the double backward through ``forward``.

    .venv/bin/python benchmarks/training_step.py [--presets tiny standard] [--batch 8 32]
        [--steps 20] [--out benchmarks/results/training_step.json]

A training step of a ``moment`` student (``models.graph.evaluate(..., create_graph=True)``,
a loss on energies and forces, ``backward``) on batches of ``--batch`` molecules of the
built-in organic set (its first 16, one RDKit conformer each, rattled), float32, one torch
thread: the median ms of ``--steps`` timed steps after three untimed ones, forces from
``energies_and_gradient`` (what the trainer does) and with ``gradient_written_out`` turned off
(autograd of ``forward`` with ``create_graph``, then a double backward). Both give the same
weight gradients (``tests/unit/models/test_physics.py``); the figure is their ratio. The
students are untrained (cost does not depend on the weights) and know the 7 elements of the
shipped ones. Time it on an idle machine. Writes ``<out>`` and the same table as ``.md``.
"""

from __future__ import annotations

import argparse
import platform
import sys
import time
from pathlib import Path

import torch

from mlff_distiller.benchmarking import STUDENT_ELEMENTS, write_json
from mlff_distiller.data import structures_from_smiles
from mlff_distiller.data.builtin import organic_set
from mlff_distiller.files import write_text
from mlff_distiller.models import build_graph, build_model, collate, evaluate
from mlff_distiller.timing import median_ms

REPO = Path(__file__).resolve().parents[1]


def _step_ms(model: torch.nn.Module, batch: dict, target: torch.Tensor, steps: int) -> float:
    def step() -> None:
        model.zero_grad()
        out = evaluate(model, batch, create_graph=True)
        loss = ((out["forces"] - target) ** 2).mean() + 1e-3 * out["energy"].square().mean()
        loss.backward()

    return median_ms(step, steps, warmup=3)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--presets", nargs="+", default=["tiny", "standard"])
    parser.add_argument("--batch", nargs="+", type=int, default=[8, 32])
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks/results/training_step.json")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)

    molecules = structures_from_smiles([entry.smiles for entry in organic_set()][:16])
    rows = []
    for preset in args.presets:
        torch.manual_seed(0)
        model = build_model(preset, list(STUDENT_ELEMENTS), avg_neighbors=10.0).train()
        numbers = [int(z) for z in model.atomic_numbers]
        for size in args.batch:
            chosen = [molecules[k % len(molecules)].copy() for k in range(size)]
            for k, atoms in enumerate(chosen):
                atoms.rattle(0.05, seed=k)
            batch = collate(
                [build_graph(a, float(model.cutoff), numbers) for a in chosen], torch.float32
            )
            target = torch.randn(
                batch["positions"].shape, generator=torch.Generator().manual_seed(1)
            )
            timed = {}
            for written in (True, False):
                model.gradient_written_out = written
                timed[written] = _step_ms(model, batch, target, args.steps)
            model.gradient_written_out = True
            rows.append(
                {
                    "preset": preset,
                    "molecules": size,
                    "atoms": int(batch["positions"].shape[0]),
                    "edges": int(batch["edge_index"].shape[1]),
                    "written_out_ms": timed[True],
                    "double_backward_ms": timed[False],
                    "speedup": timed[False] / timed[True],
                }
            )
            print(rows[-1], flush=True)

    command = "python benchmarks/training_step.py " + " ".join(argv or sys.argv[1:])
    result = {
        "benchmark": "training_step",
        "command": command.strip(),
        "date": time.strftime("%Y-%m-%d"),
        "torch": torch.__version__,
        "threads": 1,
        "dtype": "float32",
        "machine": platform.processor() or platform.machine(),
        "rows": rows,
    }
    write_json(args.out, result)
    lines = [
        "# Training step: written-out forces vs double backward",
        "",
        f"`{result['command']}` ({result['date']}, one torch thread, float32, "
        f"torch {result['torch']})",
        "",
        "| preset | molecules | atoms | edges | written out (ms) | double backward (ms) "
        "| speed-up |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for row in rows:
        lines.append(
            f"| {row['preset']} | {row['molecules']} | {row['atoms']} | {row['edges']} | "
            f"{row['written_out_ms']:.1f} | {row['double_backward_ms']:.1f} | "
            f"{row['speedup']:.2f}× |"
        )
    write_text(args.out.with_suffix(".md"), "\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
