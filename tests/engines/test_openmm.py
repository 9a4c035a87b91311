"""The student in real OpenMM (TorchForce) against :class:`StudentCalculator` (ASE).

Every parity test runs on each available platform among Reference and CPU, with the
student exported in float64 and in float32; the reference is always the float64
checkpoint evaluated by ``StudentCalculator``. The student is a seeded random one with
noisy weights (``write_student_checkpoint`` in conftest.py), so no training is needed.
"""

from __future__ import annotations

# torch first: `import openmm` loads its plugins and skips the Torch plugin without it.

# isort: split
from pathlib import Path

import numpy as np
import openmm
import openmmtorch
import pytest
from ase import Atoms
from ase.build import molecule
from openmm import app, unit
from openmmml import MLPotential

from mlff_distiller import StudentCalculator
from mlff_distiller.data import structures_from_smiles, water_box
from mlff_distiller.engines.openmm import (
    ANGSTROM_PER_NM,
    KJ_PER_MOL_PER_EV,
    create_mixed_system,
    create_system,
    make_context,
    topology_from_atoms,
)

ELEMENTS = ("H", "C", "N", "O")
#: (relative energy error, force error in eV/Å) each exported dtype must reach.
TOLERANCE = {"float64": (1e-8, 1e-6), "float32": (1e-5, 1e-3)}
KJ_MOL = unit.kilojoule_per_mole


@pytest.fixture(params=["Reference", "CPU"])
def platform(request) -> openmm.Platform:
    try:
        return openmm.Platform.getPlatformByName(request.param)
    except openmm.OpenMMException:
        pytest.skip(f"OpenMM platform {request.param} is not available")


def evaluate(system: openmm.System, atoms: Atoms, platform: openmm.Platform, groups=-1):
    """Energy (eV) and forces (eV/Å) from OpenMM at the positions and cell of ``atoms``."""
    context = make_context(system, openmm.VerletIntegrator(0.001), platform.getName(), atoms=atoms)
    state = context.getState(getEnergy=True, getForces=True, groups=groups)
    energy = state.getPotentialEnergy().value_in_unit(KJ_MOL) / KJ_PER_MOL_PER_EV
    forces = state.getForces(asNumpy=True).value_in_unit(KJ_MOL / unit.nanometer)
    return energy, np.asarray(forces) / (KJ_PER_MOL_PER_EV * ANGSTROM_PER_NM)


def straddling_water() -> Atoms:
    """32 waters shifted by half a box and wrapped atom by atom: molecules cross the faces."""
    atoms = water_box(32)
    atoms.positions += 0.5 * atoms.cell.lengths()
    atoms.wrap()
    oh = atoms.positions[1::3] - atoms.positions[0::3]
    assert (np.abs(oh) > 2.0).any(), "no molecule straddles the boundary"
    return atoms


def triclinic_water() -> Atoms:
    """The water box sheared into a triclinic cell in OpenMM's reduced form."""
    atoms = water_box(32)
    edge = atoms.cell.lengths()[0]
    cell = edge * np.array([[1.0, 0.0, 0.0], [0.3, 1.0, 0.0], [-0.25, 0.4, 1.0]])
    atoms.set_cell(cell, scale_atoms=True)
    return atoms


CASES = {
    "ethanol": lambda: structures_from_smiles(["CCO"])[0],
    "water_across_boundary": straddling_water,
    "triclinic_water": triclinic_water,
}


@pytest.mark.parametrize("dtype", list(TOLERANCE))
@pytest.mark.parametrize("case", list(CASES))
def test_parity_with_student_calculator(case, dtype, models, reference, platform):
    atoms = CASES[case]()
    system = create_system(atoms, models[dtype])
    assert system.usesPeriodicBoundaryConditions() == bool(atoms.pbc.all())
    energy, forces = evaluate(system, atoms, platform)
    atoms.calc = reference
    e_ref, f_ref = atoms.get_potential_energy(), atoms.get_forces()
    e_tol, f_tol = TOLERANCE[dtype]
    assert abs(energy - e_ref) <= e_tol * abs(e_ref)
    assert np.abs(forces - f_ref).max() <= f_tol


