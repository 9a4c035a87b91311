"""The command line: help everywhere, one-line errors with non-zero exits, real runs."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from mlff_distiller.cli import build_parser, main

CLI = [sys.executable, "-m", "mlff_distiller.cli"]


def _run(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([*CLI, *args], capture_output=True, text=True, timeout=timeout)


@pytest.mark.parametrize(
    "argv",
    [
        [],
        ["info"],
        ["dataset"],
        ["dataset", "label"],
        ["dataset", "merge"],
        ["dataset", "split"],
        ["dataset", "export-extxyz"],
        ["dataset", "import-extxyz"],
        ["lammps"],
        ["lammps", "build"],
        ["lammps", "path"],
        ["lammps", "data"],
        ["validate"],
        ["run"],
        ["benchmark"],
        ["demo"],
    ],
)
def test_every_subcommand_has_help(argv, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main([*argv, "--help"])
    assert exit_info.value.code == 0
    assert "usage: mlff-distill" in capsys.readouterr().out


def test_console_script_is_installed():
    import shutil
    from pathlib import Path

    script = Path(sys.executable).with_name("mlff-distill")
    found = script if script.exists() else shutil.which("mlff-distill")
    assert found, "the mlff-distill entry point is not installed (pip install -e .)"
    result = subprocess.run([str(found), "--version"], capture_output=True, text=True)
    assert result.returncode == 0 and "mlff_distiller" in result.stdout


def test_info_reports_versions_and_teachers():
    result = _run("info", "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    for name in ("torch", "openmm", "openmmtorch", "lammps"):
        assert report["versions"][name][0].isdigit(), name
    assert report["teachers"]["sevennet-0"].startswith("available")
    text = _run("info").stdout
    assert "lammps" in text and "sevennet-0" in text


@pytest.mark.teacher
@pytest.mark.slow
def test_label_split_export_end_to_end(tmp_path):
    out = tmp_path / "d.h5"
    result = _run(
        "dataset", "label", "--source", "smiles:O,N,C", "--perturb", "1",
        "--out", str(out), "--teacher", "sevennet-0",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "6 frames" in result.stderr and "rejected" in result.stderr
    assert "frame/s" in result.stderr  # the progress bar shows a rate
    again = _run(
        "dataset", "label", "--source", "smiles:O,N,C", "--perturb", "1", "--out", str(out)
    )
    assert again.returncode == 0 and "already complete" in again.stderr

    split = _run(
        "dataset",
        "split",
        str(out),
        "--fractions",
        "0.34,0.33,0.33",
        "--out",
        str(tmp_path / "s.json"),
    )
    assert split.returncode == 0, split.stderr
    splits = json.loads((tmp_path / "s.json").read_text())
    assert sorted(splits["train"] + splits["val"] + splits["test"]) == list(range(6))

    exported = _run("dataset", "export-extxyz", str(out), str(tmp_path / "d.extxyz"))
    assert exported.returncode == 0, exported.stderr
    imported = _run("dataset", "import-extxyz", str(tmp_path / "d.extxyz"), str(tmp_path / "i.h5"))
    assert imported.returncode == 0 and json.loads(imported.stdout)["frames"] == 6
    info = _run("info", str(out))
    assert json.loads(info.stdout)["teacher"] == "sevennet-0"


@pytest.mark.teacher
@pytest.mark.slow
def test_label_from_yaml_config_with_shards_and_merge(tmp_path):
    config = tmp_path / "label.yaml"
    config.write_text(
        "teacher: sevennet-0\n"
        "structures:\n"
        "  sources: ['smiles:O,N,CO,CC']\n"
        "  seed: 1\n"
        "  sampling:\n"
        "    - {method: perturb, n_samples: 1, amplitude: 0.02}\n"
    )
    shards = []
    for i in range(2):
        shard = tmp_path / f"shard{i}.h5"
        result = _run(
            "dataset",
            "label",
            "--config",
            str(config),
            "--shard",
            f"{i}/2",
            "--out",
            str(shard),
            "--quiet",
        )
        assert result.returncode == 0, result.stderr
        shards.append(str(shard))
    merged = _run("dataset", "merge", *shards, "--out", str(tmp_path / "all.h5"))
    assert merged.returncode == 0, merged.stderr
    assert json.loads(merged.stdout)["frames"] == 8


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (
            ["dataset", "label", "--source", "smiles:C1CC", "--out", "x.h5"],
            "RDKit cannot parse SMILES 'C1CC'",
        ),
        (["dataset", "label", "--source", "nothing.xyz", "--out", "x.h5"], "does not exist"),
        (["dataset", "label", "--source", "smiles:O"], "no output file"),
        (["dataset", "label", "--out", "x.h5"], "no structures"),
        (
            ["dataset", "label", "--source", "smiles:O", "--out", "x.h5", "--teacher", "nope"],
            "unknown teacher",
        ),
        (["dataset", "label", "--source", "smiles:O", "--out", "x.h5", "--shard", "3"], "i/N"),
        (["dataset", "label", "--config", "missing.yaml", "--out", "x.h5"], "config file"),
        (["dataset", "split", "missing.h5"], "does not exist"),
        (["dataset", "split", "missing.h5", "--fractions", "0.5,0.5"], "three numbers"),
        (["info", "model.pt"], "does not exist"),
        (["validate"], "no student: pass --model"),
        (["validate", "--model", "missing.pt"], "does not exist"),
        (["lammps", "data", "missing.xyz", "--out", "x.data"], "missing.xyz"),
        # Checked before the teacher loads: an unloadable teacher would be named otherwise.
        (
            [
                "dataset",
                "label",
                "--source",
                "smiles:O",
                "--out",
                "x.h5",
                "--shard",
                "3/2",
                "--teacher",
                "no_such_package.module:Teacher",
            ],
            "shard 3/2 needs 0 <= i < N",
        ),
        (
            [
                "dataset",
                "label",
                "--source",
                "smiles:O",
                "--out",
                ".",
                "--overwrite",
                "--teacher",
                "no_such_package.module:Teacher",
            ],
            "is a directory",
        ),
        (
            ["train", "--dataset", "missing.h5", "--out", "run", "--set", "epochs=abc"],
            "training option epochs must be a whole number, got 'abc'",
        ),
        (
            ["train", "--dataset", "missing.h5", "--out", "run", "--set", "hidden=64"],
            "training option hidden must be a list",
        ),
    ],
)
@pytest.mark.slow
def test_bad_input_exits_nonzero_with_one_line(tmp_path, argv, message):
    result = subprocess.run(
        [*CLI, *argv], capture_output=True, text=True, cwd=tmp_path, timeout=300
    )
    assert result.returncode != 0
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("mlff-distill: error:") and message in lines[0]
    assert not (tmp_path / "x.h5").exists()


@pytest.mark.teacher
def test_unsupported_element_fails_before_labeling(tmp_path):
    from ase import Atoms
    from ase.io import write

    write(tmp_path / "am.xyz", Atoms("AmH", positions=[[0, 0, 0], [0, 0, 2]]))
    result = _run(
        "dataset", "label", "--source", str(tmp_path / "am.xyz"), "--out", str(tmp_path / "x.h5")
    )
    assert result.returncode == 1
    assert "Am" in result.stderr and "not supported by teacher 'sevennet-0'" in result.stderr


def test_label_command_defaults_are_the_librarys():
    """``dataset label`` without options labels exactly as ``data.label`` and the pipeline's
    labeling stage do by default (one place to change a default, not three that drift)."""
    import inspect

    from mlff_distiller.data.labeling import label
    from mlff_distiller.pipeline.config import DEFAULTS

    args = build_parser().parse_args(
        ["dataset", "label", "--source", "builtin:organic", "--out", "d.h5"]
    )
    library = inspect.signature(label).parameters
    assert args.chunk_size == library["chunk_size"].default == DEFAULTS["labeling"]["chunk_size"]
    assert args.overwrite is library["overwrite"].default


@pytest.mark.slow
@pytest.mark.parametrize("flag", ["--perturb", "--conformers", "--chunk-size"])
def test_negative_counts_are_refused_by_the_parser(flag, tmp_path):
    result = subprocess.run(
        [*CLI, "dataset", "label", "--source", "smiles:O", "--out", "x.h5", flag, "-3"],
        capture_output=True, text=True, cwd=tmp_path, timeout=300,
    )  # fmt: skip
    assert result.returncode == 2
    assert f"argument {flag}: must be at least" in result.stderr and "got -3" in result.stderr
    assert not list(tmp_path.iterdir())


@pytest.mark.slow
def test_train_into_a_file_or_on_a_broken_dataset_leaves_nothing_behind(tmp_path):
    (tmp_path / "afile").write_text("mine")
    (tmp_path / "broken.h5").write_bytes(b"not hdf5 at all")
    into_file = _run("train", "--dataset", str(tmp_path / "broken.h5"),
                     "--out", str(tmp_path / "afile"))  # fmt: skip
    assert into_file.returncode == 1
    assert "afile is a file; training writes a directory" in into_file.stderr
    assert (tmp_path / "afile").read_text() == "mine"
    broken = _run("train", "--dataset", str(tmp_path / "broken.h5"),
                  "--out", str(tmp_path / "run"))  # fmt: skip
    assert broken.returncode == 1 and "broken.h5" in broken.stderr
    assert not (tmp_path / "run").exists()


def _failing(monkeypatch, exc: BaseException) -> None:
    """Make `mlff-distill info` raise ``exc`` (the command's code, not its parsing)."""
    import mlff_distiller.cli as cli

    def boom(args):
        raise exc

    monkeypatch.setattr(cli, "cmd_info", boom)


def test_the_packages_own_errors_print_one_line(monkeypatch, capsys):
    from mlff_distiller.errors import InputError, RunError

    for exc in (InputError("temperature must be positive\nmore"), RunError("LAMMPS failed")):
        _failing(monkeypatch, exc)
        assert main(["info"]) == 1
        assert capsys.readouterr().err == f"mlff-distill: error: {str(exc).splitlines()[0]}\n"


def test_a_bug_keeps_its_traceback_even_as_a_value_error(monkeypatch):
    _failing(monkeypatch, ValueError("an internal shape mismatch"))
    with pytest.raises(ValueError, match="internal shape mismatch"):
        main(["info"])
    _failing(monkeypatch, FileNotFoundError(2, "No such file", "/nowhere/internal.json"))
    with pytest.raises(FileNotFoundError):
        main(["info"])


def test_a_file_error_on_a_path_the_command_line_gave_prints_one_line(
    tmp_path, monkeypatch, capsys
):
    import mlff_distiller.cli as cli

    out = tmp_path / "runs" / "x.xyz"
    for failed in (tmp_path / "d.h5", out, out.parent, tmp_path / "d.h5" / "inside"):

        def boom(args, failed=failed):
            raise PermissionError(13, "Permission denied", str(failed))

        monkeypatch.setattr(cli, "cmd_dataset_export", boom)
        assert main(["dataset", "export-extxyz", str(tmp_path / "d.h5"), str(out)]) == 1
        err = capsys.readouterr().err
        assert err == f"mlff-distill: error: [Errno 13] Permission denied: '{failed}'\n"
    # The same error on a file the command line did not name is a bug: traceback.
    monkeypatch.setattr(
        cli, "cmd_dataset_export",
        lambda args: (_ for _ in ()).throw(PermissionError(13, "denied", "/etc/other")),
    )  # fmt: skip
    with pytest.raises(PermissionError):
        main(["dataset", "export-extxyz", str(tmp_path / "d.h5"), str(out)])
