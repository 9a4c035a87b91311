"""The pipeline end to end on a reduced config, with the real teacher (SevenNet-0), the real
training, OpenMM, ``lmp`` and the validation suite.

One run directory is interrupted in every stage in turn (the stage's real work runs, then a
``KeyboardInterrupt`` arrives before its record is finished, the worst moment), and each
rerun must redo only that stage. Then every stage's outputs are checked against an
independent recomputation, a rerun must do nothing, and config edits must redo only the
stages they concern.
"""

from __future__ import annotations

import csv
import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest

from mlff_distiller.data import dataset_metadata, read_dataset
from mlff_distiller.data.cache import read_structure_cache
from mlff_distiller.pipeline import ConfigError, load_config, run_pipeline
from mlff_distiller.pipeline.stages import Stages, file_digest

CONFIG = {
    "name": "reduced",
    "teacher": "sevennet-0",
    "structures": {
        "sources": ["smiles:O,CCO,CN,CC(=O)O"],
        "sampling": [{"method": "perturb", "n_samples": 2, "amplitude": 0.04}],
    },
    "student": {"preset": "tiny", "training": {"epochs": 2, "threads": 1}},
    "active_learning": {
        "rounds": 1,
        "committee": 2,
        "committee_epochs": 1,
        "systems": 2,
        "steps": 20,
        "every": 5,
        "select": 3,
        "max_per_system": 2,
        "eval_frames": 2,
    },
    "md": {"structure": "smiles:CCO", "steps": 20, "report_every": 5},
    "validation": {"suite": "smoke"},
}
STAGES = [
    "structures",
    "label-0",
    "train-0",
    "train-0.1",
    "explore-1",
    "label-1",
    "errors-1",
    "train-1",
    "explore-final",
    "label-final",
    "errors-final",
    "export",
    "md-openmm",
    "md-lammps",
    "validate",
]


class Recorder:
    """Wraps ``Stages.run`` to see which stages really did their work, and to interrupt one."""

    def __init__(self, monkeypatch) -> None:
        self.worked: list[str] = []
        self.interrupt: str | None = None
        original = Stages.run
        recorder = self

        def run(stages, name, inputs, work, files=()):
            def observed(restart):
                outputs = work(restart)
                recorder.worked.append(name)
                if name == recorder.interrupt:
                    raise KeyboardInterrupt
                return outputs

            return original(stages, name, inputs, observed, files)

        monkeypatch.setattr(Stages, "run", run)


@pytest.fixture(scope="module")
def pipeline_run(tmp_path_factory):
    """Interrupt the pipeline in every stage in turn, then let it finish; returns the run
    directory, the summary and what every attempt did."""
    run_dir = tmp_path_factory.mktemp("pipeline") / "run"
    attempts = []
    with pytest.MonkeyPatch.context() as monkeypatch:
        recorder = Recorder(monkeypatch)
        for stage in STAGES:
            recorder.worked, recorder.interrupt = [], stage
            with pytest.raises(KeyboardInterrupt):
                run_pipeline(CONFIG, run_dir, progress=False)
            attempts.append((stage, list(recorder.worked)))
        recorder.worked, recorder.interrupt = [], None
        result = run_pipeline(CONFIG, run_dir, progress=False)
        attempts.append((None, list(recorder.worked)))
    return run_dir, result, attempts


def test_an_interrupted_stage_is_redone_and_finished_stages_are_not(pipeline_run):
    _, _, attempts = pipeline_run
    for k, (stage, worked) in enumerate(attempts[:-1]):
        # Attempt k redoes the stage interrupted in attempt k-1, then reaches its own.
        expected = [STAGES[k - 1], stage] if k else [stage]
        assert worked == expected, f"interrupting {stage}"
    assert attempts[-1][1] == [STAGES[-1]]


def test_every_stage_is_recorded_as_finished(pipeline_run):
    run_dir, result, _ = pipeline_run
    for stage in STAGES:
        record = json.loads((run_dir / "stages" / f"{stage}.json").read_text())
        assert record["status"] == "finished", stage
        outputs = Stages(run_dir).outputs(record)
        for name, digest in record["digests"].items():
            assert file_digest(outputs[name]) == digest
        # Paths inside the run directory are recorded relative to it.
        for name in record["in_run_dir"]:
            assert not Path(record["outputs"][name]).is_absolute(), (stage, name)
            assert (run_dir / record["outputs"][name]).exists(), (stage, name)
    assert [s["name"] for s in result["stages"]] == STAGES
    assert json.loads((run_dir / "summary.json").read_text()) == result