@pytest.mark.parametrize("dtype", list(TOLERANCE))
def test_translation_by_box_vector_changes_nothing(dtype, models, platform):
    atoms = triclinic_water()
    system = create_system(atoms, models[dtype])
    energy, forces = evaluate(system, atoms, platform)
    moved = atoms.copy()
    moved.positions[4] += moved.cell[1] - moved.cell[2]
    moved.positions[9] += moved.cell[0]
    energy_moved, forces_moved = evaluate(system, moved, platform)
    e_tol, f_tol = TOLERANCE[dtype]
    assert abs(energy_moved - energy) <= e_tol * abs(energy)
    assert np.abs(forces_moved - forces).max() <= f_tol


def test_pdb_file_and_topology_sources(models, reference, tmp_path):
    """A PDB path (box from CRYST1) gives the same system as the Topology it holds."""
    path = tmp_path / "water.pdb"
    water = water_box(32)
    with path.open("w") as handle:
        app.PDBFile.writeFile(topology_from_atoms(water), water.positions * unit.angstrom, handle)
    pdb = app.PDBFile(str(path))
    atoms = Atoms(
        [a.element.symbol for a in pdb.topology.atoms()],
        positions=pdb.getPositions(asNumpy=True).value_in_unit(unit.angstrom),
        cell=pdb.topology.getPeriodicBoxVectors().value_in_unit(unit.angstrom),
        pbc=True,
    )
    atoms.calc = reference
    platform = openmm.Platform.getPlatformByName("Reference")
    for source in (str(path), pdb.topology):
        energy, _ = evaluate(create_system(source, models["float64"]), atoms, platform)
        assert abs(energy - atoms.get_potential_energy()) <= 1e-8 * abs(energy)


def test_torchforce_module_is_inference_only(models):
    # TorchForce calls energy.backward(): a weight that requires a gradient would be
    # differentiated (and its gradient accumulated) on every MD step.
    system = create_system(molecule("CH3CH2OH"), models["float32"])  # owns the forces
    torch_forces = [f for f in system.getForces() if openmmtorch.TorchForce.isinstance(f)]
    assert len(torch_forces) == 1
    parameters = list(openmmtorch.TorchForce.cast(torch_forces[0]).getModule().parameters())
    assert parameters and not any(p.requires_grad for p in parameters)


def test_a_platform_openmm_lacks_is_named_with_the_ones_it_has(models):
    system = create_system(molecule("H2O"), models["float64"])
    with pytest.raises(RuntimeError, match=r"OpenMM has no Quantum platform here \(it has .*CPU"):
        make_context(system, openmm.VerletIntegrator(0.001), "Quantum")


def test_unknown_element_is_named(models):
    with pytest.raises(ValueError, match=r"S is not in the model .* knows H, C, N, O"):
        create_system(molecule("CH3SH"), models["float64"])


def test_bad_source_type(models):
    with pytest.raises(TypeError, match="Topology, an ase.Atoms or the path of a PDB"):
        create_system(np.zeros((3, 3)), models["float64"])


def test_partially_periodic_atoms_are_refused(models):
    slab = water_box(32)
    slab.pbc = [True, True, False]
    with pytest.raises(ValueError, match="periodic in all three directions"):
        create_system(slab, models["float64"])


@pytest.fixture(scope="module")
def villin():
    """Villin headpiece from OpenMM's test.pdb, without water and ions, in Amber14
    (no cutoff, no constraints), with every force in a group of its own."""
    pdb = app.PDBFile(str(Path(app.__file__).parent / "data" / "test.pdb"))
    modeller = app.Modeller(pdb.topology, pdb.positions)
    modeller.deleteWater()
    modeller.delete([r for r in modeller.topology.residues() if r.name in ("Cl", "Na")])
    forcefield = app.ForceField("amber14-all.xml")
    system = forcefield.createSystem(
        modeller.topology, nonbondedMethod=app.NoCutoff, constraints=None
    )
    for group, force in enumerate(system.getForces()):
        force.setForceGroup(group)
    positions = modeller.getPositions().value_in_unit(unit.angstrom)
    return system, modeller.topology, np.array(positions)


