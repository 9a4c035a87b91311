"""The validation suite's stability run repeated over seeds: mean temperature and failures.

    .venv/bin/python benchmarks/stability_seeds.py \
        --model tiny-v4=torchscript_exports/sevennet0-tiny.pt [--model NAME=PATH ...] \
        [--seeds 5] [--system builtin:water-32] [--steps 1000] \
        [--ensemble nve --temperature 330]

The validation suites judge stability from one Langevin run (seed 0) at 300 K. One run has a
seed-to-seed spread of several per cent, so this repeats a Langevin protocol
(``engines.runs.run_ase``, friction 10/ps, 0.5 fs) over seeds: the mean over seeds says
whether a student runs hot, and a run that ends in an error (atoms fused, NaN) is a failure
that one seed may not see. Its mean temperature is taken after the first fifth of each run,
as the suites did until 2026-12-06 (they now take the second half,
``validation.core.stability_measures``), so that its committed results stay comparable.

``--ensemble nve`` starts from ``--temperature`` and lets the run heat itself, with no
thermostat: the protocol that found the 2026-12-06 standard's water collapse (protons hopped
until an oxygen held four hydrogens). Every run also reports when a hydrogen first changed the
heavy atom it is nearest to (a proton transfer: water turning into H3O+/OH-, a bond
breaking) and how many recorded frames had one. Results:
``benchmarks/results/stability_seeds.{json,md}`` (``--out`` renames them).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results"


def _owners(numbers, positions, cell) -> np.ndarray:
    """Per hydrogen, the index of its nearest heavy atom (minimum image in a periodic cell)."""
    hydrogens = np.flatnonzero(numbers == 1)
    heavy = np.flatnonzero(numbers != 1)
    d = positions[hydrogens, None, :] - positions[None, heavy, :]
    if np.any(cell):
        frac = d @ np.linalg.inv(cell)
        d = (frac - np.round(frac)) @ cell
    return heavy[np.argmin((d**2).sum(-1), axis=1)]


def transfers(traj) -> tuple[float | None, int]:
    """(time in ps at which a hydrogen first had another nearest heavy atom than at the
    start, or None; number of recorded frames where any had)."""
    start = _owners(traj.numbers, traj.positions[0], traj.cell)
    changed = [bool((_owners(traj.numbers, x, traj.cell) != start).any()) for x in traj.positions]
    first = next((float(t) for t, c in zip(traj.times_ps, changed) if c), None)
    return first, sum(changed)


def run(model: Path, system: str, seeds: int, steps: int, ensemble: str,
        temperature_K: float) -> dict:  # fmt: skip
    from mlff_distiller import StudentCalculator
    from mlff_distiller.data import load_source
    from mlff_distiller.engines.runs import initial_velocities, run_ase
    from mlff_distiller.errors import MlffDistillerError

    atoms = load_source(system)[0]
    calc = StudentCalculator(str(model))
    rows = []
    for seed in range(seeds):
        velocities = initial_velocities(atoms, temperature_K, seed)
        try:
            traj = run_ase(atoms, velocities, calc, ensemble, steps, 0.5, 5,
                           temperature_K=temperature_K, friction_per_ps=10.0,
                           seed=seed)  # fmt: skip
        except (MlffDistillerError, FloatingPointError) as error:
            rows.append({"seed": seed, "mean_temperature_K": None, "error": str(error)})
        else:
            t = np.asarray(traj.temperature_K)
            first, frames = transfers(traj)
            rows.append({"seed": seed, "mean_temperature_K": float(t[len(t) // 5 :].mean()),
                         "final_temperature_K": float(t[-1]), "first_transfer_ps": first,
                         "transfer_frames": frames, "frames": len(t)})  # fmt: skip
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
        "| model | seeds | failed | mean T over seeds (K) | sd (K) | per seed (K) "
        "| first proton transfer per seed (ps) |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for name, r in results.items():
        per = ", ".join("fail" if x["mean_temperature_K"] is None
                        else f"{x['mean_temperature_K']:.0f}" for x in r["runs"])  # fmt: skip
        mean = "–" if r["mean_K"] is None else f"{r['mean_K']:.1f}"
        sd = "–" if r["sd_K"] is None else f"{r['sd_K']:.1f}"
        hops = ", ".join("fail" if "error" in x else "–" if x.get("first_transfer_ps") is None
                         else f"{x['first_transfer_ps']:.2f}" for x in r["runs"])  # fmt: skip
        lines.append(
            f"| {name} | {len(r['runs'])} | {r['failed']} | {mean} | {sd} | {per} | {hops} |"
        )
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", action="append", required=True, help="NAME=PATH")
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--system", default="builtin:water-32")
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--ensemble", choices=["nvt", "nve"], default="nvt")
    parser.add_argument("--temperature", type=float, default=300.0, help="K (NVE: the start)")
    parser.add_argument("--out", type=Path, default=RESULTS / "stability_seeds.json")
    args = parser.parse_args()
    from mlff_distiller.benchmarking import write_json
    from mlff_distiller.files import write_text

    models = dict(item.split("=", 1) for item in args.model)
    results = {name: run(Path(path), args.system, args.seeds, args.steps, args.ensemble,
                         args.temperature) for name, path in models.items()}  # fmt: skip
    command = " ".join([Path(sys.executable).name, *sys.argv])
    payload = {"system": args.system, "steps": args.steps, "timestep_fs": 0.5,
               "ensemble": args.ensemble, "temperature_K": args.temperature,
               "friction_per_ps": 10.0 if args.ensemble == "nvt" else None, "command": command,
               "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "results": results}  # fmt: skip
    write_json(args.out, payload)
    how = (f"Langevin at {args.temperature:g} K" if args.ensemble == "nvt"
           else f"NVE from {args.temperature:g} K (no thermostat)")  # fmt: skip
    md = f"`{command}`\n\n{args.system}, {args.steps} steps of 0.5 fs, {how}\n\n"
    write_text(args.out.with_suffix(".md"), md + table(results))
    print(table(results))


if __name__ == "__main__":
    main()
