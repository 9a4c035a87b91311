"""What bad input gets: each case of the bad-input issue run for real, with what it says.

Run from the repo root (about a minute; no teacher is loaded)::

    .venv/bin/python benchmarks/fault_table.py

Each case runs the shipped ``tiny`` (``StudentCalculator``, OpenMM) or the ``mlff-distill``
command line in a scratch directory, and records the first line of what the user sees (the
exception, or the command's stderr), its exit status and how long it took to say it. Cases
that are not errors (far-away atoms, the import order) record what they compute instead.
Results: ``docs/faults.md`` (the table the README links to) and
``benchmarks/results/fault_table.json``.
"""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from ase import Atoms
from ase.build import molecule

from mlff_distiller import StudentCalculator, __version__
from mlff_distiller.benchmarking import write_json

ROOT = Path(__file__).resolve().parent.parent
MODEL = ROOT / "torchscript_exports" / "sevennet0-tiny.pt"
CLI = [sys.executable, "-m", "mlff_distiller.cli"]
#: A teacher that cannot load: a case that reaches the teacher shows it by naming it.
NO_TEACHER = ["--teacher", "no_such_package.module:Teacher"]


def _first_line(text: str) -> str:
    lines = [line for line in text.splitlines() if line.strip()]
    return lines[0].strip() if lines else ""


def _energy(atoms: Atoms) -> str:
    atoms.calc = StudentCalculator(MODEL)
    return f"E = {atoms.get_potential_energy():.4f} eV"


def nan_position() -> str:
    atoms = molecule("H2O")
    atoms.positions[1, 0] = np.nan
    return _energy(atoms)


def inf_cell() -> str:
    atoms = molecule("H2O", cell=[8.0, 8.0, 8.0], pbc=True)
    atoms.cell[0, 0] = np.inf
    return _energy(atoms)


def far_from_origin() -> str:
    calc = StudentCalculator(MODEL)
    origin = molecule("CH3CH2OH")
    origin.calc = calc
    reference = origin.get_forces()
    parts = []
    for offset in (1e3, 1e4, 1e6):
        moved = origin.copy()
        moved.positions += offset
        moved.calc = calc
        parts.append(f"{offset:.0e} Å: {np.abs(moved.get_forces() - reference).max():.1e}")
    return "ethanol shifted by " + ", ".join(parts) + " eV/Å max force change (float32)"


def coincident(distance: float) -> Callable[[], str]:
    def case() -> str:
        return _energy(Atoms("OH", positions=[[0.0, 0.0, 0.0], [0.0, 0.0, distance]]))

    return case


def close_pair() -> str:
    atoms = Atoms("OH", positions=[[0.0, 0.0, 0.0], [0.0, 0.0, 0.3]])
    atoms.calc = StudentCalculator(MODEL)
    force = atoms.get_forces()[1, 2]
    return f"{_energy(atoms)}, force on H {force:+.1f} eV/Å along +z (repulsive)"


def flat_cell() -> str:
    atoms = molecule("H2O", cell=[[8.0, 0, 0], [0, 8.0, 0], [4.0, 4.0, 0]], pbc=True)
    return _energy(atoms)


def tiny_cell() -> str:
    return _energy(Atoms("H", cell=[0.1, 0.1, 0.1], pbc=True))