def ml_internal_only(system: openmm.System, ml: set[int]) -> openmm.System:
    """A copy of ``system`` keeping only the terms among ``ml`` atoms (the complement of
    what ``create_mixed_system`` removes), built by zeroing every other term."""
    copy = openmm.XmlSerializer.clone(system)
    for force in copy.getForces():
        if isinstance(force, openmm.HarmonicBondForce):
            for k in range(force.getNumBonds()):
                i, j, r0, kb = force.getBondParameters(k)
                force.setBondParameters(k, i, j, r0, kb if {i, j} <= ml else 0.0)
        elif isinstance(force, openmm.HarmonicAngleForce):
            for k in range(force.getNumAngles()):
                i, j, m, a0, ka = force.getAngleParameters(k)
                force.setAngleParameters(k, i, j, m, a0, ka if {i, j, m} <= ml else 0.0)
        elif isinstance(force, openmm.PeriodicTorsionForce):
            for k in range(force.getNumTorsions()):
                i, j, m, n, per, phase, kt = force.getTorsionParameters(k)
                kt = kt if {i, j, m, n} <= ml else 0.0
                force.setTorsionParameters(k, i, j, m, n, per, phase, kt)
        elif isinstance(force, openmm.NonbondedForce):
            for i in set(range(copy.getNumParticles())) - ml:
                force.setParticleParameters(i, 0.0, 1.0, 0.0)
            for k in range(force.getNumExceptions()):
                i, j, qq, sigma, eps = force.getExceptionParameters(k)
                if not {i, j} <= ml:
                    force.setExceptionParameters(k, i, j, 0.0, sigma, 0.0)
    return copy


def test_mixed_system_term_by_term(villin, models, reference):
    """Per force group: mixed = classical − ML-internal classical; the TorchForce group is
    the student on the ML atoms alone; forces add up the same way."""
    system, topology, positions = villin
    ml = [a.index for a in topology.atoms() if a.residue.index in (1, 2)]  # Ser 2, Asp 3
    mixed = create_mixed_system(system, topology, ml, models["float64"])
    assert mixed.getNumForces() == system.getNumForces() + 1
    student_group = system.getNumForces()
    mixed.getForce(student_group).setForceGroup(student_group)
    internal = ml_internal_only(system, set(ml))
    atoms = Atoms([a.element.symbol for a in topology.atoms()], positions=positions)
    platform = openmm.Platform.getPlatformByName("Reference")
    total = {
        name: evaluate(s, atoms, platform)
        for name, s in (("classical", system), ("internal", internal), ("mixed", mixed))
    }
    for group, force in enumerate(system.getForces()):
        e_classical, _ = evaluate(system, atoms, platform, {group})
        e_internal, _ = evaluate(internal, atoms, platform, {group})
        e_mixed, _ = evaluate(mixed, atoms, platform, {group})
        if not isinstance(force, openmm.CMMotionRemover):
            assert abs(e_internal) > 1e-3, f"nothing of {force.getName()} is ML-internal"
        assert e_mixed == pytest.approx(e_classical - e_internal, rel=1e-10, abs=1e-9)

    fragment = atoms[ml]
    fragment.calc = reference
    e_student, f_student = evaluate(mixed, atoms, platform, {student_group})
    assert e_student == pytest.approx(fragment.get_potential_energy(), rel=1e-8)
    expected_forces = total["classical"][1] - total["internal"][1]
    expected_forces[ml] += fragment.get_forces()
    expected_energy = total["classical"][0] - total["internal"][0] + e_student
    assert total["mixed"][0] == pytest.approx(expected_energy, rel=1e-10)
    assert np.abs(total["mixed"][1] - expected_forces).max() <= 1e-6


