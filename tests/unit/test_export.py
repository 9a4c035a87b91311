"""Export: one TorchScript file with metadata, equal to the checkpoint it came from, loaded
with torch.jit.load alone; refusals and loader errors that say what to do."""

from __future__ import annotations

import json
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from ase.build import molecule

from mlff_distiller import StudentCalculator
from mlff_distiller.data import water_box
from mlff_distiller.export import METADATA_FILE, ExportError, export, export_module, load_exported

pytestmark = pytest.mark.usefixtures("one_thread")

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory, make_student_checkpoint):
    return make_student_checkpoint(tmp_path_factory.mktemp("ckpt") / "best.pt")


@pytest.fixture(scope="module")
def exported(checkpoint, tmp_path_factory):
    out = tmp_path_factory.mktemp("export")
    return {
        dtype: export(checkpoint, out / f"model_{dtype}.pt", dtype=dtype)
        for dtype in ("float64", "float32")
    }


def _structures():
    mol = molecule("CH3CH2OH")
    box = water_box(32)
    box.positions += [4.0, 0.0, 0.0]  # molecules straddle the boundary; atoms outside the cell
    small = molecule("CH4", vacuum=0.0)
    small.set_cell([[3.2, 0, 0], [0.4, 3.1, 0], [0.3, 0.5, 3.3]])  # triclinic, < 2 × cutoff
    small.pbc = True
    return {"molecule": mol, "water": box, "small-triclinic": small}


def test_exported_weights_are_frozen_in_the_file(checkpoint, exported, tmp_path):
    """Every engine differentiates with respect to positions only: the file itself (loaded
    by plain torch.jit.load, as LAMMPS and other tools do) holds weights that need no
    gradient, and exporting leaves the training checkpoint's model as it was."""
    from mlff_distiller.export.exporter import student_metadata
    from mlff_distiller.models.checkpoint import load_checkpoint, model_from_checkpoint

    for path in exported.values():
        parameters = list(torch.jit.load(str(path), map_location="cpu").parameters())
        assert parameters and not any(p.requires_grad for p in parameters)
    data = load_checkpoint(checkpoint)
    model = model_from_checkpoint(data, torch.float64).eval()
    metadata = student_metadata(
        model, list(data["elements"]), "float64", teacher="t", dataset_hash="d"
    )
    export_module(model, tmp_path / "again.pt", metadata)
    assert all(p.requires_grad for p in model.parameters())


@pytest.mark.parametrize("name", ["molecule", "water", "small-triclinic"])
def test_exported_file_equals_the_checkpoint(checkpoint, exported, name):
    atoms = _structures()[name]
    reference = atoms.copy()
    reference.calc = StudentCalculator(checkpoint)
    student = atoms.copy()
    student.calc = StudentCalculator(exported["float64"])
    e_ref = reference.get_potential_energy()
    assert student.get_potential_energy() == pytest.approx(e_ref, rel=1e-12, abs=1e-10)
    np.testing.assert_allclose(student.get_forces(), reference.get_forces(), atol=1e-10)
    np.testing.assert_allclose(
        student.get_potential_energies(), reference.get_potential_energies(), atol=1e-10
    )
    if atoms.pbc.all():
        np.testing.assert_allclose(student.get_stress(), reference.get_stress(), atol=1e-10)
    single = atoms.copy()
    single.calc = StudentCalculator(exported["float32"])
    assert single.get_potential_energy() == pytest.approx(e_ref, rel=1e-5)
    np.testing.assert_allclose(single.get_forces(), reference.get_forces(), atol=2e-3)


def test_translation_by_a_box_vector_changes_nothing(exported):
    box = water_box(32)
    box.calc = StudentCalculator(exported["float64"])
    energy, forces = box.get_potential_energy(), box.get_forces()
    moved = box.copy()
    moved.positions[5] += moved.cell[0] - 2 * moved.cell[2]
    moved.calc = StudentCalculator(exported["float64"])
    assert moved.get_potential_energy() == pytest.approx(energy, rel=1e-12)
    np.testing.assert_allclose(moved.get_forces(), forces, atol=1e-10)


