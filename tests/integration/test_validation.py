"""``mlff-distill validate`` end to end: real SevenNet-0, real OpenMM and LAMMPS.

1. A small student is distilled in the fixture (SevenNet-0 labels of two molecules and a
   water box, a few epochs) and run through the built-in ``quick`` suite; the report's
   numbers are recomputed here from the trajectories it wrote.
2. Broken students must FAIL: with a known-good student as the teacher (so the good one
   passes every check exactly), a student whose forces are 1.2× too large and one whose
   energy jumps inside the cutoff are each caught by the check that should catch them.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from mlff_distiller.cli import main
from mlff_distiller.data import label, perturb, rattle_strain, structures_from_smiles, water_box
from mlff_distiller.engines.runs import Trajectory
from mlff_distiller.export import export, export_module, load_exported
from mlff_distiller.models import Student
from mlff_distiller.models.checkpoint import load_checkpoint, model_from_checkpoint
from mlff_distiller.training import train
from mlff_distiller.validation import load_suite, validate
from mlff_distiller.validation.suite import student_nve_steps

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def distilled(tmp_path_factory, sevennet):
    """A float64 ``tiny`` student distilled from SevenNet-0 in about a minute."""
    work = tmp_path_factory.mktemp("distill")
    molecules = structures_from_smiles(["CCO", "CC(=O)Nc1ccc(O)cc1"], n_conformers=2)
    frames = perturb(molecules, n_samples=8, amplitude=0.06) + rattle_strain(
        [water_box(32)], n_samples=6
    )
    data = label(frames, sevennet, work / "data.h5", progress=False)
    best = train(data, "tiny", work / "run", progress=False, epochs=25, dtype="float64")
    return {"checkpoint": best, "model": export(best, work / "student.pt", dtype="float64")}


@pytest.fixture(scope="module")
def quick_report(distilled, tmp_path_factory):
    out = tmp_path_factory.mktemp("quick")
    status = main(
        ["validate", "--model", str(distilled["model"]), "--teacher", "sevennet-0",
         "--suite", "quick", "--out", str(out), "--quiet"]
    )  # fmt: skip
    report = json.loads((out / "report.json").read_text())
    return {"out": out, "report": report, "status": status}


def test_quick_suite_report_is_complete(quick_report):
    report, out = quick_report["report"], quick_report["out"]
    assert quick_report["status"] == (0 if report["verdict"] == "PASS" else 1)
    assert [s["name"] for s in report["systems"]] == ["ethanol", "paracetamol", "water-32"]
    for system in report["systems"]:
        assert "error" not in system, system.get("traceback")
        assert set(system["engines"]) == {"ase", "openmm", "lammps"}
        for engine in system["engines"].values():
            for key in ("energy_drift_meV_per_atom_ps", "force_rmse_eV_per_A",
                        "latency_ms_median", "speedup_vs_teacher"):  # fmt: skip
                assert np.isfinite(engine[key]), key
            assert engine["verdict"] in ("PASS", "FAIL")
        # The engines agree with each other: a disagreement would be an integration bug.
        for name, agree in system["cross_engine"]["engines"].items():
            assert agree["force_max_abs_eV_per_A"] < 1e-6, name
            assert agree["energy_max_rel"] < 1e-8, name
        for plot in system["plots"]:
            assert (out / plot).stat().st_size > 1000
    markdown = (out / "report.md").read_text()
    assert markdown.startswith(f"# Validation report: {report['verdict']}")
    assert report["model_metadata"]["dtype"] == "float64"
    assert report["versions"] and report["machine"]["cpu_count"] >= 1


def test_report_numbers_match_a_recomputation_from_the_written_files(quick_report):
    report, out = quick_report["report"], quick_report["out"]
    for system in report["systems"]:
        folder = out / "systems" / system["name"] / "trajectories"
        n = system["atoms"]
        for engine, entry in system["engines"].items():
            traj = Trajectory.load(folder / f"student_nve_{engine}.npz")
            total = 1000 * (traj.potential_energy + traj.kinetic_energy) / n
            slope = np.polyfit(traj.times_ps, total, 1)[0]
            assert entry["energy_drift_meV_per_atom_ps"] == pytest.approx(slope, rel=1e-9)
            warmup = system["warmup_steps_untimed"]
            assert entry["latency_ms_median"] == pytest.approx(
                1000 * np.median(traj.step_seconds[warmup:]), rel=1e-9
            )
            assert len(traj.step_seconds) == student_nve_steps(system["protocol"], engine)
        relabelled = np.load(folder / "relabelled.npz")
        diff = relabelled["student_forces"] - relabelled["teacher_forces"]
        rmse = np.sqrt(np.mean(diff**2))
        got = system["force_error"]["student_frames"]["force_rmse_eV_per_A"]
        assert got == pytest.approx(rmse, rel=1e-12)
        # The student forces in the file are the ones of the student trajectory's frames.
        student_nvt = Trajectory.load(folder / "student_nvt.npz")
        np.testing.assert_array_equal(
            relabelled["student_forces"], student_nvt.forces[relabelled["frames"]]
        )
        checks = {c["name"]: c for c in system["checks"]}
        assert checks["force_rmse_student_frames"]["value"] == pytest.approx(rmse, rel=1e-12)


def test_rerun_reuses_the_teacher_references(quick_report, distilled, tmp_path):
    """Teacher MD is the expensive part; a second run over the same cache redoes none."""
    suite = tmp_path / "one.yaml"
    suite.write_text(
        "systems:\n  - name: ethanol\n    structure: smiles:CCO\n"
        "    protocol: {nve_steps: 100, nvt_steps: 100, record_every: 5, relabel_frames: 6,\n"
        "               cross_engine_frames: 3, stability_steps: 1000}\n"
    )
    cache = quick_report["out"] / "cache"
    before = {p: p.stat().st_mtime_ns for p in cache.glob("ethanol-*")}
    report = validate(distilled["model"], "sevennet-0", suite, tmp_path / "out", cache=cache,
                      progress=False)  # fmt: skip
    assert report["systems"][0]["teacher_reference_reused"]
    assert {p: p.stat().st_mtime_ns for p in cache.glob("ethanol-*")} == before


# ------------------------------------------------------------------------ broken students
class Scaled(Student):
    """A student whose energy (so every force) is ``factor`` times the original."""

    def __init__(self, inner: nn.Module, factor: float) -> None:
        super().__init__()
        self.inner = inner
        self.register_buffer("atomic_numbers", inner.atomic_numbers.clone())
        self.cutoff = float(inner.cutoff)
        self.factor = factor

    def forward(self, vectors, edge_index, species):
        return self.factor * self.inner(vectors, edge_index, species)


class Discontinuous(Student):
    """A student with an energy step of ``jump`` eV per pair closer than ``radius`` Å: the
    forces are the original ones, but the energy is not their potential."""

    def __init__(self, inner: nn.Module, radius: float, jump: float) -> None:
        super().__init__()
        self.inner = inner
        self.register_buffer("atomic_numbers", inner.atomic_numbers.clone())
        self.cutoff = float(inner.cutoff)
        self.radius = radius
        self.jump = jump

    def forward(self, vectors, edge_index, species):
        energies = self.inner(vectors, edge_index, species)
        inside = ((vectors * vectors).sum(dim=1) < self.radius**2).to(energies.dtype)
        return energies.index_add(0, edge_index[0], 0.5 * self.jump * inside.detach())


class Welled(Student):
    """A student with an extra H–H well, ``depth`` eV deep at ``r0`` Å (Gaussian, ``width``
    Å): far closer than any pair of an MD frame, so only the close-contact check sees it."""

    def __init__(self, inner: nn.Module, depth: float, r0: float, width: float) -> None:
        super().__init__()
        self.inner = inner
        self.register_buffer("atomic_numbers", inner.atomic_numbers.clone())
        self.cutoff = float(inner.cutoff)
        self.hydrogen = int((inner.atomic_numbers == 1).nonzero()[0, 0])
        self.depth, self.r0, self.width = depth, r0, width

    def forward(self, vectors, edge_index, species):
        energies = self.inner(vectors, edge_index, species)
        r = torch.sqrt((vectors * vectors).sum(dim=1))
        both = (species[edge_index[0]] == self.hydrogen) & (species[edge_index[1]] == self.hydrogen)
        well = -self.depth * torch.exp(-(((r - self.r0) / self.width) ** 2)) * both.to(r.dtype)
        return energies.index_add(0, edge_index[0], 0.5 * well)


def _broken(distilled, wrap, path):
    data = load_checkpoint(distilled["checkpoint"])
    model = wrap(model_from_checkpoint(data, torch.float64)).eval()
    _, metadata = load_exported(distilled["model"])
    return export_module(model, path, metadata)


BROKEN_SUITE = """
systems:
  - name: ethanol
    structure: smiles:CCO