def _barostat_run(system, atoms, steps=40):
    """Box volume (nm³) and O–H vectors (nm) before and after ``steps`` Monte Carlo barostat
    moves at 5000 bar with dynamics frozen (a 1e-9 ps step); molecules start whole."""
    barostat = openmm.MonteCarloBarostat(5000 * unit.bar, 300 * unit.kelvin, 1)
    barostat.setRandomNumberSeed(7)
    system.addForce(barostat)
    integrator = openmm.VerletIntegrator(1e-9)
    context = openmm.Context(system, integrator, openmm.Platform.getPlatformByName("Reference"))
    context.setPeriodicBoxVectors(*(row / ANGSTROM_PER_NM for row in atoms.cell.array))
    context.setPositions(atoms.positions / ANGSTROM_PER_NM)
    out = []
    for n in (0, steps):
        integrator.step(n)
        state = context.getState(getPositions=True)
        x = state.getPositions(asNumpy=True).value_in_unit(unit.nanometer)
        box = np.diag(state.getPeriodicBoxVectors(asNumpy=True).value_in_unit(unit.nanometer))
        oh = np.concatenate([x[1::3] - x[0::3], x[2::3] - x[0::3]])
        out.append((box.prod(), oh))
    return out


def test_molecules_keep_their_shape_under_the_barostat(models):
    """create_system(molecules=True): zero-energy bonds tell OpenMM the molecules, so
    MonteCarloBarostat moves whole waters (O–H vectors unchanged, box changed); without it
    every atom is scaled on its own."""
    atoms = water_box(32)
    assert np.abs(atoms.positions[1::3] - atoms.positions[0::3]).max() < 1.2  # whole
    plain = create_system(atoms, models["float64"])
    bonded = create_system(atoms, models["float64"], molecules=True)
    assert bonded.getNumForces() == plain.getNumForces() + 1
    energy, forces = evaluate(plain, atoms, openmm.Platform.getPlatformByName("Reference"))
    e_b, f_b = evaluate(bonded, atoms, openmm.Platform.getPlatformByName("Reference"))
    # The bonds add nothing: the same energy, and forces to the last bit. Not bitwise: on
    # two torch threads two evaluations of one system in fresh contexts already differ
    # there (1e-13 of 517 kJ/mol/nm, 2e-16 relative, for a random student; bitwise equal
    # on one thread), the order of a threaded sum. A bond of any stiffness adds far more.
    assert e_b == pytest.approx(energy, rel=1e-14, abs=1e-12)
    np.testing.assert_allclose(f_b, forces, rtol=0, atol=1e-12)
    (v0, oh0), (v1, oh1) = _barostat_run(bonded, atoms)
    assert abs(v1 / v0 - 1) > 1e-3, "no barostat move was accepted"
    np.testing.assert_allclose(oh1, oh0, rtol=0, atol=1e-9)
    (v0, oh0), (v1, oh1) = _barostat_run(plain, atoms)
    assert abs(v1 / v0 - 1) > 1e-3, "no barostat move was accepted"
    assert np.abs(oh1 - oh0).max() > 1e-4
    with pytest.raises(ValueError, match="molecules=True but the topology has no bonds"):
        create_system(topology_from_atoms(atoms), models["float64"], molecules=True)


def test_openmm_ml_create_system_matches_ase(models, platform):
    """openmm-ml's own API finds the student through its entry point: the System it builds
    gives the exported file's ASE energies and forces (float64, molecule and periodic box)
    and runs."""
    for atoms in (molecule("CH3CH2OH"), straddling_water()):
        potential = MLPotential("mlff", modelPath=str(models["float64"]))
        system = potential.createSystem(topology_from_atoms(atoms))
        assert system.usesPeriodicBoundaryConditions() == bool(atoms.pbc.all())
        energy, forces = evaluate(system, atoms, platform)
        atoms.calc = StudentCalculator(models["float64"])
        assert energy == pytest.approx(atoms.get_potential_energy(), rel=1e-10)
        scale = np.abs(atoms.get_forces()).max()
        assert np.abs(forces - atoms.get_forces()).max() <= 1e-10 * scale
        integrator = openmm.LangevinMiddleIntegrator(300, 1, 0.0005)
        context = openmm.Context(system, integrator, platform)
        if atoms.pbc.all():
            context.setPeriodicBoxVectors(*(row / ANGSTROM_PER_NM for row in atoms.cell.array))
        context.setPositions(atoms.positions / ANGSTROM_PER_NM)
        integrator.step(20)
        state = context.getState(getEnergy=True, getPositions=True)
        assert np.isfinite(state.getPotentialEnergy().value_in_unit(KJ_MOL))
        moved = state.getPositions(asNumpy=True).value_in_unit(unit.angstrom) - atoms.positions
        assert 0 < np.abs(moved).max() < 1.0


