"""Which parts of the package running a student needs: not the training code."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

SHIPPED = Path(__file__).resolve().parents[2] / "torchscript_exports" / "sevennet0-tiny.pt"


@pytest.mark.slow
def test_running_and_exporting_a_student_imports_no_training_code(tmp_path):
    script = f"""
import sys
from ase.build import molecule
from mlff_distiller import StudentCalculator
from mlff_distiller.export import export
atoms = molecule("CH3CH2OH")
atoms.calc = StudentCalculator({str(SHIPPED)!r})
assert abs(atoms.get_forces()).max() > 0
export({str(SHIPPED)!r}, {str(tmp_path / "again.pt")!r}, dtype="float32")
loaded = sorted(m for m in sys.modules if m.startswith("mlff_distiller.training"))
assert not loaded, loaded
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    assert (tmp_path / "again.pt").is_file()
