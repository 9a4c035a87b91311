"""The GPU check, in one run of a few minutes: CPU-vs-CUDA parity in float64 and the speed
table, in ASE, OpenMM and LAMMPS.

    .venv/bin/python benchmarks/gpu_check.py [--model torchscript_exports/sevennet0-tiny.pt]
        [--out benchmarks/results/gpu_check] [--sizes 96 768 3072 9216]
        [--engines ase openmm lammps] [--device cuda] [--quick]

Needs a CUDA GPU: where torch finds none it says so in one line and exits with status 2
(the README says which figures are measured). ``--device cpu --quick`` runs every step with
the CPU in the GPU's place (parity of CPU against CPU, one small box), which is how CI
checks that the script itself works. The LAMMPS part needs the plugin
(``mlff-distill lammps build``; a CUDA build of torch is what makes ``device cuda`` work).
``--engines`` leaves engines out where a machine cannot run them (the table says which).

1. The student (any exported file, any format version) is exported again by this version
   in float64 and in float32 (``mlff-distill export model.pt``), so every tensor it makes
   follows its inputs' device.
2. Parity, float64: ethanol (isolated), 32 waters (periodic, stress) and 256 waters (the
   cell-list neighbour search). ASE ``StudentCalculator(device="cpu")`` vs ``"cuda"``
   (energy, forces, stress); OpenMM's CPU platform vs its CUDA platform in double
   precision (energy, forces); LAMMPS ``pair_style mlff ... device cpu`` vs ``device cuda``
   (``run 0``: energy, forces). Each figure is the largest difference over the largest
   magnitude of the CPU result; PASS at ≤ 1e-10.
3. Speed, float32, water boxes of ``--sizes`` atoms: ms per call (ASE) or per MD step
   (OpenMM ``VerletIntegrator``, LAMMPS NVE on one rank), CPU and CUDA, and µs per
   atom-step. CPU figures use the torch threads the process has (set ``OMP_NUM_THREADS``).

Writes ``<out>/gpu_check.json`` and ``<out>/gpu_check.md``.
"""

from __future__ import annotations

import argparse
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

# isort: split
from ase import Atoms
from ase.build import molecule

from mlff_distiller import StudentCalculator
from mlff_distiller.benchmarking import lammps_step_ms, openmm_step_ms, write_json
from mlff_distiller.data import water_box
from mlff_distiller.export import export, load_exported

REPO = Path(__file__).resolve().parents[1]
#: Largest CPU-vs-CUDA difference, relative to the largest CPU magnitude, called equal.
PARITY = 1e-10


def _energy_forces(cpu: tuple, other: tuple) -> dict[str, float]:
    """Parity of two ``(energy, forces)`` results."""
    return {"energy": _relative(cpu[0], other[0]), "forces": _relative(cpu[1], other[1])}


def _relative(cpu: np.ndarray, gpu: np.ndarray) -> float:
    cpu, gpu = np.asarray(cpu, dtype=float), np.asarray(gpu, dtype=float)
    return float(np.abs(cpu - gpu).max() / max(np.abs(cpu).max(), 1e-300))


def parity_systems() -> dict[str, Atoms]:
    ethanol = molecule("CH3CH2OH")
    ethanol.center(vacuum=6.0)
    waters = water_box(32)
    waters.rattle(0.02, seed=1)
    large = water_box(256)  # above the module's brute-force limit: the cell list
    large.rattle(0.02, seed=2)
    return {"ethanol": ethanol, "water-96": waters, "water-768": large}


#: OpenMM's platform and properties for each ``--device``: double precision for parity.
OPENMM_PLATFORM = {"cuda": ("CUDA", {"Precision": "double"}), "cpu": ("CPU", {})}


def ase_parity(model: Path, atoms: Atoms, device: str) -> dict[str, float]:
    results = []
    for where in ("cpu", device):
        copy = atoms.copy()
        copy.calc = StudentCalculator(model, device=where)
        properties = ["energy", "forces"] + (["stress"] if atoms.pbc.all() else [])
        copy.calc.calculate(copy, properties)
        results.append(dict(copy.calc.results))
    cpu, other = results
    return {
        name: _relative(cpu[name], other[name])
        for name in ("energy", "forces", "stress")
        if name in cpu
    }


def openmm_parity(model: Path, atoms: Atoms, device: str) -> dict[str, float]:
    import openmm
    from openmm import unit

    from mlff_distiller.engines.openmm import create_system, make_context

    out = []
    for name, properties in (("CPU", {}), OPENMM_PLATFORM[device]):
        system = create_system(atoms, model)
        integrator = openmm.VerletIntegrator(0.0005)
        context = make_context(system, integrator, name, properties, atoms=atoms)
        state = context.getState(getEnergy=True, getForces=True)
        out.append((
            state.getPotentialEnergy().value_in_unit(unit.kilojoule_per_mole),
            state.getForces(asNumpy=True).value_in_unit(unit.kilojoule_per_mole / unit.nanometer),
        ))  # fmt: skip
    return _energy_forces(*out)