def test_openmm_ml_refuses_what_it_cannot_use(models, checkpoint):
    with pytest.raises(ValueError, match="needs modelPath="):
        MLPotential("mlff")
    with pytest.raises(ValueError, match="not a file written by mlff-distill export"):
        MLPotential("mlff", modelPath=str(checkpoint))
    potential = MLPotential("mlff", modelPath=str(models["float64"]))
    with pytest.raises(ValueError, match="does not take precision"):
        potential.createSystem(topology_from_atoms(molecule("H2O")), precision="double")
    with pytest.raises(ValueError, match="Cl is not in the model"):
        potential.createSystem(topology_from_atoms(molecule("CH3Cl")))


def _mixed_state(system, positions, platform, groups=-1, parameters=None):
    """Energy (eV), forces (eV/Å) and all positions (Å, link-atom sites included) of
    ``system`` at ``positions`` of the original atoms, with global ``parameters`` set."""
    context = openmm.Context(system, openmm.VerletIntegrator(0.001), platform)
    for name, value in (parameters or {}).items():
        context.setParameter(name, value)
    full = np.zeros((system.getNumParticles(), 3))
    full[: len(positions)] = positions
    context.setPositions(full / ANGSTROM_PER_NM)
    context.computeVirtualSites()
    state = context.getState(getEnergy=True, getForces=True, getPositions=True, groups=groups)
    energy = state.getPotentialEnergy().value_in_unit(KJ_MOL) / KJ_PER_MOL_PER_EV
    forces = state.getForces(asNumpy=True).value_in_unit(KJ_MOL / unit.nanometer)
    return (
        energy,
        np.asarray(forces) / (KJ_PER_MOL_PER_EV * ANGSTROM_PER_NM),
        state.getPositions(asNumpy=True).value_in_unit(unit.angstrom),
    )


def test_openmm_ml_mixed_system_interpolates_between_mm_and_ml(villin, models, platform):
    """createMixedSystem(interpolate=True): at lambda_interpolate = 0 the classical System,
    at 1 the mixed System openmm-ml builds without interpolation (link atoms capping the cut
    bonds), whose student force group is the ASE student on the ML atoms and their caps.
    (openmm-ml copies ML forces through XmlSerializer, which crashes on a TorchForce with the
    pinned stack; the factory builds the force in place instead.)"""
    system, topology, positions = villin
    ml = [a.index for a in topology.atoms() if a.residue.index in (1, 2)]
    group = system.getNumForces()
    potential = MLPotential("mlff", modelPath=str(models["float64"]))
    plain = potential.createMixedSystem(topology, system, ml, forceGroup=group, returnInfo=True)
    lerp = potential.createMixedSystem(topology, system, ml, interpolate=True)
    caps = plain["system"].getNumParticles() - system.getNumParticles()
    assert caps > 0, "residues 2-3 are bonded to the rest: openmm-ml caps the cut bonds"
    # Absolute (eV, eV/Å): the classical energy is a small sum of large terms; CPU computes
    # the classical nonbonded terms in single precision.
    tol = 1e-6 if platform.getName() == "Reference" else 2e-3
    e_mm, f_mm, _ = _mixed_state(system, positions, platform)
    e_ml, f_ml, all_positions = _mixed_state(plain["system"], positions, platform)
    halfway = (0.5, (e_mm + e_ml) / 2, (f_mm + f_ml[: len(positions)]) / 2)  # linear in lambda
    for value, e_ref, f_ref in ((0.0, e_mm, f_mm), (1.0, e_ml, f_ml[: len(positions)]), halfway):
        energy, forces, _ = _mixed_state(
            lerp, positions, platform, parameters={"lambda_interpolate": value}
        )
        forces = forces[: len(positions)]
        assert energy == pytest.approx(e_ref, rel=0, abs=tol), f"lambda_interpolate = {value}"
        assert np.abs(forces - f_ref).max() <= tol, f"lambda_interpolate = {value}"

    e_student, _, _ = _mixed_state(plain["system"], positions, platform, {group})
    symbols = [a.element.symbol for a in plain["topology"].atoms()]
    inside = ml + list(range(system.getNumParticles(), plain["system"].getNumParticles()))
    fragment = Atoms([symbols[i] for i in inside], positions=all_positions[inside])
    fragment.calc = StudentCalculator(models["float64"])
    assert e_student == pytest.approx(fragment.get_potential_energy(), rel=1e-10)


