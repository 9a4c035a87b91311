"""Sampling: from a few structures to the configurations an MD run will visit.

Every function takes a list of structures and returns a new list of ``ase.Atoms``; each
sample keeps its parent's ``source`` and ``group`` and records in ``atoms.info["sampling"]``
the method, its parameters and the seed. The same seed gives the same samples.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
from ase import Atoms, units
from ase.calculators.calculator import Calculator

from ..errors import InputError


def _tagged(atoms: Atoms, method: str, seed: int, **params: Any) -> Atoms:
    sample = atoms.copy()
    sample.calc = None
    sample.info["sampling"] = {"method": method, "seed": seed, **params}
    return sample


def _rngs(seed: int, n: int) -> list[np.random.Generator]:
    """One independent generator per parent structure, so adding structures does not
    change the samples of the others."""
    return [np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(n)]


def perturb(
    structures: list[Atoms], n_samples: int, amplitude: float = 0.05, seed: int = 0
) -> list[Atoms]:
    """Random Cartesian displacements, Gaussian with standard deviation ``amplitude`` (Å)
    per coordinate.

    Examples
    --------
    >>> from ase.build import molecule
    >>> len(perturb([molecule("H2O")], n_samples=4, amplitude=0.02))
    4
    """
    if amplitude <= 0:
        raise InputError(f"amplitude must be positive (Å), got {amplitude}")
    samples = []
    for atoms, rng in zip(structures, _rngs(seed, len(structures))):
        for i in range(n_samples):
            sample = _tagged(atoms, "perturb", seed, amplitude_A=amplitude, index=i)
            sample.positions += rng.normal(0.0, amplitude, size=sample.positions.shape)
            samples.append(sample)
    return samples


def _require_periodic(atoms: Atoms, method: str, instead: str) -> None:
    """Refuse a structure that is not periodic in all three directions, naming what to use
    for molecules ``instead``."""
    if not atoms.pbc.all():
        raise InputError(
            f"{method} needs fully periodic cells; {atoms.info.get('source', 'a structure')} "
            f"is not periodic (use {instead} for molecules)"
        )


def rattle_strain(
    structures: list[Atoms],
    n_samples: int,
    rattle: float = 0.03,
    max_strain: float = 0.03,
    seed: int = 0,
) -> list[Atoms]:
    """Periodic cells under a random symmetric strain (each component uniform in
    ``±max_strain``), atoms scaled with the cell, then rattled by ``rattle`` Å (Gaussian)."""
    samples = []
    for atoms, rng in zip(structures, _rngs(seed, len(structures))):
        _require_periodic(atoms, "rattle_strain", "perturb or normal_mode_sampling")
        for i in range(n_samples):
            sample = _tagged(
                atoms, "rattle_strain", seed, rattle_A=rattle, max_strain=max_strain, index=i
            )
            strain = rng.uniform(-max_strain, max_strain, size=(3, 3))
            strain = 0.5 * (strain + strain.T)
            sample.set_cell(atoms.cell.array @ (np.eye(3) + strain), scale_atoms=True)
            sample.positions += rng.normal(0.0, rattle, size=sample.positions.shape)
            samples.append(sample)
    return samples


def hessian(atoms: Atoms, calculator: Calculator, delta: float = 0.005) -> np.ndarray:
    """Hessian (eV/Å², shape 3N×3N) by central differences of the calculator's forces."""
    work = atoms.copy()
    work.calc = calculator
    n = 3 * len(atoms)
    hess = np.empty((n, n))
    flat = work.positions.reshape(-1).copy()
    for k in range(n):
        forces = []
        for sign in (1.0, -1.0):
            displaced = flat.copy()
            displaced[k] += sign * delta
            work.positions = displaced.reshape(-1, 3)
            forces.append(work.get_forces().reshape(-1))
        hess[k] = -(forces[0] - forces[1]) / (2 * delta)
    return 0.5 * (hess + hess.T)


