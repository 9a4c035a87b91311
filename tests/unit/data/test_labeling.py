"""Labeling into HDF5 with the real SevenNet-0 teacher: labels, provenance, resume,
atomicity, rejection of bad frames, shards, extxyz round trip, damaged files."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import h5py
import numpy as np
import pytest
from ase import Atoms
from ase.build import molecule
from ase.calculators.calculator import Calculator, all_changes

from mlff_distiller.data import (
    DatasetError,
    concat_datasets,
    dataset_metadata,
    import_extxyz,
    label,
    merge_datasets,
    perturb,
    read_dataset,
    structures_from_smiles,
    summary,
    write_extxyz,
)
from mlff_distiller.data.cache import read_structure_cache, write_structure_cache
from mlff_distiller.teachers import UnsupportedElementError


@pytest.fixture(scope="module")
def structures():
    mols = structures_from_smiles(["O", "CO", "N"], n_conformers=1, seed=0)
    return perturb(mols, n_samples=2, amplitude=0.03, seed=1)


@pytest.fixture(scope="module")
def water_box():
    from mlff_distiller.data import water_box

    return water_box(32)


@pytest.fixture(scope="module")
def labelled(structures, water_box, sevennet, tmp_path_factory):
    path = tmp_path_factory.mktemp("labelled") / "data.h5"
    return label([*structures, water_box], sevennet, path, progress=False)


def test_labels_equal_the_teacher_and_carry_provenance(labelled, structures, water_box, sevennet):
    frames = read_dataset(labelled)
    assert len(frames) == len(structures) + 1
    for frame, original in zip(frames, [*structures, water_box]):
        np.testing.assert_array_equal(frame.numbers, original.numbers)
        np.testing.assert_array_equal(frame.positions, original.positions)
        reference = original.copy()
        reference.calc = sevennet
        assert frame.get_potential_energy() == pytest.approx(reference.get_potential_energy())
        np.testing.assert_allclose(frame.get_forces(), reference.get_forces(), atol=1e-6)
        assert frame.info["teacher"] == "sevennet-0"
        assert frame.info["group"] == original.info["group"]
        assert frame.info["source"] == original.info["source"]
    assert frames[0].info["sampling"]["method"] == "perturb"
    assert frames[0].info["sampling"]["amplitude_A"] == 0.03


def test_periodic_frames_have_stress_molecules_do_not(labelled, water_box, sevennet):
    frames = read_dataset(labelled)
    box = frames[-1]
    assert box.pbc.all()
    np.testing.assert_allclose(box.cell.array, water_box.cell.array)
    reference = water_box.copy()
    reference.calc = sevennet
    np.testing.assert_allclose(box.get_stress(), reference.get_stress(), atol=1e-7)
    from ase.calculators.calculator import PropertyNotImplementedError

    with pytest.raises(PropertyNotImplementedError):
        frames[0].get_stress()


def test_dataset_metadata_records_units_teacher_and_versions(labelled):
    meta = dataset_metadata(labelled)
    assert meta["format"] == "mlff_distiller.dataset" and meta["complete"]
    assert meta["units"]["length"] == "Angstrom" and meta["units"]["energy"] == "eV"
    assert meta["teacher"]["name"] == "sevennet-0"
    assert meta["teacher"]["cutoff"] == pytest.approx(5.0)
    assert "O" in meta["teacher"]["elements"]
    assert meta["provenance"]["package_version"]
    assert meta["shard"] is None
    s = summary(labelled)
    assert s["elements"]["O"] > 0 and s["periodic_frames"] == 1 and s["rejected"] == 0


def test_rerun_of_a_finished_job_does_no_work(labelled, structures, water_box):
    class Refuses(Calculator):
        implemented_properties = ["energy", "forces"]

        def calculate(self, *args, **kwargs):
            raise AssertionError("a finished dataset must not be relabelled")

    from mlff_distiller.teachers import INFO_ATTRIBUTE, teacher_info
    from mlff_distiller.teachers.base import INFO_ATTRIBUTE as attr

    # Same inputs and the same teacher identity: label() returns at once.
    calc = Refuses()
    frames = read_dataset(labelled)
    meta = dataset_metadata(labelled)
    from mlff_distiller.teachers import TeacherInfo

    setattr(calc, attr, TeacherInfo.from_dict(meta["teacher"]))
    assert INFO_ATTRIBUTE == attr and teacher_info(calc).name == "sevennet-0"
    before = labelled.stat().st_mtime_ns
    assert label([*structures, water_box], calc, labelled, progress=False) == labelled
    assert labelled.stat().st_mtime_ns == before
    assert len(read_dataset(labelled)) == len(frames)


def test_existing_file_needs_overwrite(labelled, structures, sevennet):
    with pytest.raises(FileExistsError, match="overwrite"):
        label(structures[:1], sevennet, labelled, progress=False)


def test_unsupported_element_is_rejected_before_any_labeling(sevennet, tmp_path):
    bad = [molecule("H2O"), Atoms("AmH", positions=[[0, 0, 0], [0, 0, 2.0]])]
    with pytest.raises(UnsupportedElementError, match=r"Am in structure 1"):
        label(bad, sevennet, tmp_path / "bad.h5", progress=False)
    assert list(tmp_path.iterdir()) == []


class FlakyTeacher(Calculator):
    """Stand-in for a teacher that misbehaves on some frames (NaN, absurd forces): a real
    model that does so on demand cannot be had here. Wraps the real SevenNet-0."""

    implemented_properties = ["energy", "forces"]

    def __init__(self, inner: Calculator) -> None:
        super().__init__()
        self.inner = inner

    def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):
        super().calculate(atoms, properties, system_changes)
        work = self.atoms.copy()
        work.calc = self.inner
        energy, forces = work.get_potential_energy(), work.get_forces().copy()
        mode = self.atoms.info.get("misbehave")
        if mode == "nan":
            forces[0, 0] = np.nan
        elif mode == "inf-energy":
            energy = np.inf
        elif mode == "huge":
            forces[1, 2] = 1e4
        self.results = {"energy": energy, "forces": forces}
        if mode == "atom-energies-off":  # per-atom energies that do not add up to the energy
            self.results["energies"] = work.get_potential_energies() + 0.1


def test_per_atom_energies_are_stored_where_the_teacher_gives_them(
    labelled, structures, water_box, sevennet, tmp_path
):
    frames = read_dataset(labelled)
    for frame, original in zip(frames, [*structures, water_box]):
        reference = original.copy()
        reference.calc = sevennet
        expected = reference.get_potential_energies()
        assert np.abs(expected).min() > 0.1  # SevenNet-0 gives them, so they are a real label
        np.testing.assert_allclose(frame.get_potential_energies(), expected, atol=1e-6)
    assert summary(labelled)["atom_energy_frames"] == len(frames)
    # A teacher without per-atom energies, or with some that do not add up to its energy:
    # none are stored, and the frames are still labelled.
    plain = [molecule("H2O"), molecule("NH3")]
    plain[1].info["misbehave"] = "atom-energies-off"
    path = label(plain, FlakyTeacher(sevennet), tmp_path / "plain.h5", progress=False)
    assert summary(path)["atom_energy_frames"] == 0 and len(read_dataset(path)) == 2
    from ase.calculators.calculator import PropertyNotImplementedError

    with pytest.raises(PropertyNotImplementedError):
        read_dataset(path)[0].get_potential_energies()


def test_a_dataset_written_before_per_atom_energies_still_reads(labelled, tmp_path):
    old = tmp_path / "old.h5"
    shutil.copyfile(labelled, old)
    with h5py.File(old, "a") as h5:
        del h5["atom_energies"]
    frames = read_dataset(old)
    assert len(frames) == len(read_dataset(labelled))
    assert all("energies" not in f.calc.results for f in frames)
    assert summary(old)["atom_energy_frames"] == 0


def test_bad_frames_are_rejected_counted_and_never_written(sevennet, tmp_path):
    frames = [molecule("H2O") for _ in range(5)]
    for i, (atoms, mode) in enumerate(zip(frames, [None, "nan", "huge", None, "inf-energy"])):
        atoms.positions[1, 0] += 0.01 * i  # distinct frames: ASE would reuse cached results
        atoms.info["misbehave"] = mode
        atoms.info["group"] = "water"
    path = label(frames, FlakyTeacher(sevennet), tmp_path / "flaky.h5", progress=False)
    good = read_dataset(path)
    assert [f.info["source_index"] for f in good] == [0, 3]
    s = summary(path)
    assert s["rejected"] == 3
    assert sum(n for reason, n in s["rejected_reasons"].items() if "non-finite" in reason) == 2
    assert any("force component 10000.0" in reason for reason in s["rejected_reasons"])


def test_input_errors(sevennet, tmp_path):
    with pytest.raises(ValueError, match="empty"):
        label([], sevennet, tmp_path / "x.h5")
    with pytest.raises(ValueError, match="has no atoms"):
        label([Atoms()], sevennet, tmp_path / "x.h5")
    with pytest.raises(ValueError, match="i/N"):
        label([molecule("H2O")], sevennet, tmp_path / "x.h5", shard="1-2")
    with pytest.raises(ValueError, match="0 <= i < N"):
        label([molecule("H2O")], sevennet, tmp_path / "x.h5", shard="2/2")


def test_a_second_job_on_the_same_dataset_is_refused_while_the_first_runs(sevennet, tmp_path):
    from mlff_distiller._locking import exclusive

    out = tmp_path / "x.h5"
    with exclusive(tmp_path / ".x.h5.lock", "held by the test"):  # what a running job holds
        with pytest.raises(RuntimeError, match=r"x.h5 is being labelled by another process"):
            label([molecule("H2O")], sevennet, out, progress=False)
    assert not out.exists() and not (tmp_path / "x.h5.partial").exists()
    label([molecule("H2O")], sevennet, out, progress=False)  # free again
    assert out.exists()


def test_recorded_command_can_be_pasted_back(sevennet, tmp_path, monkeypatch):
    import shlex

    argv = ["mlff-distill", "dataset", "label", "--out", str(tmp_path / "my data.h5")]
    monkeypatch.setattr(sys, "argv", argv)
    out = label([molecule("H2O")], sevennet, tmp_path / "my data.h5", progress=False)
    assert shlex.split(dataset_metadata(out)["provenance"]["command"]) == argv


def test_resume_after_an_exception_relabels_nothing_done(sevennet, tmp_path):
    """Stop the teacher mid-run (as a crash would), then rerun: only the rest is labelled."""
    frames = [molecule("H2O") for _ in range(7)]
    for i, atoms in enumerate(frames):
        atoms.positions[0, 0] += 0.01 * i

    class Counting(Calculator):
        implemented_properties = ["energy", "forces"]

        def __init__(self, stop_after=None):
            super().__init__()
            self.calls, self.stop_after = 0, stop_after

        def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):
            super().calculate(atoms, properties, system_changes)
            if self.stop_after is not None and self.calls == self.stop_after:
                raise KeyboardInterrupt
            self.calls += 1
            work = self.atoms.copy()
            work.calc = sevennet
            self.results = {"energy": work.get_potential_energy(), "forces": work.get_forces()}

    path = tmp_path / "resume.h5"
    first = Counting(stop_after=5)
    with pytest.raises(KeyboardInterrupt):
        label(frames, first, path, chunk_size=2, progress=False)
    assert not path.exists(), "an interrupted run must not leave a file that looks complete"
    assert (tmp_path / "resume.h5.partial").is_dir()
    second = Counting()
    label(frames, second, path, chunk_size=2, progress=False)
    assert second.calls == 2  # the five finished frames were kept, Ctrl-C included
    assert not (tmp_path / "resume.h5.partial").exists()
    resumed = read_dataset(path)
    assert [f.info["source_index"] for f in resumed] == list(range(7))
    fresh = label(frames, sevennet, tmp_path / "fresh.h5", progress=False)
    for a, b in zip(resumed, read_dataset(fresh)):
        assert a.get_potential_energy() == b.get_potential_energy()


def test_resume_refuses_other_inputs(sevennet, tmp_path):
    path = tmp_path / "d.h5"
    journal = tmp_path / "d.h5.partial"
    frames = [molecule("H2O"), molecule("NH3")]
    with pytest.raises(KeyboardInterrupt):
        label(frames, _InterruptingTeacher(sevennet), path, chunk_size=1, progress=False)
    assert journal.is_dir()
    with pytest.raises(FileExistsError, match="unfinished labeling run with other inputs"):
        label(frames[::-1], sevennet, path, progress=False)
    label(frames[::-1], sevennet, path, progress=False, overwrite=True)
    assert [f.get_chemical_formula() for f in read_dataset(path)] == ["H3N", "H2O"]


class _InterruptingTeacher(Calculator):
    implemented_properties = ["energy", "forces"]

    def __init__(self, inner):
        super().__init__()
        self.inner, self.calls = inner, 0

    def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):
        super().calculate(atoms, properties, system_changes)
        if self.calls == 1:
            raise KeyboardInterrupt
        self.calls += 1
        work = self.atoms.copy()
        work.calc = self.inner
        self.results = {"energy": work.get_potential_energy(), "forces": work.get_forces()}


@pytest.mark.teacher
def test_killed_labeling_process_resumes_from_its_journal(tmp_path):
    """Interrupt for real: SIGKILL the CLI mid-run, then rerun the same command."""
    smiles = ",".join(["O", "N", "C", "CO", "CC", "OO", "CN", "NN", "CCO", "CCC"])
    out = tmp_path / "killed.h5"
    command = [
        sys.executable, "-m", "mlff_distiller.cli", "dataset", "label",
        "--source", f"smiles:{smiles}", "--perturb", "3", "--out", str(out),
        "--chunk-size", "4", "--quiet",
    ]  # fmt: skip
    process = subprocess.Popen(command, stderr=subprocess.PIPE, text=True)
    journal = tmp_path / "killed.h5.partial"
    deadline = time.monotonic() + 240
    while not list(journal.glob("chunk_000001.npz")):
        assert process.poll() is None, process.stderr.read()
        assert time.monotonic() < deadline, "labeling made no progress"
        time.sleep(0.02)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert not out.exists()
    chunks_before = sorted(p.name for p in journal.glob("chunk_*.npz"))
    assert len(chunks_before) >= 2

    rerun = subprocess.run([*command[:-1]], capture_output=True, text=True, timeout=600)
    assert rerun.returncode == 0, rerun.stderr
    assert "resuming" in rerun.stderr
    done_before = int(rerun.stderr.split("resuming")[1].split(":")[1].split("of")[0])
    assert done_before >= 8
    frames = read_dataset(out)
    assert len(frames) == 40
    assert [f.info["source_index"] for f in frames] == list(range(40))
    assert not journal.exists()


def test_shards_merge_into_the_unsharded_dataset(structures, sevennet, tmp_path):
    whole = read_dataset(label(structures, sevennet, tmp_path / "whole.h5", progress=False))
    shards = [
        label(structures, sevennet, tmp_path / f"s{i}.h5", shard=f"{i}/3", progress=False)
        for i in range(3)
    ]
    assert sum(len(read_dataset(s)) for s in shards) == len(structures)
    assert dataset_metadata(shards[1])["shard"] == [1, 3]
    merged = read_dataset(merge_datasets(shards[::-1], tmp_path / "merged.h5"))
    assert [f.info["source_index"] for f in merged] == list(range(len(structures)))
    for a, b in zip(merged, whole):
        assert a.get_potential_energy() == b.get_potential_energy()
        np.testing.assert_array_equal(a.get_forces(), b.get_forces())

    with pytest.raises(DatasetError, match="shards 2 of 3 are missing"):
        merge_datasets(shards[:2], tmp_path / "partial.h5")
    partial = merge_datasets(shards[:2], tmp_path / "partial.h5", allow_partial=True)
    assert dataset_metadata(partial)["missing_shards"] == [2]
    with pytest.raises(DatasetError, match="given twice"):
        merge_datasets([shards[0], shards[0]], tmp_path / "twice.h5")
    with pytest.raises(DatasetError, match="not a shard"):
        merge_datasets([tmp_path / "whole.h5"], tmp_path / "x.h5")
    other = label(structures[:2], sevennet, tmp_path / "other.h5", shard="1/3", progress=False)
    with pytest.raises(DatasetError, match="different inputs fingerprint"):
        merge_datasets([shards[0], other], tmp_path / "x.h5")
    with pytest.raises(FileExistsError):
        merge_datasets(shards, tmp_path / "merged.h5")


def test_concat_joins_datasets_of_one_teacher(labelled, structures, sevennet, tmp_path):
    more = label(structures[:2], sevennet, tmp_path / "more.h5", progress=False)
    joined = read_dataset(concat_datasets([labelled, more], tmp_path / "joined.h5"))
    parts = [*read_dataset(labelled), *read_dataset(more)]
    assert len(joined) == len(parts)
    for a, b in zip(joined, parts):
        np.testing.assert_array_equal(a.positions, b.positions)
        np.testing.assert_array_equal(a.get_forces(), b.get_forces())
        assert a.info["group"] == b.info["group"]
    assert len({f.info["source_index"] for f in joined}) == len(joined)
    assert dataset_metadata(tmp_path / "joined.h5")["concatenated_from"] == [
        str(labelled),
        str(more),
    ]

    foreign = import_extxyz(
        write_extxyz(more, tmp_path / "more.extxyz"), tmp_path / "foreign.h5", teacher="other"
    )
    with pytest.raises(DatasetError, match="another teacher"):
        concat_datasets([more, foreign], tmp_path / "x.h5")
    with pytest.raises(FileExistsError):
        concat_datasets([more], tmp_path / "joined.h5")


def test_extxyz_round_trip(labelled, tmp_path):
    xyz = write_extxyz(labelled, tmp_path / "data.extxyz")
    back = read_dataset(import_extxyz(xyz, tmp_path / "back.h5"))
    original = read_dataset(labelled)
    assert len(back) == len(original)
    for a, b in zip(back, original):
        np.testing.assert_allclose(a.positions, b.positions, atol=1e-7)
        np.testing.assert_allclose(a.get_forces(), b.get_forces(), atol=1e-7)
        assert a.get_potential_energy() == pytest.approx(b.get_potential_energy(), abs=1e-7)
        np.testing.assert_allclose(
            a.get_potential_energies(), b.get_potential_energies(), atol=1e-7
        )
        assert a.info["group"] == b.info["group"]
        assert a.info["teacher"] == "sevennet-0"
    assert back[0].info["sampling"] == original[0].info["sampling"]
    np.testing.assert_allclose(back[-1].get_stress(), original[-1].get_stress(), atol=1e-7)


def test_import_rejects_unlabelled_extxyz(tmp_path):
    from ase.io import write

    write(tmp_path / "plain.extxyz", molecule("H2O"), format="extxyz")
    with pytest.raises(DatasetError, match="no energy and forces"):
        import_extxyz(tmp_path / "plain.extxyz", tmp_path / "x.h5")


def _copy(src: Path, dst: Path) -> Path:
    shutil.copy(src, dst)
    return dst


def test_truncated_file_is_refused(labelled, tmp_path):
    broken = _copy(labelled, tmp_path / "truncated.h5")
    with open(broken, "r+b") as handle:
        handle.truncate(os.path.getsize(broken) // 2)
    with pytest.raises(DatasetError, match="truncated or corrupt"):
        read_dataset(broken)


def test_corrupted_array_is_detected_by_its_checksum(labelled, tmp_path):
    broken = _copy(labelled, tmp_path / "corrupt.h5")
    with h5py.File(broken, "r") as h5:
        offset = h5["forces"].id.get_chunk_info(0).byte_offset
    with open(broken, "r+b") as handle:
        handle.seek(offset + 40)
        handle.write(b"\xff" * 16)
    with pytest.raises(DatasetError, match="truncated or corrupt"):
        read_dataset(broken)


def test_incomplete_and_foreign_files_are_refused(labelled, tmp_path):
    unfinished = _copy(labelled, tmp_path / "unfinished.h5")
    with h5py.File(unfinished, "a") as h5:
        del h5.attrs["complete"]
    with pytest.raises(DatasetError, match="incomplete"):
        read_dataset(unfinished)
    with h5py.File(tmp_path / "foreign.h5", "w") as h5:
        h5["x"] = [1, 2]
    with pytest.raises(DatasetError, match="not an mlff_distiller dataset"):
        read_dataset(tmp_path / "foreign.h5")
    (tmp_path / "text.h5").write_text("hello")
    with pytest.raises(DatasetError, match="truncated or corrupt"):
        read_dataset(tmp_path / "text.h5")
    with pytest.raises(DatasetError, match="does not exist"):
        read_dataset(tmp_path / "missing.h5")


def test_structure_cache_round_trips_exactly(structures, tmp_path):
    write_structure_cache(structures, tmp_path / "c.json")
    back = read_structure_cache(tmp_path / "c.json")
    for a, b in zip(back, structures):
        np.testing.assert_array_equal(a.positions, b.positions)
        assert a.info == b.info