def test_mixed_system_switches_off_internal_rb_and_cmap_terms(models):
    """Amber has neither: a hand-built chain of six O atoms with one RB and one CMAP torsion
    inside the ML region (atoms 0–3) and one of each reaching outside it."""
    rng = np.random.default_rng(0)
    topology, system = app.Topology(), openmm.System()
    chain = topology.addChain()
    for _ in range(6):
        system.addParticle(16.0)
        topology.addAtom("O", app.Element.getBySymbol("O"), topology.addResidue("O", chain))
    coefficients = rng.normal(size=(2, 6))
    rb, cmap = openmm.RBTorsionForce(), openmm.CMAPTorsionForce()
    rb.addTorsion(0, 1, 2, 3, *coefficients[0])
    rb.addTorsion(2, 3, 4, 5, *coefficients[1])
    cmap.addMap(4, rng.normal(size=16).tolist())
    cmap.addTorsion(0, 0, 1, 2, 3, 1, 2, 3, 0)
    cmap.addTorsion(0, 1, 2, 3, 4, 2, 3, 4, 5)
    outside = openmm.XmlSerializer.clone(system)  # the terms that must survive, alone
    rb_out, cmap_out = openmm.RBTorsionForce(), openmm.CMAPTorsionForce()
    rb_out.addTorsion(2, 3, 4, 5, *coefficients[1])
    cmap_out.addMap(4, list(cmap.getMapParameters(0)[1]))
    cmap_out.addTorsion(0, 1, 2, 3, 4, 2, 3, 4, 5)
    for s, forces in ((system, (rb, cmap)), (outside, (rb_out, cmap_out))):
        for k, force in enumerate(forces):
            force.setForceGroup(k + 1)
            s.addForce(force)
    mixed = create_mixed_system(system, topology, [0, 1, 2, 3], models["float64"])
    atoms = Atoms("O6", positions=rng.normal(size=(6, 3)) * 1.5)
    platform = openmm.Platform.getPlatformByName("Reference")
    for group in (1, 2):
        expected, _ = evaluate(outside, atoms, platform, {group})
        before, _ = evaluate(system, atoms, platform, {group})
        after, _ = evaluate(mixed, atoms, platform, {group})
        assert abs(before - expected) > 1e-4
        assert after == pytest.approx(expected, rel=1e-12)


def test_openmm_imported_before_torch_still_gets_the_torchforce_plugin(models, tmp_path):
    """A user script that imports openmm first (its plugins then skip openmm-torch's, which
    needs torch's libraries) still runs the student: create_system loads the plugin."""
    script = tmp_path / "openmm_first.py"
    script.write_text(
        f"""
import openmm
from ase.build import molecule
from mlff_distiller.engines.openmm import ANGSTROM_PER_NM, create_system
atoms = molecule("H2O")
system = create_system(atoms, {str(models["float64"])!r})
context = openmm.Context(system, openmm.VerletIntegrator(0.001),
                         openmm.Platform.getPlatformByName("Reference"))
context.setPositions(atoms.positions / ANGSTROM_PER_NM)
print(context.getState(getEnergy=True).getPotentialEnergy()._value)
"""
    )
    import subprocess
    import sys

    run = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                         timeout=300)  # fmt: skip
    assert run.returncode == 0, run.stderr[-2000:]
    energy = float(run.stdout.strip().splitlines()[-1])
    atoms = molecule("H2O")
    atoms.calc = StudentCalculator(models["float64"])
    assert abs(energy / KJ_PER_MOL_PER_EV - atoms.get_potential_energy()) < 1e-6