@pytest.mark.parametrize("offset", [1e4, 1e6, 1e8])
def test_float32_student_far_from_the_origin_is_translation_invariant(checkpoint, exported, offset):
    """Edge vectors are differences of absolute positions: formed in float32, ethanol 1e6 Å
    away had force errors of 1.8 eV/Å (and at 1e8 Å, +3641 eV with zero forces). Formed in
    float64 before the cast, the student sees the same edges wherever the molecule is."""
    mol = molecule("CH3CH2OH")
    results = {}
    for source in (exported["float32"], checkpoint):
        for shift in (0.0, offset):
            atoms = mol.copy()
            atoms.positions += shift
            atoms.calc = StudentCalculator(
                source, **({} if source != checkpoint else {"dtype": "float32"})
            )
            results[source, shift] = (atoms.get_potential_energy(), atoms.get_forces())
    for source in (exported["float32"], checkpoint):
        (e0, f0), (e1, f1) = results[source, 0.0], results[source, offset]
        assert e1 == pytest.approx(e0, rel=1e-6)
        assert np.abs(f1 - f0).max() < 1e-4 * max(np.abs(f0).max(), 1.0)


@pytest.mark.parametrize("name", ["molecule", "water", "small-triclinic"])
def test_local_energies_of_a_subset_equal_the_full_evaluation(exported, name):
    """The LAMMPS entry point: centres are some atoms, neighbours are known by species only
    (as ghost atoms are); energies and their edge gradients match the full evaluation."""
    atoms = _structures()[name]
    module = torch.jit.load(str(exported["float64"]))
    positions = torch.tensor(atoms.positions)
    numbers = torch.tensor(atoms.numbers)
    cell, pbc = torch.tensor(atoms.cell.array), torch.tensor(atoms.pbc)
    full = module.atomic_energies(positions, numbers, cell, pbc)
    edge_index, shifts = module.neighbours(positions, cell, pbc)
    vectors = positions[edge_index[1]] - positions[edge_index[0]] + shifts.double() @ cell
    species = module.species(numbers)

    centres = torch.arange(0, len(atoms), 2)  # every other atom, like one rank's share
    node = torch.full((len(atoms),), -1, dtype=torch.long)
    node[centres] = torch.arange(len(centres))
    keep = node[edge_index[0]] >= 0
    edges = vectors[keep].detach().requires_grad_(True)
    local = module.local_energies(
        edges, node[edge_index[0][keep]], species[centres], species[edge_index[1][keep]]
    )
    torch.testing.assert_close(local, full[centres], rtol=0, atol=1e-12)

    # Gradients through the subset equal those of the same atoms' energies in the full graph.
    full_edges = vectors.detach().requires_grad_(True)
    subset = module.model(full_edges, edge_index, species)[centres].sum()
    (expected,) = torch.autograd.grad(subset, full_edges)
    (got,) = torch.autograd.grad(local.sum(), edges)
    torch.testing.assert_close(got, expected[keep], rtol=0, atol=1e-12)
    assert expected[~keep].abs().max() == 0  # edges of other centres do not matter


def test_loads_with_torch_jit_load_alone_and_carries_metadata(exported):
    extra = {METADATA_FILE: ""}
    module = torch.jit.load(str(exported["float64"]), _extra_files=extra)
    metadata = json.loads(extra[METADATA_FILE])
    assert metadata["elements"] == ["H", "C", "N", "O"]
    assert metadata["cutoff"] == 5.0 and metadata["interaction_range"] == 5.0
    assert metadata["units"] == {"length": "Angstrom", "energy": "eV"}
    assert metadata["dtype"] == "float64" and metadata["parameters"] > 10_000
    assert metadata["versions"]["torch"] == torch.__version__
    assert metadata["teacher"]["name"] == "none" and metadata["dataset_hash"] == "synthetic"
    water = molecule("H2O")
    positions = torch.tensor(water.positions, requires_grad=True)
    energy = module(positions, torch.tensor(water.numbers), torch.zeros(3, 3, dtype=torch.float64),
                    torch.tensor([False, False, False]))  # fmt: skip
    assert energy.dtype == torch.float64 and torch.isfinite(energy)
    (grad,) = torch.autograd.grad(energy, [positions])
    assert torch.isfinite(grad).all()
    assert metadata == load_exported(exported["float64"])[1]


