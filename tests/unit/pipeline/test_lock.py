"""One process at a time owns a run directory; a second `mlff-distill run` on it is refused
in one line, and the lock dies with the process that held it."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest

from mlff_distiller.cli import main
from mlff_distiller.pipeline import RunBusyError
from mlff_distiller.pipeline.stages import run_lock

HOLD = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from mlff_distiller.pipeline.stages import run_lock
    with run_lock(Path(sys.argv[1])):
        print("held", flush=True)
        time.sleep(60)
    """
)


@pytest.fixture
def holder(tmp_path):
    """A separate process that holds ``tmp_path/run``'s lock until it is killed."""
    run_dir = tmp_path / "run"
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(run_dir)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert proc.stdout.readline().strip() == "held"
        yield run_dir, proc
    finally:
        proc.kill()
        proc.wait()


@pytest.mark.slow
def test_a_second_run_on_a_busy_directory_is_refused_with_the_holders_pid(holder, capsys):
    run_dir, proc = holder
    with pytest.raises(RunBusyError, match=rf"pid {proc.pid}\b.*another --out"):
        with run_lock(run_dir):
            pass
    # Through the CLI: usage exit status, one line, and nothing of the run written.
    assert main(["run", "demo-quick", "--out", str(run_dir), "--quiet"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "is in use by a running `mlff-distill run`" in err[0]
    assert sorted(p.name for p in run_dir.iterdir()) == [".lock"]


@pytest.mark.slow
def test_the_lock_dies_with_a_killed_holder(holder):
    run_dir, proc = holder
    proc.kill()
    proc.wait()
    with run_lock(run_dir):
        assert (run_dir / ".lock").read_text() == f"pid {os.getpid()}\n"
    # Released on exit: it can be taken again at once.
    with run_lock(run_dir):
        pass