def truncated_export(scratch: Path) -> Callable[[], str]:
    def case() -> str:
        data = MODEL.read_bytes()
        half = scratch / "half.pt"
        half.write_bytes(data[: len(data) // 2])
        StudentCalculator(half)
        return "loaded"

    return case


def openmm_first() -> str:
    script = textwrap.dedent(
        f"""
        import openmm
        from ase.build import molecule
        from mlff_distiller.engines.openmm import create_system
        atoms = molecule("H2O")
        system = create_system(atoms, {str(MODEL)!r})
        context = openmm.Context(
            system, openmm.VerletIntegrator(0.001), openmm.Platform.getPlatformByName("Reference")
        )
        context.setPositions(atoms.positions / 10.0)  # nm
        energy = context.getState(getEnergy=True).getPotentialEnergy()
        print(f"runs: E = {{energy.value_in_unit(energy.unit):.2f}} kJ/mol")
        """
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    if result.returncode != 0:
        raise RuntimeError(_first_line(result.stderr.splitlines()[-1]))
    return _first_line(result.stdout)


#: (issue case, what is tried, the call) for the in-process cases.
PYTHON_CASES = [
    (1, "one H of a water at NaN (ASE)", nan_position),
    (1, "a periodic cell with an inf entry", inf_cell),
    (2, "ethanol far from the origin", far_from_origin),
    (3, "H on top of O (0 Å)", coincident(0.0)),
    (3, "H 0.05 Å from O", coincident(0.05)),
    (3, "H 0.3 Å from O (ZBL core)", close_pair),
    (11, "a periodic cell of zero volume", flat_cell),
    (12, "one H in a 0.1 Å periodic cell", tiny_cell),
    (13, "`import openmm` before torch, then an OpenMM Context", openmm_first),
]


def cli_cases(scratch: Path) -> list[tuple[int, str, list[str]]]:
    """(issue case, command line after ``mlff-distill``) for the command-line cases."""
    (scratch / "afile").write_text("mine")
    (scratch / "adir").mkdir()
    label = ["dataset", "label", "--source", "smiles:O"]
    return [
        (4, ["train", "--dataset", "d.h5", "--out", "run", "--set", "epochs=abc"]),
        (5, ["info", str(scratch / "half.pt")]),
        (6, ["train", "--dataset", "d.h5", "--out", "afile"]),
        (7, [*label, "--out", "adir", "--overwrite", *NO_TEACHER]),
        (8, [*label, "--out", "x.h5", "--shard", "3/2", *NO_TEACHER]),
        (9, [*label, "--out", "x.h5", "--perturb", "-3"]),
    ]


def run_python(case: Callable[[], str]) -> dict:
    start = time.perf_counter()
    try:
        outcome, says = "computes", case()
    except Exception as error:  # noqa: BLE001  (the message is what is recorded)
        outcome, says = f"{type(error).__name__}", _first_line(str(error))
    says = re.sub(re.escape(tempfile.gettempdir()) + r"/[^/]+/", "", says)  # scratch dir
    return {"outcome": outcome, "says": says, "seconds": round(time.perf_counter() - start, 2)}


def run_cli(argv: list[str], cwd: Path) -> dict:
    start = time.perf_counter()
    result = subprocess.run([*CLI, *argv], capture_output=True, text=True, cwd=cwd, timeout=300)
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    return {
        "outcome": f"exit {result.returncode}",
        "says": (lines[-1].strip() if lines else _first_line(result.stdout)).replace(str(cwd), "."),
        "stderr_lines": len(lines),
        "seconds": round(time.perf_counter() - start, 2),
    }


def table(rows: list[dict]) -> str:
    lines = [
        "# What bad input gets",
        "",
        f"Generated by `benchmarks/fault_table.py` (mlff_distiller {__version__}, the shipped "
        "`tiny`); each row is run for real. Case numbers are those of the bad-input issue. "
        "The exported module refuses bad positions, cells and distances itself, so OpenMM "
        "and LAMMPS say the same (LAMMPS as `ERROR: pair_style mlff: the model failed on "
        "rank R: ...`; it refuses non-numeric coordinates before the model sees them); "
        "`tests/unit/test_bad_inputs.py` and `tests/engines/test_lammps.py` check them there.",
        "",
        "| case | tried | outcome | what the user sees | s |",
        "| --- | --- | --- | --- | --- |",
    ]
    for row in rows:
        says = row["says"].replace("|", "\\|")
        lines.append(
            f"| {row['case']} | {row['tried']} | {row['outcome']} | {says} | {row['seconds']} |"
        )
    lines += [
        "",
        "Also (tested in `tests/unit/data/test_labeling.py`, not run here): two `dataset "
        "label` runs on one `--out`: the second stops at once, naming the process that "
        "holds the lock (case 10); the `command` in a dataset's or model's metadata is "
        "shell-quoted, so it pastes back (case 14).",
    ]
    return "\n".join(lines) + "\n"


def main() -> None:
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        scratch = Path(tmp)
        cases = [*PYTHON_CASES, (5, "half an exported file (ASE)", truncated_export(scratch))]
        for number, tried, case in cases:
            rows.append({"case": number, "tried": tried, **run_python(case)})
            print(rows[-1], flush=True)
        for number, argv in cli_cases(scratch):
            shown = shlex.join(argv).replace(str(scratch) + "/", "")
            rows.append(
                {"case": number, "tried": f"`mlff-distill {shown}`", **run_cli(argv, scratch)}
            )
            print(rows[-1], flush=True)
    rows.sort(key=lambda row: row["case"])
    write_json(ROOT / "benchmarks" / "results" / "fault_table.json", {"rows": rows})
    (ROOT / "docs").mkdir(exist_ok=True)
    (ROOT / "docs" / "faults.md").write_text(table(rows))
    print(table(rows))


if __name__ == "__main__":
    main()