def lammps_parity(
    model: Path, atoms: Atoms, work: Path, elements: list[str], device: str
) -> dict[str, float]:
    from mlff_distiller.engines.lammps import Deck, read_thermo, run_lammps, write_data

    out = []
    for k, where in enumerate(("cpu", device)):
        workdir = work / f"lammps-parity-{k}-{where}"
        workdir.mkdir(parents=True, exist_ok=True)
        data = write_data(atoms, workdir / "system.data", elements=elements)
        deck = (
            Deck(data.student_deck(model, keywords=f"device {where}", relative=True))
            .thermo(0, columns=("step", "pe"), precise=True, extensive=True)
            .dump(1, "dump.txt", columns=("id", "fx", "fy", "fz"), digits=17).run(0)
        )  # fmt: skip
        run_lammps(deck.text(), workdir)
        energy = read_thermo(workdir / "log.lammps")[-1][-1]["PotEng"]
        dump = np.loadtxt(workdir / "dump.txt", skiprows=9)
        forces = dump[np.argsort(dump[:, 0]), 1:4]  # in atom id order
        out.append((energy, forces))
    return _energy_forces(*out)


def ase_ms(model: Path, atoms: Atoms, device: str, calls: int) -> float:
    """Median ms of a full energy + forces call; positions move by 1e-4 Å every call so
    that ASE's cache never answers (and a GPU call returns only when its results are on
    the host)."""
    calc = StudentCalculator(model, device=device)
    copy = atoms.copy()
    rng = np.random.default_rng(0)
    times = []
    for k in range(calls + 3):
        copy.positions += rng.normal(scale=1e-4, size=copy.positions.shape)
        start = time.perf_counter()
        calc.calculate(copy, ["energy", "forces"])
        if k >= 3:
            times.append(time.perf_counter() - start)
    return 1e3 * float(np.median(times))