def normal_mode_sampling(
    structures: list[Atoms],
    calculator: Calculator,
    n_samples: int,
    temperature_K: float = 300.0,
    seed: int = 0,
    min_frequency_cm: float = 50.0,
) -> list[Atoms]:
    """Displacements along the normal modes with classical Boltzmann amplitudes at
    ``temperature_K``.

    The Hessian comes from ``calculator`` (usually the teacher) at each structure, which
    should be near a minimum. Each vibrational normal coordinate (mass-weighted) is drawn
    from a Gaussian of variance kT/ω²; the 5 or 6 rigid-body modes are skipped, and modes
    softer than ``min_frequency_cm`` (including imaginary ones) are treated as having that
    frequency, so soft torsions do not send atoms far away.
    """
    if temperature_K <= 0:
        raise InputError(f"temperature_K must be positive, got {temperature_K}")
    kT = units.kB * temperature_K
    # ω in ASE units (sqrt(eV/Å²/amu)) for a wavenumber in cm⁻¹.
    omega_min = min_frequency_cm * 2 * np.pi * units._c * 100 / units.s
    samples = []
    for atoms, rng in zip(structures, _rngs(seed, len(structures))):
        if atoms.pbc.any():
            raise InputError("normal_mode_sampling is for molecules; use rattle_strain for cells")
        masses = np.repeat(atoms.get_masses(), 3)
        inv_sqrt_m = 1.0 / np.sqrt(masses)
        mw_hessian = hessian(atoms, calculator) * np.outer(inv_sqrt_m, inv_sqrt_m)
        eigvals, eigvecs = np.linalg.eigh(mw_hessian)
        n_rigid = 5 if _is_linear(atoms) else 6
        order = np.argsort(np.abs(eigvals))
        vib = np.sort(order[n_rigid:]) if len(atoms) > 1 else order[:0]
        omegas = np.sqrt(np.clip(eigvals[vib], omega_min**2, None))
        modes = eigvecs[:, vib]
        for i in range(n_samples):
            sample = _tagged(
                atoms,
                "normal_modes",
                seed,
                temperature_K=temperature_K,
                min_frequency_cm=min_frequency_cm,
                index=i,
            )
            q = rng.normal(0.0, np.sqrt(kT) / omegas)
            sample.positions += (modes @ q * inv_sqrt_m).reshape(-1, 3)
            samples.append(sample)
    return samples


def _is_linear(atoms: Atoms, tol: float = 1e-3) -> bool:
    if len(atoms) < 3:
        return True
    centred = atoms.positions - atoms.positions.mean(axis=0)
    singular = np.linalg.svd(centred, compute_uv=False)
    return singular[1] < tol * max(singular[0], 1e-12)


def md_sampling(
    structures: list[Atoms],
    calculator: Calculator,
    n_frames: int,
    temperature_K: float = 500.0,
    every: int = 10,
    timestep_fs: float = 0.5,
    friction_per_fs: float = 0.01,
    equilibration_steps: int = 0,
    seed: int = 0,
) -> list[Atoms]:
    """Langevin MD with ``calculator`` (usually the teacher) at an elevated temperature,
    keeping every ``every``-th frame after ``equilibration_steps``.

    Velocities start from a Maxwell–Boltzmann distribution drawn with ``seed``; the Langevin
    noise is seeded too, so a rerun gives the same frames.

    A trajectory whose calculator gives up (a student driving MD outside what it learned
    can pull two atoms together until its evaluation refuses them) or whose positions stop
    being finite ends there: the frames it gave before are kept, the other structures go on,
    and a :class:`UserWarning` names each trajectory cut short and why.
    """
    from ase.md.langevin import Langevin
    from ase.md.velocitydistribution import Stationary, thermalize_momenta

    if every < 1 or n_frames < 1:
        raise InputError("md_sampling needs n_frames >= 1 and every >= 1")
    samples = []
    cut: list[str] = []
    for atoms, rng in zip(structures, _rngs(seed, len(structures))):
        work = atoms.copy()
        work.calc = calculator
        thermalize_momenta(work, temperature_K=temperature_K, rng=rng)
        Stationary(work)
        dyn = Langevin(
            work,
            timestep=timestep_fs * units.fs,
            temperature_K=temperature_K,
            friction=friction_per_fs / units.fs,
            fixcm=False,
            rng=rng,
        )
        work.get_forces()  # what the calculator refuses at the start is the input's fault
        name = str(atoms.info.get("name", atoms.get_chemical_formula()))
        kept = 0
        try:
            if equilibration_steps:
                dyn.run(equilibration_steps)
            for i in range(n_frames):
                dyn.run(every)
                if not np.isfinite(work.positions).all():
                    raise InputError("positions are no longer finite")
                sample = _tagged(
                    work,
                    "md",
                    seed,
                    temperature_K=temperature_K,
                    every=every,
                    timestep_fs=timestep_fs,
                    friction_per_fs=friction_per_fs,
                    step=equilibration_steps + (i + 1) * every,
                )
                samples.append(sample)
                kept += 1
        except InputError as error:
            cut.append(f"{name} after {kept} of {n_frames} frames ({error})")
    if cut:
        warnings.warn(
            f"md sampling at {temperature_K:g} K cut {len(cut)} of {len(structures)} "
            f"trajectories short where the calculator gave up: {'; '.join(cut)}",
            stacklevel=2,
        )
    return samples


