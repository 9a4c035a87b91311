"""A wheel, not the editable checkout: built from the repository, installed into a throw-away
environment that borrows this environment's dependencies (a ``.pth`` line, so nothing is
downloaded), it finds its built-in suites and data, compiles ``pair_style mlff`` from the
sources it ships, and runs a LAMMPS deck with it."""

from __future__ import annotations

import os
import site
import subprocess
import sys
from pathlib import Path

import pytest

from mlff_distiller import StudentCalculator
from mlff_distiller.export import export

ROOT = Path(__file__).resolve().parents[2]

#: Run inside the installed wheel's environment: where things come from, then a single point
#: of 32 waters in LAMMPS (in process, the wheel's own plugin) against the expected energy.
CHECK = """
import json, sys
from pathlib import Path
import mlff_distiller
from mlff_distiller.data import water_box
from mlff_distiller.engines.lammps import lammps_session, plugin_path, write_data
from mlff_distiller.shipped import resolve_student, shipped_names
from mlff_distiller.validation.suite import builtin_suites

model, workdir = Path(sys.argv[1]), Path(sys.argv[2])
data = write_data(water_box(32), workdir / "water.data", elements=["H", "C", "N", "O"])
with lammps_session(workdir) as lmp:
    lmp.commands_string(f'''
units metal
atom_style atomic
boundary {data.boundary}
read_data {data.path}
pair_style mlff {model}
{data.pair_coeff}
run 0
''')
    energy = lmp.get_thermo("pe")
print(json.dumps({"package": mlff_distiller.__file__, "plugin": str(plugin_path()),
                  "suites": builtin_suites(), "energy": energy,
                  "shipped": {n: str(resolve_student("shipped:" + n)) for n in shipped_names()}}))
"""


@pytest.fixture(scope="module")
def wheel_env(tmp_path_factory) -> Path:
    """A fresh environment with the wheel installed (and this one's packages on its path)."""
    work = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q",
         "-w", str(work / "dist"), str(ROOT)],
        check=True, cwd=work, capture_output=True,
    )  # fmt: skip
    (wheel,) = (work / "dist").glob("mlff_distiller-*.whl")
    env = work / "env"
    subprocess.run([sys._base_executable, "-m", "venv", "--without-pip", str(env)], check=True)
    clean = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    purelib = next((env / "lib").glob("python3*/site-packages"))
    # Borrowed dependencies: a path line adds this environment's site-packages without
    # running its .pth files, so the editable checkout's import hook stays out.
    (purelib / "borrowed.pth").write_text("\n".join(site.getsitepackages()) + "\n")
    python = env / "bin" / "python"
    subprocess.run(
        [python, "-m", "pip", "install", "--no-deps", "--ignore-installed", "-q", str(wheel)],
        check=True, cwd=work, capture_output=True, env=clean,
    )  # fmt: skip
    return env


def test_an_installed_wheel_builds_the_plugin_and_runs_lammps(
    wheel_env, tmp_path, make_student_checkpoint
):
    checkpoint = make_student_checkpoint(tmp_path / "best.pt")
    model = export(checkpoint, tmp_path / "student.pt", dtype="float64")
    path = os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])
    env = {**os.environ, "PATH": path, "OMP_NUM_THREADS": "1"}
    for name in ("PYTHONPATH", "MLFF_DISTILLER_LAMMPS_PLUGIN_DIR"):
        env.pop(name, None)
    env.pop("MLFF_DISTILLER_LAMMPS_SOURCES", None)  # the wheel's own sources, nothing else
    build = subprocess.run(
        [wheel_env / "bin" / "mlff-distill", "lammps", "build"],
        cwd=tmp_path, env=env, capture_output=True, text=True,
    )  # fmt: skip
    assert build.returncode == 0, build.stderr[-2000:]
    (tmp_path / "check.py").write_text(CHECK)
    run = subprocess.run(
        [wheel_env / "bin" / "python", "check.py", str(model), str(tmp_path)],
        cwd=tmp_path, env=env, capture_output=True, text=True,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr[-2000:]
    import json

    got = json.loads(run.stdout.strip().splitlines()[-1])
    assert Path(got["package"]).is_relative_to(wheel_env), got["package"]
    assert Path(got["plugin"]).is_relative_to(wheel_env), got["plugin"]
    assert {"quick", "smoke", "standard"} <= set(got["suites"])
    # The shipped students travel as files (the checkout's links, followed), for init_from.
    assert set(got["shipped"]) == {"sevennet0-tiny", "sevennet0-standard"}
    for name, file in got["shipped"].items():
        assert Path(file).is_relative_to(wheel_env) and not Path(file).is_symlink(), file
        assert Path(file).read_bytes() == (ROOT / "torchscript_exports" / f"{name}.pt").read_bytes()
    from mlff_distiller.data import water_box

    atoms = water_box(32)
    atoms.calc = StudentCalculator(model)
    expected = atoms.get_potential_energy()
    assert abs(got["energy"] - expected) <= 1e-8 * abs(expected)
