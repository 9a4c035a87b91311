"""The Python side of the LAMMPS engine that needs no LAMMPS run: data files, cell rotation,
log parsing, and how a missing or stale plugin is reported."""

from __future__ import annotations

import json

import numpy as np
import pytest
from ase import Atoms
from ase.build import molecule
from ase.io import read

from mlff_distiller.cli import main
from mlff_distiller.data import water_box
from mlff_distiller.engines import lammps
from mlff_distiller.engines.lammps import (
    PluginError,
    lammps_cell,
    lammps_version_string,
    launcher_plugin_dir,
    plugin_path,
    read_thermo,
    write_data,
)


@pytest.mark.parametrize("seed", range(5))
def test_lammps_cell_is_a_proper_rotation_to_lower_triangular(seed):
    rng = np.random.default_rng(seed)
    cell = rng.normal(size=(3, 3)) + 4 * np.eye(3)
    if np.linalg.det(cell) < 0:
        cell[2] *= -1
    lower, rotation = lammps_cell(cell)
    np.testing.assert_allclose(cell @ rotation.T, lower, atol=1e-12)
    assert lower[0, 1] == lower[0, 2] == lower[1, 2] == 0.0
    assert (np.diag(lower) > 0).all()
    np.testing.assert_allclose(rotation @ rotation.T, np.eye(3), atol=1e-12)
    assert np.linalg.det(rotation) == pytest.approx(1.0)


def test_left_handed_cell_is_refused():
    with pytest.raises(ValueError, match="left-handed"):
        lammps_cell(np.diag([3.0, 3.0, -3.0]))


def test_periodic_data_file_reads_back_rotated(tmp_path):
    atoms = water_box(32)
    atoms.set_cell(atoms.cell.array + [[0, 0.3, 0.2], [0.5, 0, 0.1], [0.2, 0.4, 0]], True)
    data = write_data(atoms, tmp_path / "w.data", elements=("H", "C", "O"))
    back = read(data.path, format="lammps-data", atom_style="atomic", units="metal")
    assert data.boundary == "p p p" and data.triclinic
    assert data.pair_coeff == "pair_coeff * * H C O"
    np.testing.assert_allclose(back.cell.array, atoms.cell.array @ data.rotation.T, atol=1e-9)
    np.testing.assert_allclose(back.positions, atoms.positions @ data.rotation.T, atol=1e-9)
    assert back.get_chemical_symbols() == atoms.get_chemical_symbols()
    assert "2 C" not in data.path.read_text().split("Atoms")[1]  # type 2 (C) declared, unused
    assert not list(tmp_path.glob("*.partial"))


def test_open_data_file_encloses_the_molecule_with_velocities(tmp_path):
    atoms = molecule("CH3CH2OH")
    rng = np.random.default_rng(0)
    atoms.set_velocities(rng.normal(size=(len(atoms), 3)) * 0.01)
    data = write_data(atoms, tmp_path / "m.data", margin=5.0, velocities=True)
    assert data.boundary == "f f f" and not data.triclinic
    assert data.elements == ("H", "C", "O")  # by atomic number
    back = read(data.path, format="lammps-data", atom_style="atomic", units="metal")
    np.testing.assert_allclose(back.positions, atoms.positions, atol=1e-9)
    np.testing.assert_allclose(back.get_velocities(), atoms.get_velocities(), rtol=1e-9)
    lo, hi = back.positions.min(axis=0), back.positions.max(axis=0)
    bounds = [line.split()[:2] for line in data.path.read_text().splitlines() if "lo " in line]
    np.testing.assert_allclose(np.array(bounds, dtype=float), np.c_[lo - 5.0, hi + 5.0])


def test_data_file_refusals(tmp_path):
    with pytest.raises(ValueError, match=r"elements \['O'\] are in the structure"):
        write_data(molecule("H2O"), tmp_path / "a.data", elements=("H",))
    slab = molecule("H2O", vacuum=3.0)
    slab.pbc = (True, True, False)
    with pytest.raises(ValueError, match="partly periodic"):
        write_data(slab, tmp_path / "b.data")
    with pytest.raises(ValueError, match="units must be 'metal' or 'real'"):
        write_data(molecule("H2O"), tmp_path / "c.data", units="lj")
    with pytest.raises(ValueError, match="no atoms"):
        write_data(Atoms(), tmp_path / "d.data")
    assert not list(tmp_path.iterdir())