def _bond_graph(atoms: Atoms, scale: float = 1.2) -> list[set[int]]:
    """Bonded neighbours of every atom: closer than ``scale`` × the sum of covalent radii."""
    from ase.data import covalent_radii

    radii = covalent_radii[atoms.numbers]
    distances = atoms.get_all_distances(mic=bool(atoms.pbc.any()))
    bonded = distances < scale * (radii[:, None] + radii[None, :])
    np.fill_diagonal(bonded, False)
    return [set(np.flatnonzero(row).tolist()) for row in bonded]


def _side(graph: list[set[int]], start: int, other: int) -> set[int]:
    """Atoms reached from ``start`` without crossing the bond ``start``–``other`` (``other``
    is among them only if the bond is in a ring)."""
    seen, stack = {start}, [start]
    while stack:
        k = stack.pop()
        for m in graph[k]:
            if not (k == start and m == other) and m not in seen:
                seen.add(m)
                stack.append(m)
    return seen


def rotatable_bonds(atoms: Atoms) -> list[tuple[int, int, set[int]]]:
    """Bonds ``(b, c)`` outside rings whose ends both have other neighbours, each with the
    atoms on ``c``'s side (the smaller side), which a rotation about the bond moves."""
    graph = _bond_graph(atoms)
    bonds = []
    for b in range(len(atoms)):
        for c in sorted(graph[b]):
            if c < b or len(graph[b]) < 2 or len(graph[c]) < 2:
                continue
            side_c = _side(graph, c, b)
            if b in side_c:  # in a ring
                continue
            side_b = _side(graph, b, c)
            if len(side_b) < len(side_c):
                b, c, side_c = c, b, side_b
            bonds.append((b, c, side_c))
    return bonds


def torsion_sampling(
    structures: list[Atoms],
    n_samples: int,
    rattle: float = 0.02,
    min_contact: float = 1.5,
    max_tries: int = 100,
    seed: int = 0,
) -> list[Atoms]:
    """Conformers with every rotatable bond turned by a random angle (uniform over 360°),
    then Gaussian displacements of ``rattle`` Å: the torsional space (a peptide's φ/ψ, side
    chains, methyl rotors) that short MD near one conformer does not reach.

    A draw in which two atoms that are neither bonded nor share a bonded neighbour come
    closer than ``min_contact`` × the sum of their covalent radii is drawn again (up to
    ``max_tries`` times; then the sample is skipped). Molecules without rotatable bonds give
    no samples.
    """
    from ase.data import covalent_radii

    if n_samples < 0 or rattle < 0 or max_tries < 1:
        raise InputError("torsion_sampling needs n_samples >= 0, rattle >= 0 and max_tries >= 1")
    samples = []
    for atoms, rng in zip(structures, _rngs(seed, len(structures))):
        if atoms.pbc.any():
            raise InputError("torsion_sampling is for molecules; use md or rattle_strain for cells")
        bonds = rotatable_bonds(atoms)
        if not bonds:
            continue
        graph = _bond_graph(atoms)
        near = np.eye(len(atoms), dtype=bool)
        for k, neighbours in enumerate(graph):
            for m in neighbours:
                near[k, m] = True
                for n in graph[m]:
                    near[k, n] = True
        radii = covalent_radii[atoms.numbers]
        contact = min_contact * (radii[:, None] + radii[None, :])
        for i in range(n_samples):
            for _ in range(max_tries):
                positions = atoms.positions.copy()
                for b, c, side in bonds:
                    axis = positions[c] - positions[b]
                    axis /= np.linalg.norm(axis)
                    angle = rng.uniform(-np.pi, np.pi)
                    moved = np.array(sorted(side - {c}), dtype=int)
                    if moved.size == 0:
                        continue
                    r = positions[moved] - positions[c]
                    cos, sin = np.cos(angle), np.sin(angle)
                    # Rodrigues' rotation of r about the unit axis.
                    positions[moved] = positions[c] + (
                        r * cos + np.cross(axis, r) * sin + np.outer(r @ axis, axis) * (1 - cos)
                    )
                distances = np.linalg.norm(positions[:, None] - positions[None, :], axis=2)
                if not np.any((distances < contact) & ~near):
                    break
            else:
                continue
            sample = _tagged(atoms, "torsions", seed, rattle_A=rattle, index=i)
            sample.positions = positions + rng.normal(0.0, rattle, size=positions.shape)
            samples.append(sample)
    return samples