def test_datasets_grow_by_the_labelled_frames(pipeline_run):
    run_dir, result, _ = pipeline_run
    structures = read_structure_cache(run_dir / "structures" / "structures.json")
    assert len(structures) == 4 * 3  # four molecules and two displaced copies of each
    first = read_dataset(run_dir / "round-0" / "labels.h5")
    assert len(first) == len(structures)
    assert dataset_metadata(run_dir / "round-0" / "labels.h5")["teacher"]["name"] == "sevennet-0"

    frames = read_structure_cache(run_dir / "round-1" / "frames.json")
    roles = [f.info["sampling"]["role"] for f in frames]
    assert roles.count("selected") == 3 and roles.count("eval") == 2
    new = read_dataset(run_dir / "round-1" / "labels.h5")
    grown = read_dataset(run_dir / "round-1" / "dataset.h5")
    assert len(grown) == len(first) + len(new) == result["dataset_frames"]
    for a, b in zip(grown, [*first, *new]):
        np.testing.assert_array_equal(a.positions, b.positions)
        np.testing.assert_array_equal(a.get_forces(), b.get_forces())
        assert a.info["group"] == b.info["group"]
    assert len({f.info["source_index"] for f in grown}) == len(grown)


def test_selected_frames_are_those_the_committee_disagrees_on_most(pipeline_run):
    from mlff_distiller import StudentCalculator

    run_dir, _, _ = pipeline_run
    frames = read_structure_cache(run_dir / "round-1" / "frames.json")
    members = [run_dir / "round-0" / "student" / "best.pt"]
    members.append(run_dir / "round-0" / "student-1" / "best.pt")
    calcs = [StudentCalculator(m) for m in members]
    for atoms in frames:
        forces = np.stack([c.get_forces(atoms.copy()) for c in calcs])
        expected = np.linalg.norm(forces.std(axis=0), axis=1).max()
        assert atoms.info["sampling"]["disagreement_eV_per_A"] == pytest.approx(expected, 1e-5)
    # The selection is the pool's highest scores, at most max_per_system per trajectory.
    pool = json.loads((run_dir / "round-1" / "explore.json").read_text())["pool"]
    taken, per_system = set(), {}
    for entry in sorted(pool, key=lambda e: -e["disagreement_eV_per_A"]):
        if len(taken) < 3 and per_system.get(entry["system"], 0) < 2:
            taken.add((entry["system"], entry["step"]))
            per_system[entry["system"]] = per_system.get(entry["system"], 0) + 1
    chosen = {(f.info["sampling"]["system"], f.info["sampling"]["step"]) for f in frames[:3]}
    assert chosen == taken
    assert all(f.info["sampling"]["role"] == "selected" for f in frames[:3])
    # The committee member is a different student (another seed), not a copy.
    assert file_digest(members[0]) != file_digest(members[1])


def test_one_round_exploring_a_water_box_in_lammps(tmp_path):
    """One active learning round with ``engine: lammps`` on 2 ranks, on a water box: the
    committee checkpoints are exported and run as ``pair_style mlff``, LAMMPS writes their
    force deviation, and the selected frames are the pool's most disagreed ones, each score
    the committee's disagreement recomputed in Python."""
    from mlff_distiller import StudentCalculator

    config = {
        "name": "water-in-lammps",
        "teacher": "sevennet-0",
        "structures": {
            "sources": ["builtin:water-32"],
            "sampling": [{"method": "perturb", "n_samples": 4, "amplitude": 0.04}],
        },
        "student": {"preset": "ultra-tiny", "training": {
            "epochs": 2, "threads": 1, "split_by": "frame", "split_fractions": [0.6, 0.2, 0.2],
        }},  # fmt: skip
        "active_learning": {
            "rounds": 1, "committee": 2, "committee_epochs": 1, "systems": 1, "steps": 20,
            "every": 5, "select": 2, "max_per_system": 2, "eval_frames": 1,
            "engine": "lammps", "nprocs": 2,
        },
        "md": None,
        "validation": None,
    }  # fmt: skip
    run_dir = tmp_path / "run"
    result = run_pipeline(config, run_dir, progress=False)
    deviation = (run_dir / "round-1" / "md" / "system-0" / "devi.out").read_text()
    assert "committee of 2 models" in deviation
    assert (run_dir / "final" / "md" / "system-0" / "log.lammps").is_file()
    frames = read_structure_cache(run_dir / "round-1" / "frames.json")
    assert all(f.pbc.all() and len(f) == 96 for f in frames)
    members = [run_dir / "round-0" / "student" / "best.pt"]
    members.append(run_dir / "round-0" / "student-1" / "best.pt")
    calcs = [StudentCalculator(m) for m in members]
    pool = json.loads((run_dir / "round-1" / "explore.json").read_text())["pool"]
    assert [entry["step"] for entry in pool] == [5, 10, 15, 20]
    scores = []
    for atoms in frames:
        forces = np.stack([c.get_forces(atoms.copy()) for c in calcs])
        expected = np.linalg.norm(forces.std(axis=0), axis=1).max()
        scores.append(atoms.info["sampling"]["disagreement_eV_per_A"])
        assert scores[-1] == pytest.approx(expected, rel=1e-4)
    assert sorted(scores[:2]) == sorted(e["disagreement_eV_per_A"] for e in pool)[-2:]
    assert result["dataset_frames"] == 5 + 2 + 1