@pytest.mark.slow
def test_cli_export_and_info(checkpoint, tmp_path):
    out = tmp_path / "cli.pt"
    cli = [sys.executable, "-m", "mlff_distiller.cli"]
    command = [*cli, "export", str(checkpoint), "--out", str(out), "--dtype", "float64"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "float64" in done.stdout and "H C N O" in done.stdout
    info = subprocess.run([*cli, "info", str(out)], capture_output=True, text=True, timeout=300)
    assert json.loads(info.stdout)["cutoff"] == 5.0


def test_an_exported_file_exports_again_with_its_weights(exported, tmp_path):
    """``export(model.pt, ...)``: the same student written by this version (how a file
    older than format version 4 is brought to the GPU), in its dtype or the other one."""
    atoms = _structures()["water"]
    old = exported["float32"]
    again = export(old, tmp_path / "again.pt", dtype="float32")
    wider = export(old, tmp_path / "wider.pt", dtype="float64")
    _, metadata = load_exported(again)
    assert metadata["exported_from"] == str(old) and metadata["format_version"] >= 4
    results = {}
    for name, path in {"old": old, "again": again, "wider": wider}.items():
        atoms.calc = StudentCalculator(path)
        results[name] = (atoms.get_potential_energy(), atoms.get_forces())
    assert results["again"][0] == results["old"][0]
    np.testing.assert_array_equal(results["again"][1], results["old"][1])
    # float32 weights cast exactly to float64: only float32's arithmetic rounding remains.
    assert results["wider"][0] == pytest.approx(results["old"][0], rel=1e-6)
    np.testing.assert_allclose(results["wider"][1], results["old"][1], atol=1e-4)

    extra = {METADATA_FILE: ""}
    module = torch.jit.load(str(old), _extra_files=extra)
    metadata = json.loads(extra[METADATA_FILE])
    del metadata["model_config"]
    bare = tmp_path / "bare.pt"
    torch.jit.save(module, str(bare), _extra_files={METADATA_FILE: json.dumps(metadata)})
    with pytest.raises(ExportError, match="does not record its model_config"):
        export(bare, tmp_path / "x.pt")


@pytest.mark.parametrize(
    "path",
    [
        "torchscript_exports/drivers/sevennet0-standard-v1.pt",
        "torchscript_exports/drivers/sevennet0-tiny-v3.pt",
    ],
)
def test_a_file_of_an_older_format_loads_rebuilt_with_its_own_numbers(path):
    """Format 1 and 3 files (real ones, written by earlier versions' code) come back as the
    current module: its compute() gives what the file's own code gives."""
    from mlff_distiller.export.exporter import FORMAT_VERSION

    file = REPO / path
    module, metadata = load_exported(file)
    assert metadata["file_format_version"] < FORMAT_VERSION == metadata["format_version"]
    own = torch.jit.load(str(file))
    atoms = _structures()["water"]
    width = torch.float64 if metadata["file_format_version"] >= 2 else torch.float32
    positions = torch.tensor(atoms.positions, dtype=width, requires_grad=True)
    inputs = (torch.tensor(atoms.numbers), torch.tensor(atoms.cell.array), torch.tensor([True] * 3))
    energy = own(positions, inputs[0], inputs[1].to(width), inputs[2])
    (grad,) = torch.autograd.grad(energy, [positions])
    out = module.compute(positions.detach().double(), *inputs)
    assert float(out["energy"]) == pytest.approx(float(energy.detach()), rel=1e-6)
    np.testing.assert_allclose(out["forces"].numpy(), -grad.double().numpy(), atol=2e-4)


def test_a_file_whose_student_this_code_builds_differently_is_refused(
    exported, tmp_path, monkeypatch
):
    """The rebuild is checked against the file's own numbers. Model code that changed
    since the file was written is stood in for by a builder that perturbs one weight;
    metadata that no longer fits the weights is refused too."""
    import mlff_distiller.export.exporter as exporter

    extra = {METADATA_FILE: ""}
    module = torch.jit.load(str(exported["float64"]), _extra_files=extra)
    metadata = json.loads(extra[METADATA_FILE])
    metadata["format_version"] = 3
    old = tmp_path / "old.pt"
    torch.jit.save(module, str(old), _extra_files={METADATA_FILE: json.dumps(metadata)})
    assert load_exported(old)[1]["file_format_version"] == 3
    build = exporter.model_from_checkpoint

    def drifted(data, dtype=None):
        model = build(data, dtype)
        with torch.no_grad():
            model.readout.bias.add_(1e-3)
        return model

    monkeypatch.setattr(exporter, "model_from_checkpoint", drifted)
    with pytest.raises(ExportError, match="cannot be rebuilt faithfully"):
        load_exported(old)
    monkeypatch.undo()
    metadata["model_config"]["n_radial"] = 3
    torch.jit.save(module, str(old), _extra_files={METADATA_FILE: json.dumps(metadata)})
    with pytest.raises(ExportError, match="cannot be rebuilt from its metadata"):
        load_exported(old)


def test_compute_returns_energy_forces_and_virial_of_the_energy(exported):
    """One call: forces are −∂E/∂r and the virial ∂E/∂ε, by finite differences."""
    module, _ = load_exported(exported["float64"])
    atoms = _structures()["small-triclinic"]
    numbers, pbc = torch.tensor(atoms.numbers), torch.tensor([True] * 3)
    positions, cell = torch.tensor(atoms.positions), torch.tensor(atoms.cell.array)
    out = module.compute(positions, numbers, cell, pbc, True)
    assert float(out["energies"].sum()) == pytest.approx(float(out["energy"]), rel=1e-12)
    h = 1e-5
    for atom, axis in [(0, 0), (3, 2)]:
        step = torch.zeros_like(positions)
        step[atom, axis] = h
        up = float(module.compute(positions + step, numbers, cell, pbc)["energy"])
        down = float(module.compute(positions - step, numbers, cell, pbc)["energy"])
        assert -(up - down) / (2 * h) == pytest.approx(float(out["forces"][atom, axis]), abs=1e-6)
    for a, b in [(0, 0), (0, 1), (2, 1)]:
        strain = torch.zeros(3, 3, dtype=torch.float64)
        strain[a, b] = h
        energies = []
        for sign in (1, -1):
            deformation = torch.eye(3, dtype=torch.float64) + sign * strain
            moved = module.compute(positions @ deformation, numbers, cell @ deformation, pbc)
            energies.append(float(moved["energy"]))
        fd = (energies[0] - energies[1]) / (2 * h)
        assert fd == pytest.approx(float(out["virial"][a, b]), abs=1e-6)
    assert not out["forces"].requires_grad and "virial" not in module.compute(
        positions, numbers, cell, pbc
    )


def _small_molecules() -> dict:
    ethanol = molecule("CH3CH2OH")
    squeezed = ethanol.copy()  # a hydrogen 0.45 Å from its carbon: the core's range
    squeezed.positions[3] = squeezed.positions[0] + 0.45 * np.array([0.6, 0.0, 0.8])
    far = ethanol + molecule("H2O")  # a water 9 Å away: beyond the cutoff of every atom
    far.positions[9:] += [9.0, 0.0, 0.0]
    lone = molecule("H2O")[:1]
    return {"ethanol": ethanol, "squeezed": squeezed, "far water": far, "one atom": lone}


@pytest.mark.parametrize("preset", ["tiny", "tiny-l3"])
def test_small_molecules_as_all_pairs_give_the_neighbour_lists_numbers(
    preset, tmp_path, make_student_checkpoint
):
    """``compute`` takes a molecule of up to ``all_pairs_limit`` atoms as every ordered
    pair, without a neighbour search: energies, per-atom energies, forces and virial must be
    those of the neighbour-list path (``all_pairs_limit = 0``), for close pairs in the core's
    range, atoms beyond the cutoff of the rest and a lone atom, for the moment student's
    own form and the generic one every student inherits."""
    checkpoint = make_student_checkpoint(tmp_path / "best.pt", preset=preset)
    module, _ = load_exported(export(checkpoint, tmp_path / "model.pt", dtype="float64"))
    limit = module.all_pairs_limit
    assert limit >= 24  # caffeine's 24 atoms go that way
    for name, atoms in _small_molecules().items():
        args = (
            torch.tensor(atoms.positions),
            torch.tensor(atoms.numbers),
            torch.zeros(3, 3, dtype=torch.float64),
            torch.tensor([False] * 3),
            True,
        )
        pairs = module.compute(*args)
        module.all_pairs_limit = 0
        edges = module.compute(*args)
        module.all_pairs_limit = limit
        assert float(pairs["energy"]) == pytest.approx(float(edges["energy"]), rel=1e-12), name
        for key in ("energies", "forces", "virial"):
            torch.testing.assert_close(pairs[key], edges[key], rtol=1e-10, atol=1e-10, msg=name)
        if name == "squeezed":  # the core really is in play
            assert float(pairs["forces"].abs().max()) > 10.0


@pytest.mark.parametrize("preset", ["tiny", "tiny-l3"])
def test_padded_rows_give_the_edge_forms_numbers(preset, tmp_path, make_student_checkpoint):
    """``local_padded_energies_and_gradient`` (what LAMMPS hands a rank of a few atoms
    over as: ``W`` rows per centre, padding rows at twice the cutoff) gives the energies
    and per-edge gradient of ``local_energies_and_gradient`` on the same edges, for
    centres among atoms that are not centres (as ghost atoms are on a LAMMPS rank), close
    pairs in the core's range and a centre with no neighbour, in the moment student's own
    form and the generic one."""
    checkpoint = make_student_checkpoint(tmp_path / "best.pt", preset=preset)
    module, _ = load_exported(export(checkpoint, tmp_path / "model.pt", dtype="float64"))
    cutoff = module.cutoff
    rng = np.random.default_rng(3)
    ethanol = molecule("CH3CH2OH")
    ethanol.positions[3] = ethanol.positions[0] + 0.45 * np.array([0.6, 0.0, 0.8])
    cases = {
        "squeezed ethanol": (ethanol.positions, ethanol.numbers, range(9)),
        "centres among others": (
            rng.uniform(0.0, 6.0, size=(14, 3)),
            rng.choice([1, 6, 8], size=14),
            [0, 3, 5, 11],
        ),
        "lone centre": (np.array([[0.0, 0.0, 0.0], [20.0, 0.0, 0.0]]), np.array([8, 1]), [0]),
    }
    lookup = {int(z): s for s, z in enumerate(module.atomic_numbers.tolist())}
    for name, (positions, numbers, centres) in cases.items():
        species = [lookup[int(z)] for z in numbers]
        edges = [
            (c, j, positions[j] - positions[i])
            for c, i in enumerate(centres)
            for j in range(len(positions))
            if j != i and np.linalg.norm(positions[j] - positions[i]) < cutoff
        ]
        width = max([sum(1 for c, _, _ in edges if c == k) for k in range(len(centres))] + [1])
        width += 2  # padding rows in every centre
        padded = np.zeros((len(centres) * width, 3))
        padded[:, 0] = 2.0 * cutoff
        padded_species = rng.integers(0, len(lookup), size=len(centres) * width)
        rows, filled = [], [0] * len(centres)
        for c, j, vector in edges:
            row = c * width + filled[c]
            filled[c] += 1
            padded[row] = vector
            padded_species[row] = species[j]
            rows.append(row)
        centre_species = torch.tensor([species[i] for i in centres])
        energies, gradient = module.local_energies_and_gradient(
            torch.tensor(np.array([v for _, _, v in edges]).reshape(-1, 3)),
            torch.tensor([c for c, _, _ in edges], dtype=torch.long),
            centre_species,
            torch.tensor([species[j] for _, j, _ in edges], dtype=torch.long),
        )
        padded_energies, padded_gradient = module.local_padded_energies_and_gradient(
            torch.tensor(padded), centre_species, torch.tensor(padded_species)
        )
        torch.testing.assert_close(padded_energies, energies, rtol=1e-10, atol=1e-10, msg=name)
        torch.testing.assert_close(
            padded_gradient[rows], gradient, rtol=1e-10, atol=1e-10, msg=name
        )
        others = sorted(set(range(len(padded))) - set(rows))
        assert float(padded_gradient[others].abs().max()) == 0.0, name
        if name == "squeezed ethanol":  # the core really is in play
            assert float(gradient.abs().max()) > 10.0


def _pairs(edges: torch.Tensor, shifts: torch.Tensor) -> set:
    return {(int(i), int(j), *map(int, s)) for (i, j), s in zip(edges.t(), shifts.round())}


@pytest.mark.slow
@pytest.mark.parametrize("name", ["water", "molecule", "small-triclinic"])
def test_neighbour_cache_gives_the_fresh_search_along_a_trajectory(exported, name):
    """The cached pairs (cutoff + skin, reused while every atom stays within skin / 2) are
    exactly the fresh search's at every step of a drifting trajectory, across rebuilds, a
    changed cell and a changed atom count."""
    module, _ = load_exported(exported["float64"])
    atoms = _structures()[name]
    rng = np.random.default_rng(5)
    positions = atoms.positions.copy()
    cell = torch.tensor(atoms.cell.array)
    pbc = torch.tensor(atoms.pbc.tolist())
    rebuilds = 0
    for step in range(30):
        positions += rng.normal(scale=0.06, size=positions.shape)  # ~0.1 Å a step
        if step == 20 and atoms.pbc.all():
            cell = cell * 1.01
        pos = torch.tensor(positions)
        before = module._cache_positions.clone()
        cached = module.cached_neighbours(pos, cell, pbc)
        rebuilds += int(not torch.equal(before, module._cache_positions))
        assert _pairs(*cached) == _pairs(*module.neighbours(pos, cell, pbc)), step
    assert 2 <= rebuilds < 30  # reused between rebuilds, rebuilt when atoms moved
    fewer = torch.tensor(positions[:-1])
    assert _pairs(*module.cached_neighbours(fewer, cell, pbc)) == _pairs(
        *module.neighbours(fewer, cell, pbc)
    )


def test_unknown_element_is_named(exported):
    atoms = molecule("CH3Cl")
    atoms.calc = StudentCalculator(exported["float64"])
    with pytest.raises(ValueError, match="Cl"):
        atoms.get_potential_energy()


def test_exporter_refusals(checkpoint, tmp_path):
    from mlff_distiller.models.checkpoint import load_checkpoint, model_from_checkpoint

    model = model_from_checkpoint(load_checkpoint(checkpoint))
    model.train()
    with pytest.raises(ExportError, match="training mode"):
        export_module(model, tmp_path / "x.pt", {})
    model.eval()
    with pytest.raises(ExportError, match="metadata lacks"):
        export_module(model, tmp_path / "x.pt", {"format": "x"})
    with pytest.raises(ExportError, match="dtype"):
        export(checkpoint, tmp_path / "x.pt", dtype="float16")

    class Plain(torch.nn.Module):  # a student's interface but not a Student
        def __init__(self, inner):
            super().__init__()
            self.inner, self.cutoff = inner, inner.cutoff
            self.register_buffer("atomic_numbers", inner.atomic_numbers.clone())

        def forward(self, vectors, edge_index, species):
            return self.inner(vectors, edge_index, species)

    with pytest.raises(ExportError, match="Plain has no energies_and_gradient; derive it from"):
        export_module(Plain(model).eval(), tmp_path / "x.pt", {})
    assert not (tmp_path / "x.pt").exists()


def test_self_check_failure_writes_nothing(checkpoint, tmp_path, monkeypatch):
    """A scripted module that disagrees with the eager model must not be written."""
    from mlff_distiller.export import exporter

    real = exporter.ExportedStudent

    class Broken(real):
        def forward(self, positions, numbers, cell, pbc):
            return 1.001 * self.atomic_energies(positions, numbers, cell, pbc).sum()

    monkeypatch.setattr(exporter, "ExportedStudent", Broken)
    with pytest.raises(ExportError, match="self-check failed"):
        export(checkpoint, tmp_path / "broken.pt", dtype="float64")
    assert list(tmp_path.iterdir()) == []


def test_loader_errors(exported, checkpoint, tmp_path):
    with pytest.raises(ExportError, match="does not exist"):
        load_exported(tmp_path / "missing.pt")
    text = tmp_path / "text.pt"
    text.write_text("not a model")
    with pytest.raises(ExportError, match="not a TorchScript file"):
        load_exported(text)
    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes(exported["float64"].read_bytes()[:5000])
    with pytest.raises(ExportError, match="not a TorchScript file"):
        load_exported(truncated)
    plain = tmp_path / "plain.pt"
    torch.jit.save(torch.jit.script(torch.nn.Linear(2, 2)), str(plain))
    with pytest.raises(ExportError, match="without mlff_distiller metadata"):
        load_exported(plain)
    newer = tmp_path / "newer.pt"
    _rewrite_metadata(exported["float64"], newer, format_version=99)
    with pytest.raises(ExportError, match="upgrade mlff_distiller"):
        load_exported(newer)
    with pytest.raises(ValueError, match="float64 model; export it again"):
        StudentCalculator(exported["float64"], dtype="float32")


def _rewrite_metadata(source, target, **changes):
    with zipfile.ZipFile(source) as zin, zipfile.ZipFile(target, "w") as zout:
        for item in zin.infolist():
            data = zin.read(item.filename)
            if item.filename.endswith("extra/" + METADATA_FILE):
                data = json.dumps({**json.loads(data), **changes}).encode()
            zout.writestr(item, data)


def _cases():
    from ase.build import molecule as mol

    shifted = water_box(64)
    shifted.positions += 3.0  # unwrapped positions
    triclinic = water_box(32)
    triclinic.set_cell(
        triclinic.cell.array @ np.array([[1, 0.15, 0], [0, 1, 0.1], [0.05, 0, 1]]), scale_atoms=True
    )
    slab = water_box(32)
    slab.pbc = [True, True, False]
    small = mol("CH4")
    small.set_cell([[3.2, 0, 0], [0.4, 3.1, 0], [0.3, 0.5, 3.3]])
    small.pbc = True
    return [shifted, triclinic, mol("C60"), slab, small]


@pytest.mark.parametrize("index", range(5))
def test_cell_list_finds_exactly_the_pairs_of_the_all_pairs_search(index):
    """The linear-cost cell list (large systems) and the all-pairs search (small ones) must
    return the same (i, j, image) set, for the scripted module too."""
    from mlff_distiller.export import ExportedStudent
    from mlff_distiller.models import build_model
    from mlff_distiller.models.graph import neighbours

    atoms = _cases()[index]
    module = torch.jit.script(ExportedStudent(build_model("tiny", ["H", "C", "O"]).double().eval()))
    args = (torch.tensor(atoms.positions), torch.tensor(atoms.cell.array), torch.tensor(atoms.pbc))
    found = []
    for limit in (10**9, 0):
        module.brute_force_limit = limit
        edge_index, shifts = module.neighbours(*args)
        found.append(sorted(zip(*edge_index.tolist(), map(tuple, shifts.long().tolist()))))
    assert found[0] == found[1]
    # ...and the same pairs as the neighbour list used in training (matscipy / ASE).
    i, j, s = neighbours(atoms, 5.0)
    assert found[0] == sorted(zip(i.tolist(), j.tolist(), map(tuple, s.tolist())))


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_untrained_student_for_timing_is_a_valid_export_that_says_so(tmp_path, dtype):
    from mlff_distiller.timing import untrained_student

    path = untrained_student("ultra-tiny", ["H", "O"], tmp_path / "u.pt", dtype=dtype)
    _, metadata = load_exported(path)
    assert metadata["dtype"] == dtype and metadata["elements"] == ["H", "O"]
    assert "untrained" in metadata["teacher"]["name"]
    atoms = molecule("H2O")
    atoms.calc = StudentCalculator(path)
    assert np.isfinite(atoms.get_forces()).all()


@pytest.mark.parametrize("preset", ["tiny", "tiny-l3"])
def test_calculator_calls_without_autograd_give_the_modules_numbers(
    preset, tmp_path, make_student_checkpoint
):
    """``StudentCalculator`` runs a student whose chain rule is written out in inference
    mode (no autograd bookkeeping), and one that differentiates itself (``tiny-l3``, through
    autograd) as before: over a few moved frames of 32 periodic waters, whose neighbour
    cache is made and reused inside those calls, both give ``compute``'s own numbers outside
    inference mode, and only the first kind's cache is made of inference tensors."""
    checkpoint = make_student_checkpoint(tmp_path / "best.pt", preset=preset)
    path = export(checkpoint, tmp_path / "model.pt", dtype="float64")
    calc = StudentCalculator(path)
    reference, _ = load_exported(path)
    box = water_box(32)
    rng = np.random.default_rng(5)
    for _ in range(4):  # the second to fourth frames reuse the cache (moves under skin / 2)
        box.positions += rng.normal(0.0, 0.02, size=box.positions.shape)
        box.calc = calc
        forces = box.get_forces()
        stress = box.get_stress(voigt=False)
        out = reference.compute(
            torch.tensor(box.positions),
            torch.tensor(box.numbers),
            torch.tensor(box.cell.array),
            torch.tensor([True] * 3),
            True,
        )
        np.testing.assert_allclose(forces, out["forces"].numpy(), rtol=0, atol=1e-12)
        np.testing.assert_allclose(
            stress * box.get_volume(), out["virial"].numpy(), rtol=0, atol=1e-10
        )
    assert torch.is_inference(calc.exported._cache_positions) == (preset == "tiny")
