"""Distillation training on a dataset labelled by the real SevenNet-0 teacher: outputs,
learning, determinism, exact resume after SIGKILL, data parallel parity under torchrun,
the stress term, reruns and bad input."""

from __future__ import annotations

import csv
import hashlib
import json
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from ase.data import atomic_numbers

from mlff_distiller.cli import main
from mlff_distiller.data import (
    label,
    perturb,
    read_dataset,
    split_indices,
    structures_from_smiles,
    water_box,
)
from mlff_distiller.models import build_graph, collate, evaluate
from mlff_distiller.training import load_checkpoint, make_config, model_from_checkpoint, train

SMILES = ["O", "CO", "CCO", "N", "CN", "C", "CC", "OCO", "NCCO", "c1ccccc1"]
PRESET = "ultra-tiny"
#: Small and fast (≈0.3 s per epoch on one thread), yet the validation force RMSE halves.
#: batch_size 5 over 26 training frames leaves the last batch with one frame, so under
#: torchrun with 2 processes the second rank is empty on that step.
CONFIG = {
    "epochs": 12,
    "dtype": "float64",
    "hidden": [32, 32],
    "batch_size": 5,
    "lr": 0.02,
    "split_by": "frame",
    "threads": 1,
}
CLI = [sys.executable, "-m", "mlff_distiller.cli"]
TORCHRUN = Path(sys.executable).with_name("torchrun")
RUN_FILES = {"best.pt", "last.pt", "metrics.csv", "metrics.json", "test_report.json", "parity.png"}


@pytest.fixture(scope="module", autouse=True)
def _restore_torch_globals():
    """``train`` sets the thread count and deterministic algorithms for the process."""
    threads, deterministic = torch.get_num_threads(), torch.are_deterministic_algorithms_enabled()
    yield
    torch.set_num_threads(threads)
    torch.use_deterministic_algorithms(deterministic)


@pytest.fixture(scope="module")
def dataset(sevennet, tmp_path_factory) -> Path:
    """10 molecules × 3 perturbed copies and 2 perturbed 32-water boxes (with stress)."""
    molecules = perturb(structures_from_smiles(SMILES, seed=0), n_samples=3, seed=1)
    boxes = perturb([water_box(32)], n_samples=2, amplitude=0.03, seed=2)
    path = tmp_path_factory.mktemp("training_data") / "data.h5"
    return label([*molecules, *boxes], sevennet, path, progress=False)


@pytest.fixture(scope="module")
def reference(dataset, tmp_path_factory) -> Path:
    """The run directory of an uninterrupted single-process run with ``CONFIG``."""
    out = tmp_path_factory.mktemp("reference")
    assert train(dataset, PRESET, out, progress=False, **CONFIG) == out / "best.pt"
    return out


def _split(dataset: Path, name: str, seed: int = 0) -> list:
    frames = read_dataset(dataset)
    indices = split_indices(frames, (0.8, 0.1, 0.1), by="frame", seed=seed)[name]
    return [frames[i] for i in indices]


def _errors(checkpoint: Path, frames: list) -> dict[str, float]:
    """Energy MAE (meV/atom) and force RMSE (eV/Å) of a checkpoint, computed here."""
    data = load_checkpoint(checkpoint)
    model = model_from_checkpoint(data)
    numbers = [atomic_numbers[el] for el in data["elements"]]
    graphs = [build_graph(f, data["model_config"]["cutoff"], numbers) for f in frames]
    out = evaluate(model, collate(graphs, torch.float64))
    n_atoms = np.array([len(f) for f in frames])
    e_err = (out["energy"].detach().numpy() - [f.get_potential_energy() for f in frames]) / n_atoms
    f_err = out["forces"].detach().numpy() - np.concatenate([f.get_forces() for f in frames])
    return {
        "energy_mae_meV_per_atom": float(1e3 * np.abs(e_err).mean()),
        "force_rmse_eV_per_A": float(np.sqrt((f_err**2).mean())),
    }