def test_on_trajectory_errors_match_a_recomputation(pipeline_run):
    from mlff_distiller import StudentCalculator

    run_dir, result, _ = pipeline_run
    rounds = result["active_learning"]
    assert [r["round"] for r in rounds] == [0, 1]
    for entry, labels in zip(rounds, ("round-1/labels.h5", "final/labels.h5")):
        frames = [f for f in read_dataset(run_dir / labels) if f.info["sampling"]["role"] == "eval"]
        calc = StudentCalculator(entry["student"])
        diff = np.concatenate([calc.get_forces(_bare(f)) - f.get_forces() for f in frames])
        rmse = np.sqrt(np.mean(diff**2))
        assert entry["on_trajectory"]["eval"]["force_rmse_eV_per_A"] == pytest.approx(rmse, 1e-6)
        assert entry["on_trajectory"]["eval"]["frames"] == len(frames) == 2


def _bare(atoms):
    copy = atoms.copy()
    copy.calc = None
    return copy


def test_the_exported_student_is_the_last_round_trained_on_the_grown_data(pipeline_run):
    from mlff_distiller.export import load_exported
    from mlff_distiller.training import load_checkpoint

    run_dir, result, _ = pipeline_run
    checkpoint = load_checkpoint(result["checkpoint"])
    assert result["checkpoint"] == str(run_dir / "round-1" / "student" / "best.pt")
    _, metadata = load_exported(result["student"])
    assert metadata["dataset_hash"] == checkpoint["dataset_hash"]
    assert metadata["dtype"] == "float32"
    assert metadata["elements"] == ["H", "C", "N", "O"]


def test_engine_runs_wrote_their_trajectories(pipeline_run):
    from mlff_distiller.engines.lammps import read_thermo

    run_dir, result, _ = pipeline_run
    openmm = result["md"]["openmm"]
    with open(openmm["table"]) as handle:
        rows = list(csv.DictReader(handle))
    assert [int(r['#"Step"']) for r in rows] == [5, 10, 15, 20]
    # OpenMM integrated all 9 atoms of ethanol: its temperature and kinetic energy imply
    # 3N - 3 degrees of freedom (the centre of mass is held still).
    for row in rows:
        kinetic = float(row["Kinetic Energy (kJ/mole)"])
        temperature = float(row["Temperature (K)"])
        dof = 2 * kinetic / (0.00831446261815324 * temperature)
        assert dof == pytest.approx(3 * 9 - 3, rel=1e-3)
    assert (run_dir / "md" / "openmm" / "trajectory.dcd").stat().st_size > 0
    lammps = result["md"]["lammps"]
    thermo = read_thermo(run_dir / "md" / "lammps" / "log.lammps")[-1]
    assert [int(r["Step"]) for r in thermo] == [0, 5, 10, 15, 20]
    assert "with 9 atoms" in (run_dir / "md" / "lammps" / "log.lammps").read_text()
    deck = (run_dir / "md" / "lammps" / "in.lammps").read_text()
    assert re.search(r"^pair_style\s+mlff\s", deck, re.M) and "\nread_data data.lammps\n" in deck
    for run in (openmm, lammps):
        assert 0 < run["mean_temperature_K"] < 5000


def test_validation_report_is_the_summary_verdict(pipeline_run):
    run_dir, result, _ = pipeline_run
    report = json.loads((run_dir / "validation" / "report.json").read_text())
    assert result["validation"]["verdict"] == report["verdict"]
    assert result["validation"]["systems"] == {s["name"]: s["verdict"] for s in report["systems"]}


