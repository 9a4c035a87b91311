"""The validation suite's stability run repeated over seeds: mean temperature and failures.

    .venv/bin/python benchmarks/stability_seeds.py \
        --model tiny-v4=torchscript_exports/sevennet0-tiny.pt [--model NAME=PATH ...] \
        [--seeds 5] [--system builtin:water-32] [--steps 1000]

The ``quick`` suite judges stability from one 0.5 ps Langevin run (seed 0) at 300 K: mean
temperature after the first fifth within 10 % of the target. One run of 96 atoms has a
seed-to-seed spread of several per cent, so this repeats the same protocol
(``engines.runs.run_ase``, friction 10/ps, 0.5 fs) over seeds: the mean over seeds
says whether a student runs hot, and a run that ends in an error (atoms fused, NaN) is a
failure that one seed may not see. Results: ``benchmarks/results/stability_seeds.{json,md}``.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results"


def run(model: Path, system: str, seeds: int, steps: int) -> dict:
    import numpy as np

    from mlff_distiller import StudentCalculator
    from mlff_distiller.data import load_source
    from mlff_distiller.engines.runs import initial_velocities, run_ase
    from mlff_distiller.errors import MlffDistillerError

    atoms = load_source(system)[0]
    calc = StudentCalculator(str(model))
    rows = []
    for seed in range(seeds):
        velocities = initial_velocities(atoms, 300.0, seed)
        try:
            traj = run_ase(atoms, velocities, calc, "nvt", steps, 0.5, 5, temperature_K=300.0,
                           friction_per_ps=10.0, seed=seed)  # fmt: skip
        except (MlffDistillerError, FloatingPointError) as error:
            rows.append({"seed": seed, "mean_temperature_K": None, "error": str(error)})
        else:
            t = np.asarray(traj.temperature_K)
            rows.append({"seed": seed, "mean_temperature_K": float(t[len(t) // 5 :].mean())})
        print(model.name, rows[-1], flush=True)
    finished = [r["mean_temperature_K"] for r in rows if r["mean_temperature_K"] is not None]
    return {
        "model": str(model),
        "runs": rows,
        "failed": len(rows) - len(finished),
        "mean_K": statistics.fmean(finished) if finished else None,
        "sd_K": statistics.stdev(finished) if len(finished) > 1 else None,
    }


def table(results: dict[str, dict]) -> str:
    lines = [
        "| model | seeds | failed | mean T over seeds (K) | sd (K) | per seed (K) |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for name, r in results.items():
        per = ", ".join("fail" if x["mean_temperature_K"] is None
                        else f"{x['mean_temperature_K']:.0f}" for x in r["runs"])  # fmt: skip
        mean = "–" if r["mean_K"] is None else f"{r['mean_K']:.1f}"
        sd = "–" if r["sd_K"] is None else f"{r['sd_K']:.1f}"
        lines.append(f"| {name} | {len(r['runs'])} | {r['failed']} | {mean} | {sd} | {per} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", action="append", required=True, help="NAME=PATH")
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--system", default="builtin:water-32")
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--out", type=Path, default=RESULTS / "stability_seeds.json")
    args = parser.parse_args()
    from mlff_distiller.benchmarking import write_json
    from mlff_distiller.files import write_text

    models = dict(item.split("=", 1) for item in args.model)
    results = {name: run(Path(path), args.system, args.seeds, args.steps)
               for name, path in models.items()}  # fmt: skip
    command = " ".join([Path(sys.executable).name, *sys.argv])
    payload = {"system": args.system, "steps": args.steps, "timestep_fs": 0.5,
               "temperature_K": 300.0, "friction_per_ps": 10.0, "command": command,
               "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "results": results}  # fmt: skip
    write_json(args.out, payload)
    md = f"`{command}`\n\n{args.system}, {args.steps} steps of 0.5 fs, Langevin at 300 K\n\n"
    write_text(args.out.with_suffix(".md"), md + table(results))
    print(table(results))


if __name__ == "__main__":
    main()
