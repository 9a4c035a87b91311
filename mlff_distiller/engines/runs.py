"""One way to run a student in every engine: MD protocols (:func:`run`) and single points
(:func:`evaluate`) in ASE, OpenMM and LAMMPS, returning the same :class:`Trajectory`.

The validation suite, the pipeline and the benchmarks call these rather than driving an
engine themselves.

Every run starts from the same positions and velocities (:func:`initial_velocities`), so
teacher and student trajectories differ only by their forces (and, between engines, by the
integrator's rounding). Each MD step is timed on its own: the step latency includes every
force call the engine makes, with atoms that really moved (no cached results).
"""

from __future__ import annotations

import ctypes
import resource
import time
import warnings
from dataclasses import dataclass, fields
from pathlib import Path

import numpy as np
from ase import Atoms, units
from ase.calculators.calculator import Calculator
from ase.md.langevin import Langevin
from ase.md.velocitydistribution import Stationary, ZeroRotation, thermalize_momenta
from ase.md.verlet import VelocityVerlet

from ..errors import InputError
from ..files import atomic_path

# NVT in every engine: Langevin with the centre of mass free, so all 3N degrees of freedom
# are thermalised. The engines' options that hold it fixed (ASE's ``fixcm=True``, LAMMPS'
# ``zero yes``) run small systems hot. Measured here at a 300 K target: ethanol at 420-480 K
# in both engines, with the teacher and with the students alike, and a 9-atom EMT copper
# cluster at 341 K. Part of the teacher reference cache key (a change reruns the teacher).
THERMOSTAT = "langevin, centre of mass free"

#: The engines a student runs in, and the protocols :func:`run` knows in each of them:
#: velocity Verlet, Langevin NVT (centre of mass free), Langevin NPT (isotropic, periodic
#: systems) and minimisation (``min``).
ENGINES = ("ase", "openmm", "lammps")
PROTOCOLS = ("nve", "nvt", "npt", "min")
#: The barostats' time scale (ps): ASE's ``P_tau``, LAMMPS' ``Pdamp``; OpenMM's Monte Carlo
#: barostat tries a volume move every :data:`BAROSTAT_EVERY` steps instead.
BAROSTAT_PS = 0.5
BAROSTAT_EVERY = 25
#: A minimisation stops when no atom feels more than this force (eV/Å), in every engine.
MINIMISE_FMAX = 0.01


@dataclass
class Trajectory:
    """Frames recorded every ``record_every`` steps (the first frame is the start).

    A minimisation (``protocol == "min"``) records iterations instead of steps: its
    ``times_ps`` and kinetic energies are zero, its last frame is where it stopped, and
    ``step_seconds`` times its iterations (LAMMPS: its ``record_every`` iterations at a time).
    """

    engine: str
    protocol: str
    timestep_fs: float
    record_every: int
    numbers: np.ndarray  # [N]
    times_ps: np.ndarray  # [T]
    positions: np.ndarray  # [T, N, 3] Å
    cell: np.ndarray  # [3, 3] Å (zeros for a molecule)
    potential_energy: np.ndarray  # [T] eV
    kinetic_energy: np.ndarray  # [T] eV
    forces: np.ndarray  # [T, N, 3] eV/Å
    step_seconds: np.ndarray  # [S] wall time of each MD step
    cells: np.ndarray | None = None  # [T, 3, 3] Å, the cell of each frame (NPT only)

    @property
    def total_energy(self) -> np.ndarray:
        return self.potential_energy + self.kinetic_energy

    @property
    def temperature_K(self) -> np.ndarray:
        """Instantaneous temperature. NVT runs thermalise all 3N degrees of freedom, the
        centre of mass included (see :data:`THERMOSTAT`); NVE runs start with no
        centre-of-mass momentum and keep none, so they have 3N - 3."""
        dof = 3 * len(self.numbers) - (0 if self.protocol in ("nvt", "npt") else 3)
        return 2 * self.kinetic_energy / (dof * units.kB)

    def frames(self, indices: list[int] | None = None) -> list[Atoms]:
        """The recorded frames as ``ase.Atoms`` (periodic if the cell is set)."""
        periodic = bool(np.abs(self.cell).sum() > 0)
        chosen = range(len(self.times_ps)) if indices is None else indices
        cells = self.cells if self.cells is not None else [self.cell] * len(self.times_ps)
        return [
            Atoms(numbers=self.numbers, positions=self.positions[i], cell=cells[i], pbc=periodic)
            for i in chosen
        ]

    @property
    def volume_A3(self) -> np.ndarray:
        """The cell volume of each frame (Å³); constant but for NPT."""
        cells = self.cells if self.cells is not None else [self.cell] * len(self.times_ps)
        return np.array([abs(np.linalg.det(c)) for c in cells])

    def save(self, path: Path) -> Path:
        """Write as ``.npz``, atomically (a killed run never leaves a file that looks done)."""
        path = Path(path)
        arrays = {f.name: np.asarray(getattr(self, f.name)) for f in fields(self)
                  if getattr(self, f.name) is not None}  # fmt: skip
        with atomic_path(path) as partial:
            np.savez_compressed(partial, **arrays)
        return path

    @classmethod
    def load(cls, path: Path) -> Trajectory:
        with np.load(path) as data:
            values = {f.name: data[f.name] for f in fields(cls) if f.name in data}
        for name in ("engine", "protocol"):
            values[name] = str(values[name])
        values["timestep_fs"] = float(values["timestep_fs"])
        values["record_every"] = int(values["record_every"])
        return cls(**values)


