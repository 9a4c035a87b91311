"""``engines.runs``: one call runs a protocol or evaluates frames in any engine, and the three
engines give the same trajectory from the same start; ``engines.lammps.Deck`` writes decks
that LAMMPS runs as meant."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from ase.build import molecule

from mlff_distiller import StudentCalculator
from mlff_distiller.data import load_source
from mlff_distiller.engines.lammps import Deck, read_thermo, run_deck, write_data
from mlff_distiller.engines.runs import ENGINES, Trajectory, evaluate, initial_velocities, run
from mlff_distiller.errors import InputError

ELEMENTS = ["C", "H", "O"]
SHIPPED = Path(__file__).resolve().parents[2] / "torchscript_exports" / "sevennet0-tiny.pt"
TOLERANCE = {"float64": None}


@pytest.fixture(scope="module")
def ethanol():
    atoms = molecule("CH3CH2OH")
    return atoms, initial_velocities(atoms, 300.0, seed=3)


def test_nve_from_one_start_is_one_trajectory_in_every_engine(models, reference, ethanol, tmp_path):
    """Velocity Verlet in ASE, OpenMM and LAMMPS: 20 float64 steps stay together to 1e-8 Å
    (total energy to 1e-8 relative), and every engine's forces are the student's own on its
    frames."""
    atoms, velocities = ethanol
    model = models["float64"]
    runs = {}
    for engine in ENGINES:
        student = reference if engine == "ase" else model
        runs[engine] = run(engine, atoms, velocities, student, "nve", 20, 0.5, 5, tmp_path / engine)
        assert runs[engine].engine == engine and runs[engine].positions.shape == (5, 9, 3)
        assert len(runs[engine].step_seconds) == 20
    for engine in ("openmm", "lammps"):
        assert np.abs(runs[engine].positions - runs["ase"].positions).max() < 1e-8
        # LAMMPS' masses are the data file's (10 digits): 1e-9 relative in the kinetic energy.
        np.testing.assert_allclose(runs[engine].total_energy, runs["ase"].total_energy, rtol=1e-8)
    moved = np.abs(runs["ase"].positions[-1] - runs["ase"].positions[0]).max()
    assert moved > 1e-3  # the atoms really moved

    frames = runs["ase"].frames()
    energies, forces = evaluate("ase", reference, frames)
    for engine in ("openmm", "lammps"):
        e, f = evaluate(engine, model, frames, tmp_path / f"{engine}-frames")
        np.testing.assert_allclose(e, energies, rtol=1e-10)
        np.testing.assert_allclose(f, forces, atol=1e-8)


def test_unknown_engines_protocols_and_models_are_clear_errors(models, reference, ethanol):
    atoms, velocities = ethanol
    with pytest.raises(InputError, match="engine must be one of"):
        run("gromacs", atoms, velocities, models["float64"], "nve", 1, 0.5, 1)
    for engine in ENGINES:
        student = reference if engine == "ase" else models["float64"]
        with pytest.raises(InputError, match="protocol must be one of"):
            run(engine, atoms, velocities, student, "nph", 1, 0.5, 1, workdir="unused")
    with pytest.raises(InputError, match="not an ASE calculator"):
        evaluate("openmm", reference, [atoms])
    with pytest.raises(InputError, match="needs a workdir"):
        run("lammps", atoms, velocities, models["float64"], "nve", 1, 0.5, 1)


def test_a_deck_built_command_by_command_runs_as_written(models, ethanol, tmp_path):
    """Velocities, NVT, extensive thermo at full precision and a dump: LAMMPS reads what the
    builder wrote (the columns asked for, the dump's frames, a temperature near the target)."""
    atoms, _ = ethanol
    data = write_data(atoms, tmp_path / "ethanol.data", elements=ELEMENTS)
    deck = (
        Deck(data.student_deck(models["float64"], boundary="s s s"))
        .velocities(300, 7).timestep(0.5).nve().langevin(300, 0.05, 7, all_dof=True)
        .thermo(10, columns=("step", "temp", "pe"), precise=True, extensive=True)
        .dump(10, str(tmp_path / "frames.txt"), ("id", "element", "x", "y", "z"), ELEMENTS)
        .run(40)
    )  # fmt: skip
    assert deck.text().endswith("run 40\n") and "timestep 0.0005\n" in deck.text()
    run_deck(deck.text(), tmp_path)
    rows = read_thermo(tmp_path / "log.lammps")[-1]
    assert [int(r["Step"]) for r in rows] == [0, 10, 20, 30, 40]
    assert set(rows[0]) == {"Step", "Temp", "PotEng"}
    assert 100 < rows[0]["Temp"] < 600  # drawn at 300 K
    dump = (tmp_path / "frames.txt").read_text()
    assert dump.count("ITEM: TIMESTEP") == 5 and "\n1 C " in dump


def test_minimisation_reaches_the_same_minimum_in_every_engine(ethanol, tmp_path):
    """From ethanol displaced by 0.05 Å, every engine's minimiser (ASE BFGS, OpenMM L-BFGS,
    LAMMPS CG) stops with no atom feeling more than 0.01 eV/Å, at one energy (3e-4 eV).
    The shipped student (a trained, physical surface: the random one has no minimum). Where
    every force is under 0.01 eV/Å a soft mode (the methyl and hydroxyl torsions) can still
    be F²/2k ~ 1e-4 eV from its bottom (the shipped tiny v12 stopped 1.06e-4 eV apart), and
    LAMMPS' float32 line search stalls near 0.005 eV/Å, so a tighter force target is not an
    option; another conformer lies meV away (ethanol's trans and gauche, about 5)."""
    atoms, velocities = ethanol
    start = atoms.copy()
    start.positions += np.random.default_rng(5).normal(0, 0.05, start.positions.shape)
    calc = StudentCalculator(SHIPPED)
    ends = {}
    for engine in ENGINES:
        student = calc if engine == "ase" else SHIPPED
        trajectory = run(engine, start, velocities, student, "min", 500, 10, 10, tmp_path / engine)
        assert trajectory.protocol == "min" and len(trajectory.times_ps) >= 2
        forces = trajectory.forces[-1]
        assert np.linalg.norm(forces, axis=1).max() <= 0.01, engine
        assert trajectory.potential_energy[-1] < trajectory.potential_energy[0] - 1e-2
        ends[engine] = trajectory.potential_energy[-1]
        # The last frame's forces are the student's own there.
        _, f = evaluate("ase", calc, trajectory.frames([-1]))
        np.testing.assert_allclose(forces, f[0], atol=1e-4)
    assert max(ends.values()) - min(ends.values()) < 3e-4, ends


def test_npt_compresses_water_under_pressure_in_every_engine(tmp_path):
    """32 waters, 200 fs of Langevin NPT at 1 bar and at 50 kbar from the same start: in
    every engine the box ends smaller under 50 kbar (by more than 3 %), each recorded frame
    carries its own cell, and a molecule (no box) is a clear error."""
    water = load_source("builtin:water-32")[0]
    velocities = initial_velocities(water, 300.0, seed=0)
    calc = StudentCalculator(SHIPPED)
    for engine in ENGINES:
        student = calc if engine == "ase" else SHIPPED
        volumes = {}
        for bar in (1.0, 50_000.0):
            trajectory = run(engine, water, velocities, student, "npt", 400, 0.5, 100,
                             tmp_path / f"{engine}-{bar:g}", pressure_bar=bar)  # fmt: skip
            assert trajectory.cells.shape == (5, 3, 3)
            assert np.isfinite(trajectory.potential_energy).all()
            frame = trajectory.frames([-1])[0]
            assert frame.get_volume() == pytest.approx(trajectory.volume_A3[-1], rel=1e-12)
            assert trajectory.volume_A3[0] == pytest.approx(water.get_volume(), rel=1e-9)
            volumes[bar] = trajectory.volume_A3[-1]
        again = Trajectory.load(trajectory.save(tmp_path / f"{engine}.npz"))
        np.testing.assert_array_equal(again.cells, trajectory.cells)
        assert volumes[50_000.0] < 0.97 * volumes[1.0], (engine, volumes)
    molecule_atoms = molecule("CH3CH2OH")
    with pytest.raises(InputError, match="NPT needs a periodic system"):
        run("ase", molecule_atoms, initial_velocities(molecule_atoms, 300, 0), calc, "npt", 1,
            0.5, 1)  # fmt: skip