@pytest.mark.parametrize("offset", [1e3, 1e4, 1e6])
@pytest.mark.parametrize("dtype", list(TOLERANCE))
def test_far_from_the_origin_openmm_agrees_with_ase_at_the_origin(dtype, offset, models, reference,
                                                                  platform):  # fmt: skip
    """Edge vectors are formed in float64 before the cast to the student's dtype, so ethanol
    10⁶ Å away (an unwrapped long trajectory) gets its at-origin energy and forces."""
    atoms = molecule("CH3CH2OH")
    atoms.calc = reference
    e_ref, f_ref = atoms.get_potential_energy(), atoms.get_forces()
    far = atoms.copy()
    far.positions += [offset, -0.5 * offset, 0.25 * offset]
    energy, forces = evaluate(create_system(far, models[dtype]), far, platform)
    e_tol, f_tol = TOLERANCE[dtype]
    assert abs(energy - e_ref) <= e_tol * abs(e_ref), (energy, e_ref)
    assert np.abs(forces - f_ref).max() <= f_tol


_XML_ROUND_TRIP = """
import torch
import openmm
from ase.build import molecule
from mlff_distiller.engines.openmm import create_system
system = create_system(molecule("H2O"), {model!r})
openmm.XmlSerializer.deserialize(openmm.XmlSerializer.serialize(system))
"""


@pytest.mark.xfail(
    strict=True,
    reason="openmmtorch 1.5's wheel was built against an OpenMM whose "
    "SerializationNode::getStringProperty returned a reference; OpenMM 8.6.1 returns the "
    "string by value, so TorchForceProxy::deserialize calls it with the wrong ABI and "
    "crashes (SIGSEGV). engines/openmm/README.md gives the working alternative.",
)
def test_xml_serializer_round_trip_of_a_torchforce_system(models, tmp_path):
    import subprocess
    import sys

    script = tmp_path / "round_trip.py"
    script.write_text(_XML_ROUND_TRIP.format(model=str(models["float64"])))
    run = subprocess.run([sys.executable, str(script)], capture_output=True, timeout=300)
    assert run.returncode == 0, run.returncode


def test_rebuild_then_load_state_restores_a_torchforce_simulation(models):
    """The alternative to XmlSerializer for Systems with a TorchForce: rebuild the System
    with create_system, then restore the State (its XML works) or a checkpoint."""
    atoms = molecule("H2O")
    platform = openmm.Platform.getPlatformByName("Reference")

    def context() -> openmm.Context:
        system = create_system(atoms, models["float64"])
        return openmm.Context(system, openmm.VerletIntegrator(0.0005), platform)

    first = context()
    first.setPositions(atoms.positions / ANGSTROM_PER_NM)
    first.setVelocitiesToTemperature(300, 1)
    first.getIntegrator().step(5)
    saved = first.getState(getPositions=True, getVelocities=True, getEnergy=True)
    state_xml = openmm.XmlSerializer.serialize(saved)
    checkpoint = first.createCheckpoint()
    first.getIntegrator().step(3)
    later = first.getState(getPositions=True).getPositions(asNumpy=True)._value
    for restore in ("state", "checkpoint"):
        again = context()
        if restore == "state":
            again.setState(openmm.XmlSerializer.deserialize(state_xml))
        else:
            again.loadCheckpoint(checkpoint)
        energy = again.getState(getEnergy=True).getPotentialEnergy()
        assert energy.value_in_unit(KJ_MOL) == pytest.approx(
            saved.getPotentialEnergy().value_in_unit(KJ_MOL), abs=1e-9
        )
        again.getIntegrator().step(3)
        moved = again.getState(getPositions=True).getPositions(asNumpy=True)._value
        np.testing.assert_allclose(moved, later, atol=1e-12)