def test_model_card_states_the_run_numbers(pipeline_run):
    run_dir, result, _ = pipeline_run
    card = (run_dir / "MODEL_CARD.md").read_text()
    assert result["model_card"] == str(run_dir / "MODEL_CARD.md")
    assert f"force RMSE {result['test']['force_rmse_eV_per_A']:.3f} eV/Å" in card
    for entry in result["active_learning"]:
        rmse = entry["on_trajectory"]["eval"]["force_rmse_eV_per_A"]
        assert f"Round {entry['round']} student" in card and f"{rmse:.3f} eV/Å" in card
    assert f"verdict **{result['validation']['verdict']}**" in card
    assert "Trained elements: H, C, N, O." in card
    assert f"{result['dataset_frames']} labelled frames" in card


def test_a_moved_run_directory_is_still_done(pipeline_run, monkeypatch, tmp_path):
    run_dir, result, _ = pipeline_run
    shutil.copytree(run_dir, tmp_path / "moved")
    monkeypatch.chdir(tmp_path)  # and named relative to another working directory
    recorder = Recorder(monkeypatch)
    moved = run_pipeline(CONFIG, "moved", progress=False)
    assert recorder.worked == []
    # What the summary points at is the moved copy, identical to the original.
    for key in ("student", "checkpoint", "dataset"):
        assert Path(moved[key]).resolve().is_relative_to(tmp_path / "moved"), key
        assert file_digest(moved[key]) == file_digest(result[key]), key
    assert moved["validation"]["verdict"] == result["validation"]["verdict"]
    # The engine inputs name the student relative to their own folder: they still find it.
    student = Path(moved["student"]).resolve()
    md_dir = tmp_path / "moved" / "md"
    deck = (md_dir / "lammps" / "in.lammps").read_text()
    model = re.search(r"^pair_style\s+mlff\s+(\S+)", deck, re.M).group(1)
    assert (md_dir / "lammps" / model).resolve() == student
    script = (md_dir / "openmm" / "run_openmm.py").read_text()
    model = re.search(r"create_system\(pdb\.topology, '([^']+)'\)", script).group(1)
    assert (md_dir / "openmm" / model).resolve() == student


def test_rerun_does_nothing_and_edits_redo_only_what_they_concern(pipeline_run, monkeypatch):
    run_dir, _, _ = pipeline_run
    recorder = Recorder(monkeypatch)
    run_pipeline(CONFIG, run_dir, progress=False)
    assert recorder.worked == []

    edited = {**CONFIG, "md": {**CONFIG["md"], "steps": 10}}
    run_pipeline(edited, run_dir, progress=False)
    assert recorder.worked == ["md-openmm", "md-lammps"]

    recorder.worked = []
    edited["validation"] = None
    result = run_pipeline(edited, run_dir, progress=False)
    assert recorder.worked == [] and result["validation"] is None

    # A finished output that was changed on disk is rebuilt, and only what depends on it.
    recorder.worked = []
    (run_dir / "student.pt").write_bytes(b"truncated")
    run_pipeline(edited, run_dir, progress=False)
    assert recorder.worked == ["export"]


@pytest.mark.parametrize(
    "config, message",
    [
        ({"teacher": "sevennet-0"}, "no structures"),
        ({**CONFIG, "studnet": {}}, "unknown key(s) studnet"),
        ({**CONFIG, "active_learning": {"rounds": 1, "committee": 0}}, "committee"),
        ({**CONFIG, "active_learning": {"rounds": -1}}, "non-negative"),
        ({**CONFIG, "md": {"engines": ["gromacs"]}}, "gromacs"),
        ({**CONFIG, "export": {"dtype": "float16"}}, "float32 or float64"),
        ({**CONFIG, "student": {"epochs": 3}}, "under student"),
        ({**CONFIG, "student": {"training": {"epoch": 3}}}, "unknown training option"),
        ({**CONFIG, "student": {"preset": "huge"}}, "unknown preset"),
        ({**CONFIG, "student": {"training": {"init_from": "shipped:nope"}}}, "no shipped student"),
    ],
)
def test_bad_configs_are_one_line_errors(config, message):
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        load_config(config)


def test_builtin_configs_load(tmp_path):
    for name in ("demo", "demo-quick"):
        assert load_config(name)["name"] == name
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "missing.yaml")