def peak_memory_mb() -> float:
    """Peak resident memory of this process so far (MB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def initial_velocities(atoms: Atoms, temperature_K: float, seed: int) -> np.ndarray:
    """Maxwell-Boltzmann velocities (ASE units) at ``temperature_K`` from ``seed``, with no
    centre-of-mass motion (and no rotation for a molecule)."""
    work = atoms.copy()
    thermalize_momenta(work, temperature_K, exact_temperature=True, rng=np.random.default_rng(seed))
    Stationary(work)
    if not work.pbc.any():
        ZeroRotation(work)
    return work.get_velocities()


def _record(traj: dict, t_ps: float, positions, pe: float, ke: float, forces, cell=None) -> None:
    if cell is not None:
        traj.setdefault("cells", []).append(np.array(cell, dtype=float))
    traj["times_ps"].append(t_ps)
    traj["positions"].append(np.array(positions, dtype=float))
    traj["potential_energy"].append(float(pe))
    traj["kinetic_energy"].append(float(ke))
    traj["forces"].append(np.array(forces, dtype=float))


def _finish(engine, protocol, atoms, dt_fs, every, rec, step_seconds) -> Trajectory:
    return Trajectory(
        engine=engine,
        protocol=protocol,
        timestep_fs=dt_fs,
        record_every=every,
        numbers=atoms.numbers.copy(),
        times_ps=np.array(rec["times_ps"]),
        positions=np.array(rec["positions"]),
        cell=atoms.cell.array.copy() if atoms.pbc.all() else np.zeros((3, 3)),
        potential_energy=np.array(rec["potential_energy"]),
        kinetic_energy=np.array(rec["kinetic_energy"]),
        forces=np.array(rec["forces"]),
        step_seconds=np.array(step_seconds),
        cells=np.array(rec["cells"]) if rec.get("cells") else None,
    )


def _empty() -> dict[str, list]:
    return {
        k: [] for k in ("times_ps", "positions", "potential_energy", "kinetic_energy", "forces")
    }


def _finite_or_stop(pe: float, engine: str) -> None:
    if not np.isfinite(pe):
        raise FloatingPointError(f"{engine}: the potential energy became {pe}")


def _integrate(engine, protocol, atoms, steps, timestep_fs, record_every, advance, state,
               progress, cell=None) -> Trajectory:  # fmt: skip
    """``steps`` calls of ``advance()`` (one MD step each, timed on its own), with ``state()``
    (positions, potential and kinetic energy, forces) and, given ``cell``, ``cell()``
    recorded at the start and every ``record_every`` steps; a non-finite energy stops the
    run."""
    rec = _empty()
    _record(rec, 0.0, *state(), cell=None if cell is None else cell())
    step_seconds = []
    for step in range(1, steps + 1):
        start = time.perf_counter()
        advance()
        step_seconds.append(time.perf_counter() - start)
        if step % record_every == 0:
            positions, pe, ke, forces = state()
            _finite_or_stop(pe, engine)
            _record(rec, step * timestep_fs / 1000.0, positions, pe, ke, forces,
                    cell=None if cell is None else cell())  # fmt: skip
        if progress is not None:
            progress(1)
    return _finish(engine, protocol, atoms, timestep_fs, record_every, rec, step_seconds)


def run_ase(
    atoms: Atoms,
    velocities: np.ndarray,
    calc: Calculator,
    protocol: str,
    steps: int,
    timestep_fs: float,
    record_every: int,
    temperature_K: float = 300.0,
    friction_per_ps: float = 10.0,
    seed: int = 0,
    engine: str = "ase",
    progress=None,
    fmax_eV_per_A: float = MINIMISE_FMAX,
    pressure_bar: float = 1.0,
) -> Trajectory:
    """NVE (velocity Verlet), NVT (Langevin), NPT (``LangevinBAOAB``: Langevin on the atoms
    and on an isotropic cell) or a minimisation (BFGS, ``steps`` iterations at most) in ASE
    with any calculator (NPT needs one with stress)."""
    work = atoms.copy()
    work.set_velocities(velocities)
    work.calc = calc
    dt = timestep_fs * units.fs
    if protocol == "min":
        return _minimise_ase(work, atoms, steps, record_every, fmax_eV_per_A, engine, progress)
    cell = None  # recorded per frame for NPT only
    if protocol == "nve":
        dyn = VelocityVerlet(work, timestep=dt)
    elif protocol == "npt":
        from ase.md.langevinbaoab import LangevinBAOAB

        _periodic_for_npt(atoms)
        with warnings.catch_warnings():  # it says which cell mass its heuristic chose
            warnings.filterwarnings("ignore", "Using heuristic P_mass", UserWarning)
            dyn = LangevinBAOAB(
                work, timestep=dt, temperature_K=temperature_K,
                externalstress=-pressure_bar * units.bar, hydrostatic=True,
                T_tau=1000.0 * units.fs / friction_per_ps, P_tau=BAROSTAT_PS * 1000.0 * units.fs,
                rng=np.random.default_rng(seed),
            )  # fmt: skip

        def cell():
            return work.cell.array

    elif protocol == "nvt":
        friction = friction_per_ps / (1000.0 * units.fs)
        dyn = Langevin(
            work,
            timestep=dt,
            temperature_K=temperature_K,
            friction=friction,
            fixcm=False,
            rng=np.random.default_rng(seed),
        )
    else:
        raise InputError(f"protocol must be one of {PROTOCOLS}, got {protocol!r}")

    def state():
        return (work.positions, work.get_potential_energy(), work.get_kinetic_energy(),
                work.get_forces())  # fmt: skip

    return _integrate(engine, protocol, atoms, steps, timestep_fs, record_every,
                      lambda: dyn.run(1), state, progress, cell)  # fmt: skip


def _periodic_for_npt(atoms: Atoms) -> None:
    if not atoms.pbc.all():
        raise InputError("NPT needs a periodic system (a box); a molecule runs nve, nvt or min")


def _largest_force(forces: np.ndarray) -> float:
    return float(np.linalg.norm(np.asarray(forces).reshape(-1, 3), axis=1).max())


def _minimise_ase(work, atoms, steps, record_every, fmax, engine, progress) -> Trajectory:
    from ase.optimize import BFGS

    rec = _empty()
    _record(rec, 0.0, work.positions, work.get_potential_energy(), 0.0, work.get_forces())
    optimizer = BFGS(work, logfile=None)
    seconds = []
    for iteration in range(1, steps + 1):
        if _largest_force(work.get_forces()) <= fmax:
            break
        start = time.perf_counter()
        optimizer.step()
        forces = work.get_forces()
        seconds.append(time.perf_counter() - start)
        pe = work.get_potential_energy()
        _finite_or_stop(pe, engine)
        if iteration % record_every == 0 or _largest_force(forces) <= fmax or iteration == steps:
            _record(rec, 0.0, work.positions, pe, 0.0, forces)
        if progress is not None:
            progress(1)
    return _finish(engine, "min", atoms, 0.0, record_every, rec, seconds)


# ------------------------------------------------------------------------------- OpenMM
def _openmm_context(
    atoms: Atoms, model_path: Path, timestep_fs: float, thermostat=None, pressure_bar=None
):
    # engines.openmm imports torch before openmm (OpenMM's Torch plugin needs it loaded).
    from .openmm import create_system, make_context

    # isort: split
    import openmm
    from openmm import unit

    system = create_system(atoms, model_path, removeCMMotion=False)
    if pressure_bar is not None:
        # NPT: Monte Carlo volume moves (isotropic), each atom's position scaled (one
        # residue per atom), accepted by the Metropolis criterion at the thermostat's T.
        barostat = openmm.MonteCarloBarostat(
            pressure_bar * unit.bar, thermostat[0] * unit.kelvin, BAROSTAT_EVERY
        )
        barostat.setRandomNumberSeed(thermostat[2] % 900_000_000 + 1)
        system.addForce(barostat)
    if thermostat is not None:
        # NVT: OpenMM's Langevin (BAOAB-type, "middle") integrator; nothing fixes the centre of
        # mass (removeCMMotion=False), as in the other engines (THERMOSTAT).
        temperature_K, friction_per_ps, seed = thermostat
        integrator = openmm.LangevinMiddleIntegrator(
            temperature_K * unit.kelvin, friction_per_ps / unit.picosecond,
            timestep_fs * unit.femtoseconds,
        )  # fmt: skip
        integrator.setRandomNumberSeed(seed % 900_000_000 + 1)
        context = make_context(system, integrator, "CPU", {"Threads": "1"}, atoms=atoms)
        return context, integrator
    # Velocity Verlet, as ASE's VelocityVerlet and LAMMPS' fix nve: velocities on the same
    # step as positions, so the total energy means the same thing in every engine (OpenMM's
    # VerletIntegrator is leapfrog, with velocities half a step behind).
    integrator = openmm.CustomIntegrator(timestep_fs * unit.femtoseconds)
    integrator.addUpdateContextState()
    integrator.addComputePerDof("v", "v + 0.5*dt*f/m")
    integrator.addComputePerDof("x", "x + dt*v")
    integrator.addComputePerDof("v", "v + 0.5*dt*f/m")
    context = make_context(system, integrator, "CPU", {"Threads": "1"}, atoms=atoms)
    return context, integrator


def _openmm_state(context, forces: bool = True):
    from openmm import unit

    from .openmm import ANGSTROM_PER_NM, KJ_PER_MOL_PER_EV

    state = context.getState(getEnergy=True, getForces=forces, getPositions=True)
    pe = state.getPotentialEnergy().value_in_unit(unit.kilojoule_per_mole) / KJ_PER_MOL_PER_EV
    ke = state.getKineticEnergy().value_in_unit(unit.kilojoule_per_mole) / KJ_PER_MOL_PER_EV
    positions = state.getPositions(asNumpy=True).value_in_unit(unit.nanometer) * ANGSTROM_PER_NM
    f = None
    if forces:
        f = state.getForces(asNumpy=True).value_in_unit(unit.kilojoule_per_mole / unit.nanometer)
        f = np.asarray(f) / (KJ_PER_MOL_PER_EV * ANGSTROM_PER_NM)
    return np.asarray(positions), pe, ke, f


def run_openmm(
    atoms: Atoms,
    velocities: np.ndarray,
    model_path: Path,
    steps: int,
    timestep_fs: float,
    record_every: int,
    protocol: str = "nve",
    temperature_K: float = 300.0,
    friction_per_ps: float = 10.0,
    seed: int = 0,
    progress=None,
    fmax_eV_per_A: float = MINIMISE_FMAX,
    pressure_bar: float = 1.0,
) -> Trajectory:
    """NVE with velocity Verlet (an OpenMM ``CustomIntegrator``), NVT with OpenMM's
    ``LangevinMiddleIntegrator``, NPT with it and a ``MonteCarloBarostat``, or OpenMM's
    L-BFGS minimiser (``steps`` iterations at most), on the CPU platform, one thread;
    forces are evaluated once per step."""
    if protocol not in PROTOCOLS:
        raise InputError(f"protocol must be one of {PROTOCOLS}, got {protocol!r}")
    if protocol == "min":
        return _minimise_openmm(atoms, model_path, steps, record_every, fmax_eV_per_A, progress)
    thermostat = (temperature_K, friction_per_ps, seed) if protocol in ("nvt", "npt") else None
    barostat = None
    if protocol == "npt":
        _periodic_for_npt(atoms)
        barostat = pressure_bar
    context, integrator = _openmm_context(atoms, model_path, timestep_fs, thermostat, barostat)
    # ASE velocity units → nm/ps.
    context.setVelocities(velocities * (units.fs * 1000.0) / 10.0)
    return _integrate("openmm", protocol, atoms, steps, timestep_fs, record_every,
                      lambda: integrator.step(1), lambda: _openmm_state(context), progress,
                      cell=None if barostat is None else lambda: _openmm_box(context))  # fmt: skip


def _openmm_box(context) -> np.ndarray:
    from openmm import unit

    from .openmm import ANGSTROM_PER_NM

    box = context.getState().getPeriodicBoxVectors(asNumpy=True)
    return np.asarray(box.value_in_unit(unit.nanometer)) * ANGSTROM_PER_NM


def _minimise_in_chunks(engine, atoms, steps, record_every, fmax, progress, state,
                        minimise) -> Trajectory:  # fmt: skip
    """An engine's minimiser called ``record_every`` iterations at a time (``minimise(n)``
    runs at most ``n`` and returns how many it ran; 0: the engine's own criterion stopped
    it), recording ``state()`` after each call, until no atom feels more than ``fmax`` or
    ``steps`` iterations are done."""
    rec, seconds = _empty(), []
    positions, pe, _, forces = state()
    _record(rec, 0.0, positions, pe, 0.0, forces)
    done = 0
    while done < steps and _largest_force(forces) > fmax:
        chunk = min(record_every, steps - done)
        start = time.perf_counter()
        iterations = minimise(chunk)
        seconds.append(time.perf_counter() - start)
        positions, pe, _, forces = state()
        _finite_or_stop(pe, engine)
        _record(rec, 0.0, positions, pe, 0.0, forces)
        done += max(iterations, 1)
        if progress is not None:
            progress(chunk)
        if iterations == 0:
            break  # nothing left to do by the engine's own criterion
    return _finish(engine, "min", atoms, 0.0, record_every, rec, seconds)


def _minimise_openmm(atoms, model_path, steps, record_every, fmax, progress) -> Trajectory:
    """OpenMM's L-BFGS, ``record_every`` iterations per call (each restarts it from the
    current positions), until no atom feels more than ``fmax`` or ``steps`` are done. (A
    Python ``MinimizationReporter`` would stop it at ``fmax`` itself, but OpenMM then holds
    the GIL through TorchForce's backward pass, which torch refuses.)"""
    import openmm

    from .openmm import ANGSTROM_PER_NM, KJ_PER_MOL_PER_EV

    context, _ = _openmm_context(atoms, model_path, 0.5)
    # OpenMM's own criterion (RMS force component, kJ/mol/nm), far below fmax: the loop
    # stops on fmax first.
    tolerance = fmax * KJ_PER_MOL_PER_EV * ANGSTROM_PER_NM / 100.0

    def minimise(chunk: int) -> int:
        openmm.LocalEnergyMinimizer.minimize(context, tolerance, chunk)
        return chunk  # OpenMM does not say how many it took

    return _minimise_in_chunks("openmm", atoms, steps, record_every, fmax, progress,
                               lambda: _openmm_state(context), minimise)  # fmt: skip


def evaluate_openmm(model_path: Path, frames: list[Atoms]) -> tuple[np.ndarray, np.ndarray]:
    """Energies (eV) and forces (eV/Å) of ``frames`` through OpenMM's TorchForce."""
    context, _ = _openmm_context(frames[0], model_path, 0.5)
    energies, forces = [], []
    for frame in frames:
        if frame.pbc.all():
            context.setPeriodicBoxVectors(*(frame.cell.array / 10.0))
        context.setPositions(frame.positions / 10.0)
        _, pe, _, f = _openmm_state(context)
        energies.append(pe)
        forces.append(f)
    return np.array(energies), np.array(forces)


# ------------------------------------------------------------------------------- LAMMPS
class _Lammps:
    """One in-process LAMMPS (one rank) holding a system; positions in the ASE frame."""

    def __init__(self, lmp, atoms: Atoms, workdir: Path, model_path: Path, elements, dt_fs):
        from .lammps import Deck, write_data

        self.lmp = lmp
        self.n = len(atoms)
        data = write_data(atoms, workdir / "system.data", elements=elements, velocities=True)
        self.rotation = data.rotation
        boundary = "p p p" if atoms.pbc.all() else "s s s"  # molecules: shrink-wrapped
        opening = data.student_deck(
            model_path, boundary=boundary, before_read=("atom_modify map array",)
        )
        deck = Deck(opening).timestep(dt_fs)
        lmp.commands_string(deck.thermo(0, ("step", "pe", "ke", "etotal"), extensive=True).text())

    def vector(self, name: str) -> np.ndarray:
        raw = self.lmp.gather_atoms(name, 1, 3)
        return np.ctypeslib.as_array(raw).reshape(self.n, 3) @ self.rotation

    def set_positions(self, positions: np.ndarray) -> None:
        flat = np.ascontiguousarray((positions @ self.rotation.T).ravel(), dtype=np.float64)
        self.lmp.scatter_atoms("x", 1, 3, flat.ctypes.data_as(ctypes.POINTER(ctypes.c_double)))

    def cell(self) -> np.ndarray:
        """The box as ASE cell vectors (rows), in the ASE frame."""
        lo, hi, xy, yz, xz, _, _ = self.lmp.extract_box()
        lx, ly, lz = (h - low for h, low in zip(hi, lo))
        return np.array([[lx, 0.0, 0.0], [xy, ly, 0.0], [xz, yz, lz]]) @ self.rotation

    def state(self) -> tuple[np.ndarray, float, float, np.ndarray]:
        """Positions, potential and kinetic energy, forces (ASE frame, eV and Å)."""
        pe = self.lmp.get_thermo("pe")
        ke = self.lmp.get_thermo("ke")
        return self.vector("x"), pe, ke, self.vector("f")


def _model_elements(model_path: Path) -> tuple[str, ...]:
    from ..export import load_exported

    _, metadata = load_exported(model_path)
    return tuple(metadata["elements"])


def run_lammps(
    atoms: Atoms,
    velocities: np.ndarray,
    model_path: Path,
    steps: int,
    timestep_fs: float,
    record_every: int,
    workdir: Path,
    protocol: str = "nve",
    temperature_K: float = 300.0,
    friction_per_ps: float = 10.0,
    seed: int = 0,
    progress=None,
    fmax_eV_per_A: float = MINIMISE_FMAX,
    pressure_bar: float = 1.0,
) -> Trajectory:
    """NVE (``fix nve``), NVT (``fix langevin`` + ``fix nve``), NPT (``fix langevin`` +
    ``fix nph iso``) or a minimisation (``minimize``, conjugate gradients, ``steps``
    iterations at most) with ``pair_style mlff`` in an in-process LAMMPS; every MD step is
    its own ``run 1`` so it can be timed."""
    from .lammps import Deck, lammps_seed, lammps_session

    if protocol not in PROTOCOLS:
        raise InputError(f"protocol must be one of {PROTOCOLS}, got {protocol!r}")
    start_atoms = atoms.copy()
    start_atoms.set_velocities(velocities)
    elements = _model_elements(model_path)
    workdir, model_path = Path(workdir).resolve(), Path(model_path).resolve()
    with lammps_session(workdir) as lmp:
        system = _Lammps(lmp, start_atoms, workdir, model_path, elements, timestep_fs)
        if protocol == "min":
            return _minimise_lammps(lmp, system, atoms, steps, record_every, fmax_eV_per_A,
                                    progress)  # fmt: skip
        if protocol == "npt":
            _periodic_for_npt(atoms)
            deck = Deck().nph(pressure_bar, BAROSTAT_PS, units="metal")
        else:
            deck = Deck().nve()
        if protocol in ("nvt", "npt"):
            deck.langevin(temperature_K, 1.0 / friction_per_ps, lammps_seed(seed))
        lmp.commands_string(deck.run(0).text())
        return _integrate("lammps", protocol, atoms, steps, timestep_fs, record_every,
                          lambda: lmp.command("run 1 pre no post no"), system.state,
                          progress, cell=system.cell if protocol == "npt" else None)  # fmt: skip


def _minimise_lammps(lmp, system, atoms, steps, record_every, fmax, progress) -> Trajectory:
    """``record_every`` iterations per ``minimize`` (each restarts the conjugate gradients
    from the current positions), until no atom feels more than ``fmax`` or ``steps`` are
    done; ``min_modify norm max`` makes LAMMPS' own force criterion the same one."""
    from .lammps import Deck

    lmp.commands_string(Deck().add("min_modify norm max").run(0).text())

    def minimise(chunk: int) -> int:
        before = lmp.extract_global("ntimestep")
        lmp.command(f"minimize 0.0 {fmax:.17g} {chunk} {10 * chunk}")
        return int(lmp.extract_global("ntimestep") - before)  # one step per iteration

    return _minimise_in_chunks("lammps", atoms, steps, record_every, fmax, progress,
                               system.state, minimise)  # fmt: skip


def evaluate_lammps(
    model_path: Path, frames: list[Atoms], workdir: Path
) -> tuple[np.ndarray, np.ndarray]:
    """Energies (eV) and forces (eV/Å) of ``frames`` (same atoms and cell) via ``run 0``."""
    from .lammps import lammps_session

    elements = _model_elements(model_path)
    workdir, model_path = Path(workdir).resolve(), Path(model_path).resolve()
    energies, forces = [], []
    with lammps_session(workdir) as lmp:
        system = _Lammps(lmp, frames[0], workdir, model_path, elements, 0.5)
        for frame in frames:
            system.set_positions(frame.positions)
            lmp.command("run 0")
            _, pe, _, f = system.state()
            energies.append(pe)
            forces.append(f)
    return np.array(energies), np.array(forces)


def evaluate_ase(calc: Calculator, frames: list[Atoms]) -> tuple[np.ndarray, np.ndarray]:
    """Energies (eV) and forces (eV/Å) of ``frames`` with an ASE calculator (teacher or
    student)."""
    energies, forces = [], []
    for frame in frames:
        work = frame.copy()
        work.calc = calc
        energies.append(work.get_potential_energy())
        forces.append(work.get_forces())
    return np.array(energies), np.array(forces)


# ------------------------------------------------------------------------------- any engine
def _known(engine: str) -> None:
    if engine not in ENGINES:
        raise InputError(f"engine must be one of {ENGINES}, got {engine!r}")


def run(
    engine: str,
    atoms: Atoms,
    velocities: np.ndarray,
    model: Path | Calculator,
    protocol: str,
    steps: int,
    timestep_fs: float,
    record_every: int,
    workdir: Path | None = None,
    temperature_K: float = 300.0,
    friction_per_ps: float = 10.0,
    seed: int = 0,
    progress=None,
    fmax_eV_per_A: float = MINIMISE_FMAX,
    pressure_bar: float = 1.0,
) -> Trajectory:
    """``protocol`` (``nve``; ``nvt``: Langevin with the centre of mass free; ``npt``: that
    and an isotropic barostat at ``pressure_bar``, periodic systems only; ``min``: a
    minimisation to ``fmax_eV_per_A``, ``steps`` iterations at most) for ``steps`` steps in
    ``engine``, from ``atoms`` with ``velocities`` (ASE units; unused by ``min``), recording
    every ``record_every`` steps.

    ``model`` is an exported student file; in ASE it may also be any calculator (a teacher).
    LAMMPS writes its files in ``workdir``. Every step is timed on its own
    (``Trajectory.step_seconds``).
    """
    _known(engine)
    thermostat = {"temperature_K": temperature_K, "friction_per_ps": friction_per_ps,
                  "seed": seed, "progress": progress, "fmax_eV_per_A": fmax_eV_per_A,
                  "pressure_bar": pressure_bar}  # fmt: skip
    if engine == "ase":
        calc = model if isinstance(model, Calculator) else _student(model)
        return run_ase(atoms, velocities, calc, protocol, steps, timestep_fs, record_every,
                       **thermostat)  # fmt: skip
    if isinstance(model, Calculator):
        raise InputError(f"{engine} runs an exported student file, not an ASE calculator")
    if engine == "openmm":
        return run_openmm(atoms, velocities, Path(model), steps, timestep_fs, record_every,
                          protocol, **thermostat)  # fmt: skip
    if workdir is None:
        raise InputError("a LAMMPS run needs a workdir for its files")
    return run_lammps(atoms, velocities, Path(model), steps, timestep_fs, record_every,
                      Path(workdir), protocol, **thermostat)  # fmt: skip


def evaluate(
    engine: str, model: Path | Calculator, frames: list[Atoms], workdir: Path | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Energies (eV) and forces (eV/Å) of ``frames`` (same atoms and cell; in ASE any
    frames) with ``model`` in ``engine``; ``model`` as for :func:`run`."""
    _known(engine)
    if engine == "ase":
        return evaluate_ase(model if isinstance(model, Calculator) else _student(model), frames)
    if isinstance(model, Calculator):
        raise InputError(f"{engine} evaluates an exported student file, not an ASE calculator")
    if engine == "openmm":
        return evaluate_openmm(Path(model), frames)
    if workdir is None:
        raise InputError("a LAMMPS evaluation needs a workdir for its files")
    return evaluate_lammps(Path(model), frames, Path(workdir))


def _student(model) -> Calculator:
    from ..calculators import StudentCalculator

    return StudentCalculator(model)