def _half_shift(atoms: Atoms, i: int, j: int, factor: float, mic: bool) -> np.ndarray:
    """Half the move, along the pair, that brings atoms ``i`` and ``j`` to ``factor`` × the
    sum of their covalent radii: ``i`` takes ``+shift``, ``j`` ``-shift``."""
    from ase.data import covalent_radii

    target = factor * (covalent_radii[atoms.numbers[i]] + covalent_radii[atoms.numbers[j]])
    vector = atoms.get_distance(i, j, mic=mic, vector=True)
    length = float(np.linalg.norm(vector))
    return 0.5 * (length - target) * vector / length


def compress_bonds(
    structures: list[Atoms],
    n_samples: int,
    low: float = 0.7,
    high: float = 0.92,
    rattle: float = 0.02,
    seed: int = 0,
) -> list[Atoms]:
    """Close contacts: in each sample one random bond is squeezed to a length drawn
    uniformly between ``low`` and ``high`` × the sum of its atoms' covalent radii (both atoms
    move along the bond, half each), then every atom is displaced by ``rattle`` Å (Gaussian).

    MD rarely visits these distances, but a student with no data there is free to attract
    where the ZBL core hands over (``ZBLRepulsion``, 0.4-0.7 × the radii sum): these frames,
    labelled by the teacher, pin the learned part to the repulsive wall. Keep ``low`` where
    the teacher's forces stay below labeling's ``max_force`` (about 0.7 for organic bonds
    with SevenNet-0 and 50 eV/Å). Periodic cells work too (bonds across the boundary
    included). A structure without bonds gives no samples.

    Examples
    --------
    >>> from ase.build import molecule
    >>> len(compress_bonds([molecule("H2O")], n_samples=3))
    3
    """

    if not 0 < low <= high or n_samples < 0 or rattle < 0:
        raise InputError(
            f"compress_bonds needs 0 < low <= high, n_samples >= 0 and rattle >= 0; got "
            f"low={low}, high={high}, n_samples={n_samples}, rattle={rattle}"
        )
    samples = []
    for atoms, rng in zip(structures, _rngs(seed, len(structures))):
        graph = _bond_graph(atoms)
        bonds = [(i, j) for i, neighbours in enumerate(graph) for j in sorted(neighbours) if i < j]
        if not bonds:
            continue
        mic = bool(atoms.pbc.any())
        for n in range(n_samples):
            i, j = bonds[rng.integers(len(bonds))]
            factor = rng.uniform(low, high)
            sample = _tagged(
                atoms, "compress", seed, low=low, high=high, rattle_A=rattle, index=n,
                pair=[int(i), int(j)], factor=float(factor),
            )  # fmt: skip
            shift = _half_shift(atoms, i, j, factor, mic)
            sample.positions[i] += shift
            sample.positions[j] -= shift
            sample.positions += rng.normal(0.0, rattle, size=sample.positions.shape)
            samples.append(sample)
    return samples


