"""What one ``StudentCalculator`` call costs on a small system, and how many operators it runs.

    .venv/bin/python benchmarks/call_overhead.py [--model NAME=PATH ...]
        [--out benchmarks/results/call_overhead.json]

On a few atoms a call is all overhead: the module's TorchScript interpreter dispatches every
operator (neighbour search, the student's forward, the autograd backward, the casts) one by
one, and on a GPU each one is at least a kernel launch. For ethanol (9 atoms), paracetamol
(20) and 32 waters (96, periodic) and each student: the median ms of an energy + forces call
(one torch thread; ``benchmarking.ase_call_ms``: an atom moves before every call so
ASE's cache never answers) and the
number of operator calls the torch profiler records in one call (``aten::`` operators, views
included, and autograd nodes), which does not depend on the machine; and the ms per step of
the same system in LAMMPS (``pair_style mlff``, one rank, ``benchmarking.lammps_step_ms``),
where the plugin builds the edges and calls ``local_energies_and_gradient``. The issue's
targets are 1 ms per call on ethanol and 0.5 ms per LAMMPS step at 12 atoms. Writes
``<out>`` and the same table as ``.md``.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import torch
from ase import Atoms
from ase.build import molecule

from mlff_distiller import StudentCalculator
from mlff_distiller.benchmarking import ase_call_ms, lammps_step_ms, write_json
from mlff_distiller.data import structures_from_smiles, water_box
from mlff_distiller.engines.lammps import write_data
from mlff_distiller.files import write_text

REPO = Path(__file__).resolve().parents[1]
#: Timed NVE steps of the LAMMPS column (after its warm-up; one MPI rank, one torch thread).
LAMMPS_STEPS = 200
DEFAULT_MODELS = [
    f"tiny={REPO / 'torchscript_exports/sevennet0-tiny.pt'}",
    f"standard={REPO / 'torchscript_exports/sevennet0-standard.pt'}",
]


def systems() -> dict[str, Atoms]:
    ethanol = molecule("CH3CH2OH")
    ethanol.center(vacuum=6.0)
    (paracetamol,) = structures_from_smiles(["CC(=O)Nc1ccc(O)cc1"], n_conformers=1)
    paracetamol.center(vacuum=6.0)
    return {"ethanol": ethanol, "paracetamol": paracetamol, "water-32": water_box(32)}


def measure(model: Path, atoms: Atoms, calls: int) -> dict[str, float]:
    calc = StudentCalculator(str(model))
    ms = ase_call_ms(calc, atoms, calls)
    with tempfile.TemporaryDirectory() as work:
        data = write_data(atoms, Path(work) / "system.data", elements=calc.elements)
        lammps_ms = lammps_step_ms(data, model.resolve(), Path(work), LAMMPS_STEPS, ranks=1)
    copy = atoms.copy()
    copy.calc = calc
    copy.positions += 1e-4
    with torch.autograd.profiler.profile() as profile:
        copy.get_forces()
    events = profile.key_averages()
    return {
        "ms_median": ms,
        "lammps_ms_per_step": lammps_ms,
        "operator_calls": int(sum(e.count for e in events)),
        "aten_calls": int(sum(e.count for e in events if e.key.startswith("aten::"))),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", action="append", help="NAME=PATH (repeatable)")
    parser.add_argument("--calls", type=int, default=50)
    parser.add_argument("--note", default="", help="what else ran on the machine, for the table")
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks/results/call_overhead.json")
    args = parser.parse_args()
    torch.set_num_threads(1)
    results = {}
    for spec in args.model or DEFAULT_MODELS:
        name, _, path = spec.partition("=")
        results[name] = {
            system: measure(Path(path), atoms, args.calls) for system, atoms in systems().items()
        }
        print(name, results[name], flush=True)
    command = " ".join(["python", "benchmarks/call_overhead.py", *sys.argv[1:]])
    lines = [
        "# StudentCalculator call overhead",
        "",
        f"`{command}` ({time.strftime('%Y-%m-%d', time.gmtime())}, one torch thread, "
        f"torch {torch.__version__}){'; ' + args.note if args.note else ''}",
        "",
        "| student | system | ms per call (median) | operator calls per call | of them aten:: "
        "| LAMMPS ms/step (1 rank) |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for name, by_system in results.items():
        for system, r in by_system.items():
            lines.append(
                f"| {name} | {system} | {r['ms_median']:.2f} | {r['operator_calls']} "
                f"| {r['aten_calls']} | {r['lammps_ms_per_step']:.2f} |"
            )
    write_json(args.out, {"command": command, "torch": torch.__version__, "results": results})
    write_text(args.out.with_suffix(".md"), "\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
