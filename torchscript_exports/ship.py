"""Copy a finished pipeline run's student into torchscript_exports/ under a release name.

    .venv/bin/python torchscript_exports/ship.py runs/shipped-tiny sevennet0-tiny

writes ``NAME.pt`` (the run's exported student, written again by this version's exporter so
that it has the current format; same weights, checked against the run's file), ``NAME.md``
(the run's model card, with file names and report links pointing at the copies) and
``reports/NAME/`` (the validation report and its plots; the trajectories stay in the run
directory).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
from pathlib import Path

from mlff_distiller.export import export, load_exported

HERE = Path(__file__).resolve().parent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", type=Path, help="a finished `mlff-distill run` directory")
    parser.add_argument("name", help="release name, e.g. sevennet0-tiny")
    args = parser.parse_args()
    summary = json.loads((args.run_dir / "summary.json").read_text())
    student = Path(summary["student"])
    _, metadata = load_exported(student)
    export(student, HERE / f"{args.name}.pt", dtype=metadata["dtype"])
    reports = HERE / "reports" / args.name
    if reports.exists():
        shutil.rmtree(reports)
    validation = args.run_dir / "validation"
    reports.mkdir(parents=True)
    for name in ("report.md", "report.json"):
        shutil.copyfile(validation / name, reports / name)
    for png in validation.glob("systems/*/*.png"):
        target = reports / png.relative_to(validation)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(png, target)
    card = (args.run_dir / "MODEL_CARD.md").read_text()
    card = card.replace(_digest(student), _digest(HERE / f"{args.name}.pt"))  # the new bytes
    card = card.replace("student.pt", f"{args.name}.pt")
    card = card.replace("`validation/report.md`", f"`reports/{args.name}/report.md`")
    (HERE / f"{args.name}.md").write_text(card)
    print(f"wrote {HERE / args.name}.pt, .md and reports/{args.name}/")


def _digest(path: Path) -> str:
    """The SHA-256 prefix a model card quotes."""
    return hashlib.sha256(path.read_bytes()).hexdigest()[:16]


if __name__ == "__main__":
    main()