def speed(
    model: Path,
    sizes: list[int],
    work: Path,
    elements: list[str],
    device: str,
    engines: list[str],
    max_steps: int = 200,
) -> list[dict]:
    """ms per call (ASE) or MD step (OpenMM, LAMMPS on one rank) of water boxes, on the CPU
    and on ``device``."""
    from mlff_distiller.engines.lammps import write_data

    rows = []
    for n_atoms in sizes:
        atoms = water_box(256) if n_atoms >= 768 else water_box(max(1, n_atoms // 3))
        if n_atoms > 768:
            repeat = {3072: (2, 2, 1), 9216: (2, 2, 3)}.get(n_atoms)
            if repeat is None:
                raise SystemExit(f"--sizes: {n_atoms} is not 96, 768, 3072 or 9216")
            atoms = atoms * repeat
        steps = int(np.clip(20_000 / len(atoms), 10, max_steps))
        row = {"atoms": len(atoms), "ms": {}}
        devices = list(dict.fromkeys(("cpu", device)))  # the CPU once where it is the device
        if "ase" in engines:
            for name in devices:
                row["ms"][f"ASE {name}"] = ase_ms(model, atoms, name, steps)
        if "openmm" in engines:
            from mlff_distiller.engines.openmm import create_system

            row["ms"]["OpenMM CPU"] = openmm_step_ms(create_system(atoms, model), atoms, steps)
            if device == "cuda":
                row["ms"]["OpenMM CUDA"] = openmm_step_ms(
                    create_system(atoms, model), atoms, steps, "CUDA", {"Precision": "mixed"}
                )
        if "lammps" in engines:
            workdir = work / f"speed-{len(atoms)}"
            workdir.mkdir(parents=True, exist_ok=True)
            data = write_data(atoms, workdir / "system.data", elements=elements)
            for name in devices:
                row["ms"][f"LAMMPS {name}"] = lammps_step_ms(
                    data, model, workdir / name, steps, 1, f"device {name}"
                )
        row["us_per_atom_step"] = {k: 1e3 * v / len(atoms) for k, v in row["ms"].items()}
        rows.append(row)
        print(
            f"  {len(atoms)} atoms: " + ", ".join(f"{k} {v:.2f} ms" for k, v in row["ms"].items())
        )
    return rows


def table(result: dict) -> str:
    lines = [
        "# GPU check",
        "",
        f"Measured {result['date']} on {result['gpu']} (torch {result['torch']}, CUDA "
        f"{result['cuda']}) by `{result['command']}`; student {result['model']}; CPU "
        f"figures with {result.get('cpu_threads', '?')} torch threads.",
        "",
        *(
            [f"Not measured in this run: {', '.join(result['not_measured'])}.", ""]
            if result.get("not_measured")
            else []
        ),
        f"## Parity, float64 (largest difference / largest CPU magnitude; PASS ≤ {PARITY:g})",
        "",
        f"| engine | system | quantity | CPU vs {result['device'].upper()} | verdict |",
        "| --- | --- | --- | --- | --- |",
    ]
    for engine, systems in result["parity"].items():
        for system, figures in systems.items():
            for quantity, value in figures.items():
                verdict = "PASS" if value <= PARITY else "FAIL"
                lines.append(f"| {engine} | {system} | {quantity} | {value:.2e} | {verdict} |")
    columns = list(result["speed"][0]["ms"]) if result["speed"] else []
    lines += [
        "",
        "## Speed, float32 (ms per call or step; µs per atom-step in brackets)",
        "",
        "| atoms | " + " | ".join(columns) + " |",
        "| --- | " + " | ".join("---" for _ in columns) + " |",
    ]
    for row in result["speed"]:
        cells = [f"{row['ms'][c]:.2f} ({row['us_per_atom_step'][c]:.1f})" for c in columns]
        lines.append(f"| {row['atoms']} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


ENGINES = ("ase", "openmm", "lammps")
ENGINE_NAMES = {"ase": "ASE", "openmm": "OpenMM", "lammps": "LAMMPS"}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--model", type=Path, default=REPO / "torchscript_exports/sevennet0-tiny.pt"
    )
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks/results/gpu_check")
    parser.add_argument("--sizes", type=int, nargs="+", default=[96, 768, 3072, 9216])
    parser.add_argument("--engines", nargs="+", choices=ENGINES, default=list(ENGINES))
    parser.add_argument(
        "--device", choices=("cuda", "cpu"), default="cuda",
        help="what the CPU is compared with; cpu checks the script itself (CI)",
    )  # fmt: skip
    parser.add_argument(
        "--quick", action="store_true",
        help="parity on ethanol and 32 waters only, the smallest size, 10 timed steps",
    )  # fmt: skip
    args = parser.parse_args()
    if args.device == "cuda" and not torch.cuda.is_available():
        built = f"built for CUDA {torch.version.cuda}" if torch.version.cuda else "a CPU build"
        print(f"gpu_check: torch {torch.__version__} ({built}) finds no CUDA GPU; nothing to check")
        return 2
    _, metadata = load_exported(args.model)
    elements = list(metadata["elements"])
    engines = [e for e in ENGINES if e in args.engines]
    result = {
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "device": args.device,
        "gpu": torch.cuda.get_device_name(0) if args.device == "cuda" else "no GPU (--device cpu)",
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "cpu_threads": torch.get_num_threads(),
        "cpu": platform.processor() or platform.machine(),
        "command": " ".join([Path(sys.argv[0]).name, *sys.argv[1:]]),
        "model": str(args.model),
        "engines": engines,
        "not_measured": [ENGINE_NAMES[e] for e in ENGINES if e not in engines],
        "parity_threshold": PARITY,
        "parity": {ENGINE_NAMES[e]: {} for e in engines},
    }
    systems = parity_systems()
    if args.quick:
        systems = {k: v for k, v in systems.items() if k != "water-768"}
    sizes = sorted(args.sizes)[:1] if args.quick else args.sizes
    with tempfile.TemporaryDirectory() as scratch:
        work = Path(scratch)
        f64 = export(args.model, work / "student-float64.pt", dtype="float64")
        f32 = export(args.model, work / "student-float32.pt", dtype="float32")
        parity = result["parity"]
        for name, atoms in systems.items():
            if "ase" in engines:
                parity["ASE"][name] = ase_parity(f64, atoms, args.device)
            if "openmm" in engines:
                parity["OpenMM"][name] = openmm_parity(f64, atoms, args.device)
            if "lammps" in engines:
                parity["LAMMPS"][name] = lammps_parity(
                    f64, atoms, work / name, elements, args.device
                )
            print(f"parity {name}: " + str({k: v[name] for k, v in parity.items()}), flush=True)
        result["speed"] = speed(
            f32, sizes, work, elements, args.device, engines, 10 if args.quick else 200
        )
    args.out.mkdir(parents=True, exist_ok=True)
    write_json(args.out / "gpu_check.json", result)
    (args.out / "gpu_check.md").write_text(table(result))
    print(table(result))
    failed = [
        f"{engine} {system} {quantity}"
        for engine, systems in result["parity"].items()
        for system, figures in systems.items()
        for quantity, value in figures.items()
        if value > PARITY
    ]
    if failed:
        print("gpu_check: parity FAILED for " + ", ".join(failed))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