def compress_contacts(
    structures: list[Atoms],
    n_samples: int,
    low: float = 0.6,
    high: float = 0.9,
    within: float = 3.5,
    rattle: float = 0.02,
    seed: int = 0,
) -> list[Atoms]:
    """Close non-bonded contacts: in each sample two atoms that are not bonded to each other
    (and no further apart than ``within`` Å) are brought to a distance drawn uniformly
    between ``low`` and ``high`` × the sum of their covalent radii, then every atom is
    displaced by ``rattle`` Å (Gaussian). Atoms of two different molecules move with their
    whole molecule (rigidly, half the way each), so no bond changes; two atoms of one molecule
    move alone, half the way each.

    :func:`compress_bonds` squeezes bonds; this squeezes the pairs MD brings together
    without a bond between them (hydrogens of two waters, the two ends of a chain), where
    students have grown energy wells the teacher does not have
    (``benchmarks/close_pairs.py``). Periodic cells work too (minimum image). A structure
    with no such pair gives no samples.

    Examples
    --------
    >>> from mlff_distiller.data import water_box
    >>> len(compress_contacts([water_box(32)], n_samples=3))
    3
    """
    from .structures import molecule_ids

    if not 0 < low <= high or n_samples < 0 or rattle < 0 or within <= 0:
        raise InputError(
            f"compress_contacts needs 0 < low <= high, n_samples >= 0, rattle >= 0 and "
            f"within > 0; got low={low}, high={high}, n_samples={n_samples}, "
            f"rattle={rattle}, within={within}"
        )
    samples = []
    for atoms, rng in zip(structures, _rngs(seed, len(structures))):
        if len(atoms) < 2:
            continue
        graph = _bond_graph(atoms)
        bonds = [(i, j) for i, neighbours in enumerate(graph) for j in neighbours if i < j]
        molecule = molecule_ids(len(atoms), bonds)
        mic = bool(atoms.pbc.any())
        distances = atoms.get_all_distances(mic=mic)
        pairs = [
            (i, j)
            for i in range(len(atoms))
            for j in range(i + 1, len(atoms))
            if j not in graph[i] and distances[i, j] <= within
        ]
        if not pairs:
            continue
        for n in range(n_samples):
            i, j = pairs[rng.integers(len(pairs))]
            factor = rng.uniform(low, high)
            sample = _tagged(
                atoms, "contacts", seed, low=low, high=high, within_A=within, rattle_A=rattle,
                index=n, pair=[int(i), int(j)], factor=float(factor),
            )  # fmt: skip
            shift = _half_shift(atoms, i, j, factor, mic)
            if molecule[i] != molecule[j]:
                moved_i = [k for k, m in enumerate(molecule) if m == molecule[i]]
                moved_j = [k for k, m in enumerate(molecule) if m == molecule[j]]
            else:
                moved_i, moved_j = [i], [j]
            sample.positions[moved_i] += shift
            sample.positions[moved_j] -= shift
            sample.positions += rng.normal(0.0, rattle, size=sample.positions.shape)
            samples.append(sample)
    return samples


def whole_molecules(atoms: Atoms) -> tuple[np.ndarray, list[int], np.ndarray]:
    """Positions with every molecule made whole across the periodic boundary (each atom moved
    by lattice vectors so that every bond is its minimum image, walking out from the
    molecule's first atom), the molecule id per atom (:func:`molecule_ids` of the bonds,
    periodic images included), and per atom whether its molecule is bonded to its own
    periodic image (a covalent network such as a crystal: no finite molecule to make whole)."""
    from .structures import bond_images, covalent_bonds, molecule_ids

    images = bond_images(atoms)
    first, second, vectors = images
    bonds = covalent_bonds(atoms, images=images)
    molecule = molecule_ids(len(atoms), bonds)
    neighbours: list[list[int]] = [[] for _ in range(len(atoms))]
    for i, j in bonds:
        neighbours[i].append(j)
        neighbours[j].append(i)
    positions = atoms.positions.copy()
    cell = atoms.cell.array
    inverse = np.linalg.inv(cell)
    placed = np.zeros(len(atoms), dtype=bool)
    for start in range(len(atoms)):
        if placed[start]:
            continue
        placed[start] = True
        queue = [start]
        while queue:
            i = queue.pop()
            for j in neighbours[i]:
                if placed[j]:
                    continue
                vector = positions[j] - positions[i]
                vector -= np.round(vector @ inverse) @ cell
                positions[j] = positions[i] + vector
                placed[j] = True
                queue.append(j)
    # A bond image that does not join the made-whole positions closes a loop through the
    # boundary, so its molecule repeats without end.
    gaps = np.linalg.norm(positions[second] - positions[first] - vectors, axis=1)
    ids = np.asarray(molecule)
    endless = np.isin(ids, ids[first[gaps > 1e-6]])
    return positions, molecule, endless