protocol:
  nve_steps: 200
  nvt_steps: 60
  record_every: 4
  relabel_frames: 4
  cross_engine_frames: 2
  stability_steps: 200
thresholds:
  # The fixture's student is trained for seconds and heats ethanol to ~900 K in 0.1 ps of
  # Langevin (the stability check rightly flags that); here it only has to be itself. Its
  # 0.1 ps NVE at that temperature is held to the former drift threshold, which a
  # conservative student meets and an energy step inside the cutoff does not.
  temperature_fraction: 100
  energy_drift_meV_per_atom_ps: 1.0
"""


def _step_radius() -> float:
    """A radius some pair of ethanol's atoms sits at when the run starts: thermal motion
    carries that pair across it within a few femtoseconds."""
    atoms = load_suite_text(BROKEN_SUITE).systems[0]
    start = atoms.load(Path("."))
    d = start.get_all_distances()[np.triu_indices(len(start), 1)]
    return float(d[np.argmin(np.abs(d - 2.5))] + 0.002)


def load_suite_text(text: str):
    with tempfile.TemporaryDirectory() as folder:
        (Path(folder) / "suite.yaml").write_text(text)
        return load_suite(Path(folder) / "suite.yaml")


@pytest.fixture(scope="module")
def against_itself(distilled, tmp_path_factory):
    """Validate against the good student itself as the teacher (any ASE calculator works)."""
    work = tmp_path_factory.mktemp("broken")
    suite = work / "suite.yaml"
    suite.write_text(BROKEN_SUITE)
    kwargs = {"model": str(distilled["model"])}

    def run(model, name):
        return validate(model, "mlff_distiller.calculators:StudentCalculator", suite,
                        work / name, cache=work / "cache", progress=False,
                        teacher_kwargs=kwargs)  # fmt: skip

    return run, work


def _checks(report):
    (system,) = report["systems"]
    assert "error" not in system, system.get("traceback")
    return {c["name"]: c["verdict"] for c in system["checks"]}


def test_the_good_student_passes_against_itself(distilled, against_itself):
    run, _ = against_itself
    report = run(distilled["model"], "good")
    checks = _checks(report)
    assert report["verdict"] == "PASS", [name for name, v in checks.items() if v == "FAIL"]
    assert report["systems"][0]["force_error"]["student_frames"]["force_rmse_eV_per_A"] < 1e-9


def test_forces_scaled_by_one_and_a_fifth_fail_on_force_error(distilled, against_itself):
    run, work = against_itself
    model = _broken(distilled, lambda m: Scaled(m, 1.2), work / "scaled.pt")
    report = run(model, "scaled")
    checks = _checks(report)
    assert report["verdict"] == "FAIL"
    assert checks["force_rmse_student_frames"] == "FAIL"
    # Still a conservative potential: the integration checks pass, so the failure is named.
    # (At 1.5x this barely trained student's stiffest modes heat it past what 0.5 fs
    # integrates well, and every engine's NVE drifts: the factor has to stay modest.)
    assert checks["energy_drift[lammps]"] == "PASS"


def test_an_energy_step_inside_the_cutoff_fails_energy_conservation(distilled, against_itself):
    run, work = against_itself
    radius = _step_radius()
    model = _broken(distilled, lambda m: Discontinuous(m, radius, 0.2), work / "step.pt")
    report = run(model, "step")
    checks = _checks(report)
    assert report["verdict"] == "FAIL"
    for engine in ("ase", "openmm", "lammps"):
        assert "FAIL" in (checks[f"energy_drift[{engine}]"], checks[f"energy_excursion[{engine}]"])
    # Forces are untouched, so the force check does not (wrongly) take the blame.
    assert checks["force_rmse_student_frames"] == "PASS"


def test_a_hydrogen_well_at_close_range_fails_close_contacts_alone(distilled, against_itself):
    run, work = against_itself
    model = _broken(distilled, lambda m: Welled(m, 5.0, 0.40, 0.05), work / "welled.pt")
    report = run(model, "welled")
    checks = _checks(report)
    assert checks["close_contact_well[H-H]"] == "FAIL"
    # (less than 5 eV: the student's own core wall rises steeply there)
    assert report["systems"][0]["close_contacts"]["H-H"]["excess_eV"] > 1.0
    # Nothing MD visits changed: forces and drift are the good student's.
    assert checks["force_rmse_student_frames"] == "PASS"
    assert checks["energy_drift[lammps]"] == "PASS"
    assert report["verdict"] == "FAIL"


def test_suite_file_written_by_a_user_is_accepted():
    system = load_suite_text(BROKEN_SUITE).systems[0]
    assert system.protocol["nve_steps"] == 200
    assert system.thresholds["temperature_fraction"] == 100