def _max_difference(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> float:
    assert a.keys() == b.keys()
    return max(float((a[k].double() - b[k].double()).abs().max()) for k in a)


def _train_argv(dataset: Path, out: Path) -> list[str]:
    argv = ["train", "--dataset", str(dataset), "--out", str(out), "--preset", PRESET]
    for key, value in CONFIG.items():
        argv += ["--set", f"{key}={json.dumps(value)}"]
    return argv


def _same_run(out: Path, reference: Path, tolerance: float) -> None:
    """``out`` holds the reference run's weights, EMA, history and test report."""
    for name, key in (("best.pt", "model_state"), ("last.pt", "train_state")):
        ours, theirs = load_checkpoint(out / name), load_checkpoint(reference / name)
        assert ours["epoch"] == theirs["epoch"]
        assert _max_difference(ours[key], theirs[key]) <= tolerance
    ours, theirs = load_checkpoint(out / "last.pt"), load_checkpoint(reference / "last.pt")
    assert ours["finished"] and ours["epoch"] == CONFIG["epochs"]
    assert max(float((a - b).abs().max()) for a, b in zip(ours["ema"], theirs["ema"])) <= tolerance
    for mine, ref in zip(ours["history"], theirs["history"], strict=True):
        assert mine["step"] == ref["step"]
        assert mine["val_force_rmse_eV_per_A"] == pytest.approx(
            ref["val_force_rmse_eV_per_A"], rel=1e-9
        )
    report = json.loads((out / "test_report.json").read_text())
    expected = json.loads((reference / "test_report.json").read_text())
    assert report["force_rmse_eV_per_A"] == pytest.approx(expected["force_rmse_eV_per_A"], rel=1e-9)


# ------------------------------------------------------------------------- outputs
def test_training_writes_checkpoints_metrics_report_and_plot(dataset, reference):
    best = torch.load(reference / "best.pt", map_location="cpu", weights_only=True)
    assert best["config"] == make_config(PRESET, CONFIG)
    assert best["preset"] == PRESET and best["dtype"] == "float64"
    assert best["elements"] == ["H", "C", "N", "O"]
    assert best["teacher"]["name"] == "sevennet-0"
    assert best["dataset_hash"] == hashlib.sha256(dataset.read_bytes()).hexdigest()[:16]
    norm = best["normalization"]
    assert len(norm["energy_shift"]) == 4 and norm["energy_scale"] > 0
    assert norm["avg_neighbors"] > 1
    assert best["model_state"]["radial_weights"].dtype == torch.float64

    last = load_checkpoint(reference / "last.pt")
    assert last["finished"] and last["epoch"] == CONFIG["epochs"]
    assert last["optimizer"]["state"] and len(last["ema"]) == len(last["optimizer"]["state"])
    assert len(last["history"]) == CONFIG["epochs"]

    history = json.loads((reference / "metrics.json").read_text())
    with open(reference / "metrics.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert [r["epoch"] for r in history] == list(range(1, CONFIG["epochs"] + 1))
    assert [int(r["epoch"]) for r in rows] == list(range(1, CONFIG["epochs"] + 1))
    for key in ("train_loss", "lr", "val_force_rmse_eV_per_A", "val_energy_mae_meV_per_atom"):
        assert all(np.isfinite(r[key]) for r in history)
        assert [float(r[key]) for r in rows] == pytest.approx([r[key] for r in history])

    # best.pt holds the (EMA) weights of the epoch with the lowest validation force RMSE.
    best_row = min(history, key=lambda r: r["val_force_rmse_eV_per_A"])
    assert best["epoch"] == best_row["epoch"]
    assert _errors(reference / "best.pt", _split(dataset, "val"))[
        "force_rmse_eV_per_A"
    ] == pytest.approx(best_row["val_force_rmse_eV_per_A"], rel=1e-9)

    report = json.loads((reference / "test_report.json").read_text())
    test_frames = _split(dataset, "test")
    assert report["split"] == "test" and report["frames"] == len(test_frames)
    recomputed = _errors(reference / "best.pt", test_frames)
    for key in ("energy_mae_meV_per_atom", "force_rmse_eV_per_A"):
        assert report[key] == pytest.approx(recomputed[key], rel=1e-9)
    assert 0 < report["force_mae_eV_per_A"] < report["force_rmse_eV_per_A"]
    elements = {s for f in test_frames for s in f.get_chemical_symbols()}
    assert set(report["per_element"]) == elements
    assert sum(v["atoms"] for v in report["per_element"].values()) == sum(map(len, test_frames))
    assert all(v["force_rmse_eV_per_A"] > 0 for v in report["per_element"].values())

    assert (reference / "parity.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert {p.name for p in reference.iterdir()} == RUN_FILES


def test_the_student_learns_the_teacher(dataset, reference):
    history = json.loads((reference / "metrics.json").read_text())
    val = [r["val_force_rmse_eV_per_A"] for r in history]
    assert val[-1] < 0.8 * val[0]
    assert history[-1]["train_loss"] < 0.5 * history[0]["train_loss"]
    # ... and beats predicting zero forces by a wide margin.
    forces = np.concatenate([f.get_forces() for f in _split(dataset, "val")])
    assert min(val) < 0.8 * float(np.sqrt((forces**2).mean()))


def test_pair_floors_are_measured_on_the_training_split(dataset, reference):
    """``pair_floors: data`` (the presets' default) becomes, in the checkpoint, each element
    pair's shortest distance in the training frames: no training frame has a pair closer,
    some frame has it within a millimetre; the loaded student carries them."""
    data = load_checkpoint(reference / "best.pt")
    floors = data["model_config"]["pair_floors"]
    cutoff = data["model_config"]["cutoff"]
    frames = _split(dataset, "train")
    shortest: dict[str, float] = {}
    for atoms in frames:
        d = atoms.get_all_distances(mic=bool(atoms.pbc.all()))
        for a in range(len(atoms)):
            for b in range(a + 1, len(atoms)):
                pair = "-".join(sorted([atoms[a].symbol, atoms[b].symbol],
                                       key=lambda s: atomic_numbers[s]))  # fmt: skip
                shortest[pair] = min(shortest.get(pair, cutoff), d[a, b], cutoff)
    assert set(floors) >= set(shortest) and "H-H" in floors
    for pair, distance in shortest.items():
        assert distance - 1e-3 <= floors[pair] <= distance, pair
    model = model_from_checkpoint(data)
    assert float(model.zbl.floor.max()) == pytest.approx(max(floors.values()), abs=1e-6)


def test_select_on_force_mae_keeps_the_epoch_of_lowest_mae(dataset, reference, tmp_path):
    """``select_on: force_mae`` picks best.pt (and drives early stopping) by the validation
    force MAE, while the default run picks it by the RMSE."""
    out = train(dataset, PRESET, tmp_path / "mae", progress=False,
                **{**CONFIG, "select_on": "force_mae"})  # fmt: skip
    history = json.loads((tmp_path / "mae" / "metrics.json").read_text())
    best = load_checkpoint(out)
    assert best["epoch"] == min(history, key=lambda r: r["val_force_mae_eV_per_A"])["epoch"]
    assert best["model_config"]["core_handover"] is True
    by_rmse = min(history, key=lambda r: r["val_force_rmse_eV_per_A"])["epoch"]
    assert load_checkpoint(reference / "best.pt")["epoch"] == by_rmse


# ------------------------------------------------------------------- reproducibility
def test_same_seed_gives_identical_weights_another_seed_does_not(dataset, reference, tmp_path):
    again = train(dataset, PRESET, tmp_path / "again", progress=False, **CONFIG)
    ours, theirs = load_checkpoint(again), load_checkpoint(reference / "best.pt")
    for key, value in theirs["model_state"].items():
        assert torch.equal(ours["model_state"][key], value), key
    other = train(dataset, PRESET, tmp_path / "other", progress=False, **{**CONFIG, "seed": 1})
    assert _max_difference(load_checkpoint(other)["model_state"], theirs["model_state"]) > 1e-3


def test_resume_after_sigkill_matches_an_uninterrupted_run(dataset, reference, tmp_path):
    out = tmp_path / "run"
    argv = [*CLI, *_train_argv(dataset, out)]
    with open(tmp_path / "first.log", "w") as log:
        process = subprocess.Popen(argv, stdout=log, stderr=log, cwd=tmp_path)
        try:
            deadline = time.monotonic() + 300
            done = 0
            while done < 2 and process.poll() is None and time.monotonic() < deadline:
                time.sleep(0.01)
                if (out / "metrics.json").exists():
                    done = len(json.loads((out / "metrics.json").read_text()))
            assert process.poll() is None, (tmp_path / "first.log").read_text()
        finally:
            process.send_signal(signal.SIGKILL)
            process.wait()
    interrupted = load_checkpoint(out / "last.pt")
    assert 2 <= interrupted["epoch"] < CONFIG["epochs"] and not interrupted["finished"]
    assert not (out / "test_report.json").exists()

    result = subprocess.run(argv, capture_output=True, text=True, cwd=tmp_path, timeout=600)
    assert result.returncode == 0, result.stderr
    assert f"resuming {out} after epoch {interrupted['epoch']}" in result.stderr
    _same_run(out, reference, tolerance=1e-12)


def test_rerunning_a_finished_run_returns_at_once(dataset, reference, tmp_path, capsys):
    run = shutil.copytree(reference, tmp_path / "run")
    stamps = {p.name: p.stat().st_mtime_ns for p in run.iterdir()}
    assert train(dataset, PRESET, run, **CONFIG) == run / "best.pt"
    assert "already trained" in capsys.readouterr().err
    assert {p.name: p.stat().st_mtime_ns for p in run.iterdir()} == stamps


def test_a_run_killed_while_reporting_only_writes_the_report(dataset, reference, tmp_path):
    run = shutil.copytree(reference, tmp_path / "run")
    for name in ("test_report.json", "parity.png"):
        (run / name).unlink()
    checkpoints = {name: (run / name).read_bytes() for name in ("best.pt", "last.pt")}
    train(dataset, PRESET, run, progress=False, **CONFIG)
    assert {name: (run / name).read_bytes() for name in checkpoints} == checkpoints
    assert (run / "test_report.json").read_text() == (reference / "test_report.json").read_text()
    assert (run / "parity.png").exists()


def test_another_config_in_the_same_directory_needs_overwrite(dataset, reference, tmp_path):
    run = shutil.copytree(reference, tmp_path / "run")
    changed = {**CONFIG, "epochs": 1}
    with pytest.raises(FileExistsError, match="another config"):
        train(dataset, PRESET, run, progress=False, **changed)
    assert load_checkpoint(run / "last.pt")["epoch"] == CONFIG["epochs"]
    train(dataset, PRESET, run, overwrite=True, progress=False, **changed)
    last = load_checkpoint(run / "last.pt")
    assert last["config"]["epochs"] == 1 and last["epoch"] == 1 and last["finished"]
    assert len(json.loads((run / "metrics.json").read_text())) == 1
    assert json.loads((run / "test_report.json").read_text()) != json.loads(
        (reference / "test_report.json").read_text()
    )


def test_cli_flags_win_over_the_yaml_config(dataset, reference, tmp_path):
    run = shutil.copytree(reference, tmp_path / "run")
    stamps = {p.name: p.stat().st_mtime_ns for p in run.iterdir()}
    config = tmp_path / "train.yaml"
    settings = {"dataset": "elsewhere.h5", "out": "elsewhere", "preset": "standard", **CONFIG}
    config.write_text(yaml.safe_dump(settings))
    argv = ["train", "--config", str(config), "--dataset", str(dataset), "--out", str(run)]
    # Same dataset, preset and options as the reference: the run is already trained.
    assert main([*argv, "--preset", PRESET, "--quiet"]) == 0
    assert {p.name: p.stat().st_mtime_ns for p in run.iterdir()} == stamps
    assert not (tmp_path / "elsewhere").exists()


# --------------------------------------------------------------------- data parallel
def test_torchrun_on_two_processes_matches_one_process(dataset, reference, tmp_path):
    out = tmp_path / "ddp"
    argv = [str(TORCHRUN), "--standalone", "--nproc_per_node", "2", "-m", "mlff_distiller.cli"]
    result = subprocess.run(
        [*argv, *_train_argv(dataset, out), "--quiet"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr
    # Observed: max |Δ| ≈ 1.6e-15 after 12 epochs (float64): only summation order differs,
    # though gradient clipping acts on most steps and the second rank is empty on the last
    # step of every epoch.
    _same_run(out, reference, tolerance=1e-8)
    # Rank 0 alone writes: no temporary files of another rank, nothing but the run's files.
    assert {p.name for p in out.iterdir()} == RUN_FILES


def test_stress_labels_enter_the_loss(dataset, tmp_path):
    train_frames = _split(dataset, "train")
    assert any(f.pbc.all() and "stress" in f.calc.results for f in train_frames)
    one_epoch = {**CONFIG, "epochs": 1}
    weights = [
        load_checkpoint(
            train(dataset, PRESET, tmp_path / str(w), progress=False, stress_weight=w, **one_epoch)
        )["model_state"]
        for w in (0.0, 1.0)
    ]
    assert _max_difference(*weights) > 1e-6


def test_huber_force_loss_is_the_squared_error_below_delta_and_linear_above():
    from mlff_distiller.training.trainer import _loss

    labels = {"energy": torch.zeros(1), "forces": torch.zeros(2, 3, dtype=torch.float64)}
    small = torch.tensor([[0.01, -0.02, 0.03], [0.0, 0.04, -0.01]], dtype=torch.float64)
    large = small.clone()
    large[1, 1] = 1.5  # one component of a squeezed bond's size
    totals = (1, 6, 0, 0)
    config = {**make_config(PRESET, {}), "energy_weight": 0.0, "forces_weight": 1.0}

    def loss(forces: torch.Tensor, delta: float) -> float:
        out = {"energy": torch.zeros(1), "forces": forces}
        cfg = {**config, "force_huber_delta": delta}
        return float(_loss(out, labels, torch.ones(1), totals, cfg))

    squared = float((small**2).sum()) / 6
    assert loss(small, 0.05) == pytest.approx(squared, rel=1e-12)
    assert loss(small, 0.0) == pytest.approx(squared, rel=1e-12)
    # Above delta the component costs 2 delta |df| - delta², not df².
    others = float((small**2).sum() - small[1, 1] ** 2)
    assert loss(large, 0.05) == pytest.approx((others + 2 * 0.05 * 1.5 - 0.05**2) / 6, rel=1e-12)
    assert loss(large, 0.0) == pytest.approx((others + 1.5**2) / 6, rel=1e-12)


def test_huber_delta_changes_the_run_key_only_when_set():
    from mlff_distiller.training.config import config_hash

    plain = make_config(PRESET, {})
    # A run started before the option existed (no such key) resumes under the default.
    before = {k: v for k, v in plain.items() if k != "force_huber_delta"}
    assert config_hash(plain) == config_hash(before)
    assert config_hash(make_config(PRESET, {"force_huber_delta": 0.05})) != config_hash(plain)


def test_huber_force_loss_trains_other_weights(dataset, tmp_path):
    one_epoch = {**CONFIG, "epochs": 1}
    weights = [
        load_checkpoint(
            train(
                dataset, PRESET, tmp_path / str(d), progress=False, force_huber_delta=d, **one_epoch
            )
        )["model_state"]
        for d in (0.0, 0.05)
    ]
    assert _max_difference(*weights) > 1e-6


def _atom_energy_mae(checkpoint: Path, frames: list) -> float:
    """Per-atom energy MAE (eV) of a checkpoint against the teacher's per-atom energies."""
    data = load_checkpoint(checkpoint)
    model = model_from_checkpoint(data)
    numbers = [atomic_numbers[el] for el in data["elements"]]
    graphs = [build_graph(f, data["model_config"]["cutoff"], numbers) for f in frames]
    atomic = evaluate(model, collate(graphs, torch.float64))["atomic_energies"]
    teacher = np.concatenate([f.get_potential_energies() for f in frames])
    return float(np.abs(atomic.detach().numpy() - teacher).mean())


def test_per_atom_energy_labels_are_learned_when_weighted(dataset, reference, tmp_path):
    train_frames = _split(dataset, "train")
    assert all("energies" in f.calc.results for f in train_frames)
    best = train(dataset, PRESET, tmp_path / "atoms", progress=False, atom_energy_weight=50.0,
                 **CONFIG)  # fmt: skip
    # Reference energies are the teacher's mean per-atom energy of each element.
    data = load_checkpoint(best)
    z = np.concatenate([f.numbers for f in train_frames])
    e = np.concatenate([f.get_potential_energies() for f in train_frames])
    expected = [e[z == atomic_numbers[el]].mean() for el in data["elements"]]
    np.testing.assert_allclose(data["normalization"]["energy_shift"], expected, rtol=1e-12)
    # Unweighted, the split of a frame's energy among its atoms is arbitrary; weighted, the
    # student's per-atom energies follow the teacher's on frames it never trained on.
    test = _split(dataset, "test")
    with_labels = _atom_energy_mae(best, test)
    without = _atom_energy_mae(reference / "best.pt", test)
    assert with_labels < 0.5 * without, (with_labels, without)


# ------------------------------------------------------------------------ bad input
@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"epoch": 3}, r"unknown training option\(s\) epoch;"),
        ({"preset": "standard"}, "preset 'standard'"),
        ({"dtype": "float16"}, "float16"),
        ({"epochs": 0}, "epochs must be at least 1"),
        ({"select_on": "loss"}, "select_on must be one of force_rmse, force_mae"),
        ({"force_huber_delta": -0.1}, "force_huber_delta must be 0"),
        ({"init_blend": 1.0}, "init_blend must be at least 0"),
        ({"init_blend": 0.3}, "init_blend blends the trained weights with init_from's"),
    ],
)
def test_bad_options_are_refused_before_any_work(dataset, tmp_path, options, message):
    with pytest.raises(ValueError, match=message):
        train(dataset, PRESET, tmp_path / "run", progress=False, config=options)
    assert not (tmp_path / "run").exists()


def test_unknown_preset_and_missing_dataset_are_refused(dataset, tmp_path):
    with pytest.raises(ValueError, match="unknown preset 'huge'"):
        train(dataset, "huge", tmp_path / "run", progress=False)
    with pytest.raises(FileNotFoundError, match="missing.h5"):
        train(tmp_path / "missing.h5", PRESET, tmp_path / "run", progress=False)
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize(
    ("argv", "code", "message"),
    [
        (["train", "--out", "run"], 2, "no dataset"),
        (["train", "--dataset", "data.h5"], 2, "no output directory"),
        (["train", "--dataset", "missing.h5", "--out", "run"], 1, "missing.h5"),
        (["train", "--dataset", "data.h5", "--out", "run", "--set", "epoch=3"], 1, "epoch;"),
    ],
)
def test_cli_bad_input_exits_nonzero_with_one_line(
    dataset, tmp_path, monkeypatch, capsys, argv, code, message
):
    shutil.copy(dataset, tmp_path / "data.h5")
    monkeypatch.chdir(tmp_path)
    assert main(argv) == code
    lines = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("mlff-distill: error:")
    assert message in lines[0]
    assert not (tmp_path / "run").exists()


# ------------------------------------------------------------------------- fine-tuning
def test_fine_tuning_starts_from_the_given_student(dataset, reference, tmp_path):
    """``init_from`` (a checkpoint or its exported file) starts from those weights, elements,
    floors and normalisation: its first epoch is already as good as the student it started
    from, where a random start is far off, and a few epochs improve on it."""
    from mlff_distiller.export import export

    frames = _split(dataset, "test")
    start = _errors(reference / "best.pt", frames)["force_rmse_eV_per_A"]
    exported = export(reference / "best.pt", tmp_path / "reference.pt", dtype="float64")
    one = {**CONFIG, "epochs": 1, "lr": 1e-3}
    scratch = train(dataset, PRESET, tmp_path / "scratch", progress=False, **one)
    tuned = {}
    for name, init in (("checkpoint", reference / "best.pt"), ("exported", exported)):
        out = tmp_path / name
        best = train(dataset, PRESET, out, progress=False, **one, init_from=str(init))
        tuned[name] = _errors(best, frames)["force_rmse_eV_per_A"]
        data, ref = load_checkpoint(best), load_checkpoint(reference / "best.pt")
        assert data["elements"] == ref["elements"]
        assert data["model_config"] == ref["model_config"]
        assert data["normalization"]["energy_shift"] == pytest.approx(
            ref["normalization"]["energy_shift"], rel=1e-12
        )
        assert load_checkpoint(out / "last.pt")["run_key"]["init_from"]
    assert tuned["checkpoint"] == pytest.approx(tuned["exported"], rel=1e-6)
    assert tuned["checkpoint"] < 1.2 * start
    assert _errors(scratch, frames)["force_rmse_eV_per_A"] > 2 * tuned["checkpoint"]


def test_fine_tuning_on_fewer_elements_keeps_the_students_elements(dataset, reference, tmp_path):
    """A dataset of water only fine-tunes the H/C/N/O student into an H/C/N/O student (its
    carbon and nitrogen weights kept), not an H/O one."""
    waters = [f for f in read_dataset(dataset) if len(f) == 96]
    water_data = label(waters, _labels_of(waters), tmp_path / "water.h5", progress=False)
    best = train(
        water_data,
        PRESET,
        tmp_path / "tuned",
        progress=False,
        **{**CONFIG, "epochs": 1, "split_fractions": [0.5, 0.5, 0.0]},
        init_from=str(reference / "best.pt"),
    )
    assert load_checkpoint(best)["elements"] == load_checkpoint(reference / "best.pt")["elements"]


def test_init_blend_mixes_the_start_back_into_the_fine_tune(dataset, reference, tmp_path):
    """``init_blend`` w: blended.pt holds w × init_from's + (1 − w) × best.pt's weights
    (every trained tensor; normalisation and floors as they were), the run returns and
    reports it, and a rerun returns it without training again."""
    from mlff_distiller.training.trainer import blend_checkpoints

    one = {**CONFIG, "epochs": 2, "lr": 1e-2}
    out = tmp_path / "blend"
    init = reference / "best.pt"
    blended = train(dataset, PRESET, out, progress=False, **one, init_from=str(init),
                    init_blend=0.3)  # fmt: skip
    assert blended == out / "blended.pt"
    start, tuned, mixed = (
        load_checkpoint(p)["model_state"] for p in (init, out / "best.pt", blended)
    )
    trained = {n for n, _ in model_from_checkpoint(load_checkpoint(init)).named_parameters()}
    assert trained and _max_difference(start, tuned) > 1e-4
    for key, value in mixed.items():
        expected = 0.3 * start[key] + 0.7 * tuned[key] if key in trained else tuned[key]
        torch.testing.assert_close(value, expected, rtol=1e-12, atol=1e-14)
        if key not in trained:
            assert torch.equal(value, start[key]), key
    assert json.loads((out / "test_report.json").read_text())["checkpoint"] == "blended.pt"
    assert "metrics" not in load_checkpoint(blended)  # best.pt's, not the blend's
    stamp = blended.stat().st_mtime_ns
    assert train(dataset, PRESET, out, progress=False, **one, init_from=str(init),
                 init_blend=0.3) == blended  # fmt: skip
    assert blended.stat().st_mtime_ns == stamp
    # Another student's non-trained numbers (here its energy shifts) are not a fine-tune's.
    other = load_checkpoint(out / "best.pt")
    other["model_state"] = {**other["model_state"]}
    other["model_state"]["energy_shift"] = other["model_state"]["energy_shift"] + 1.0
    with pytest.raises(ValueError, match="differ in energy_shift"):
        blend_checkpoints(load_checkpoint(init), other, 0.3)


def _labels_of(frames):
    """A calculator that answers with each frame's stored teacher labels (no new labelling)."""
    from ase.calculators.calculator import Calculator, all_changes

    stored = {f.positions.tobytes(): f.calc.results for f in frames}

    class Stored(Calculator):
        implemented_properties = ["energy", "forces", "stress"]

        def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):
            super().calculate(atoms, properties, system_changes)
            self.results = dict(stored[atoms.positions.tobytes()])

    return Stored()


@pytest.mark.parametrize(
    ("init", "options", "error", "message"),
    [
        ("missing.pt", {}, FileNotFoundError, "student 'missing.pt' does not exist"),
        (
            "shipped:nope",
            {},
            FileNotFoundError,
            "no shipped student 'nope'; shipped: sevennet0-standard, sevennet0-tiny",
        ),
        ("shipped:sevennet0-tiny", {}, ValueError, "a 'tiny' student, but this run trains"),
        ("REFERENCE", {"hidden": [16, 16]}, ValueError, r"hidden=\[16, 16\] \(its \[32, 32\]\)"),
        ("", {}, ValueError, "init_from must be a path or shipped:NAME"),
    ],
)
def test_bad_init_from_is_refused_before_any_work(
    dataset, reference, tmp_path, init, options, error, message
):
    init = str(reference / "best.pt") if init == "REFERENCE" else init
    with pytest.raises(error, match=message):
        train(
            dataset,
            PRESET,
            tmp_path / "run",
            progress=False,
            **{**CONFIG, **options},
            init_from=init,
        )
    assert not (tmp_path / "run").exists()