def squeeze_anchors(atoms: Atoms) -> tuple[np.ndarray, np.ndarray]:
    """What :func:`squeeze_cells` moves with the cell: the positions with every molecule
    made whole (:func:`whole_molecules`) and, per atom, the point that scales with the cell
    (its molecule's centre; the atom itself in a network bonded to its own periodic image).
    At an edge factor ``f`` the atoms sit at ``positions + (f - 1) * anchors``."""
    positions, molecule, endless = whole_molecules(atoms)
    ids = np.asarray(molecule)
    centres = np.zeros((ids.max() + 1, 3))
    np.add.at(centres, ids, positions)
    centres /= np.bincount(ids, minlength=len(centres))[:, None].clip(min=1)
    anchors = centres[ids]
    anchors[endless] = positions[endless]  # a network moves with the cell, atom by atom
    return positions, anchors


def squeeze_to(atoms: Atoms, positions: np.ndarray, anchors: np.ndarray, factor: float) -> None:
    """Scale ``atoms``' cell (in place) by the edge factor ``factor`` and place its atoms at
    ``positions + (factor - 1) * anchors`` (:func:`squeeze_anchors` of the unsqueezed
    structure); not wrapped."""
    atoms.set_cell(atoms.cell.array * factor, scale_atoms=False)
    atoms.positions = positions + (factor - 1.0) * anchors


def squeeze_cells(
    structures: list[Atoms],
    n_samples: int,
    low: float = 0.85,
    high: float = 1.0,
    rattle: float = 0.03,
    seed: int = 0,
) -> list[Atoms]:
    """Periodic cells compressed as a barostat compresses them: in each sample the cell is
    scaled isotropically by an edge factor drawn uniformly between ``low`` and ``high``,
    every molecule moves rigidly with its centre (no bond changes length), then every atom is
    displaced by ``rattle`` Å (Gaussian). A factor above 1 expands.

    :func:`rattle_strain` scales atoms with the cell (a few per cent: bonds stretch with
    it); this is what NPT at high pressure visits: molecules pressed together, each intact.
    Students trained without it have turned attractive under compression (the ``standard``
    of 2026-12-06 gave -216 GPa for 32 waters at 0.85 of their edge, where SevenNet-0 gives
    +25 GPa) and blown up under a 50 kbar barostat. Atoms bonded to no other atom move with
    the cell like a molecule of one; a network bonded to its own periodic image (a covalent
    crystal) has no centre to move and is scaled with the cell, atom by atom.

    Examples
    --------
    >>> from mlff_distiller.data import water_box
    >>> len(squeeze_cells([water_box(32)], n_samples=2))
    2
    """
    if not 0 < low <= high or n_samples < 0 or rattle < 0:
        raise InputError(
            f"squeeze_cells needs 0 < low <= high, n_samples >= 0 and rattle >= 0; got "
            f"low={low}, high={high}, n_samples={n_samples}, rattle={rattle}"
        )
    samples = []
    for atoms, rng in zip(structures, _rngs(seed, len(structures))):
        _require_periodic(atoms, "squeeze_cells", "compress or contacts")
        positions, anchors = squeeze_anchors(atoms)
        for n in range(n_samples):
            factor = float(rng.uniform(low, high))
            sample = _tagged(
                atoms, "squeeze", seed, low=low, high=high, rattle_A=rattle, index=n,
                factor=factor,
            )  # fmt: skip
            squeeze_to(sample, positions, anchors, factor)
            sample.positions += rng.normal(0.0, rattle, size=sample.positions.shape)
            sample.wrap()
            samples.append(sample)
    return samples