LOG = """LAMMPS (22 Jul 2025 - Update 4)
Per MPI rank memory allocation (min/avg/max) = 3.983 | 3.983 | 3.983 Mbytes
   Step         PotEng         TotEng
         0  -140.5  -139.0
WARNING: something harmless (src/thing.cpp:1)
        10  -140.25  -139.0
Loop time of 0.5 on 1 procs for 10 steps with 96 atoms

   Step          PotEng         Press
         0   -1.5   12.0
Loop time of 0.1 on 1 procs for 0 steps with 96 atoms
"""


def test_read_thermo_splits_runs_and_skips_warnings(tmp_path):
    (tmp_path / "log.lammps").write_text(LOG)
    for source in (LOG, tmp_path / "log.lammps"):
        first, second = read_thermo(source)
        assert [row["Step"] for row in first] == [0.0, 10.0]
        assert first[1]["PotEng"] == -140.25
        assert second == [{"Step": 0.0, "PotEng": -1.5, "Press": 12.0}]


def test_version_string_is_lammps_own():
    assert lammps_version_string("2025.7.22.4.0") == "22 Jul 2025"
    assert lammps_version_string("2024.8.29.1.0") == "29 Aug 2024"


def test_missing_and_stale_plugins_are_reported_not_raised(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("MLFF_DISTILLER_LAMMPS_PLUGIN_DIR", str(tmp_path))
    assert launcher_plugin_dir() == str(tmp_path)
    assert "not built" in capsys.readouterr().err
    with pytest.raises(PluginError, match="mlff-distill lammps build"):
        plugin_path()

    (tmp_path / lammps.PLUGIN_FILE).write_bytes(b"\x7fELF")
    wanted = lammps.build._wanted_build(lammps.plugin_sources())
    (tmp_path / lammps.BUILD_INFO_FILE).write_text(json.dumps({**wanted, "torch": "0.1"}))
    launcher_plugin_dir()
    assert f"built for torch 0.1, {wanted['torch']} is installed" in capsys.readouterr().err
    (tmp_path / lammps.BUILD_INFO_FILE).write_text(json.dumps(wanted))
    assert plugin_path() == tmp_path / lammps.PLUGIN_FILE
    launcher_plugin_dir()
    assert capsys.readouterr().err == ""


def test_cli_writes_a_data_file(tmp_path, capsys):
    molecule("H2O").write(tmp_path / "water.xyz")
    out = tmp_path / "water.data"
    assert main(["lammps", "data", str(tmp_path / "water.xyz"), "--out", str(out)]) == 0
    assert "pair_coeff * * H O" in capsys.readouterr().out
    assert out.is_file()


def test_student_deck_opens_every_deck_in_lammps_order(tmp_path):
    """units, then what must precede the box (atom_modify), the file's atom_style and
    boundary, read_data, and last the pair lines (LAMMPS refuses pair_coeff before a box)."""
    data = write_data(molecule("CH3CH2OH"), tmp_path / "m.data")
    lines = data.student_deck("student.pt", before_read=("atom_modify map array",))
    assert lines == [
        "units metal",
        "atom_modify map array",
        "atom_style atomic",
        "boundary f f f",
        f"read_data {(tmp_path / 'm.data').resolve()}",
        "pair_style mlff student.pt",
        "pair_coeff * * H C O",
    ]
    moved = data.student_deck("s.pt", units="real", keywords="device cuda", relative=True,
                              boundary="s s s")  # fmt: skip
    assert moved[0] == "units real" and "boundary s s s" in moved
    assert "read_data m.data" in moved and moved[-2] == "pair_style mlff s.pt device cuda"


def test_student_deck_of_a_full_file_keeps_its_bonds_out_of_the_energy(tmp_path):
    data = write_data(molecule("CH3CH2OH"), tmp_path / "m.data", atom_style="full")
    lines = data.student_deck("s.pt", relative=True)
    read = lines.index("read_data m.data")
    assert lines.index("bond_style zero") < read < lines.index("bond_coeff *")
    assert "special_bonds lj/coul 1.0 1.0 1.0" in lines[:read]
    assert lines[1:-2] == data.deck_lines
