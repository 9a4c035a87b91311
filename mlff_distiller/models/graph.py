"""Neighbour lists and batches of structures, and energy → forces/stress by autograd.

A batch is a dict of tensors, the concatenation of its structures' graphs:

``positions [N,3]``, ``species [N]`` (model indices), ``batch [N]`` (structure of each atom),
``edge_index [2,E]`` (centre, neighbour; both directions), ``shifts [E,3]`` (integer cell
offsets of the neighbour image), ``cell [B,3,3]``, ``n_atoms [B]``, ``periodic [B]``.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from ase import Atoms
from ase.neighborlist import neighbor_list

from ..errors import InputError

#: Two atoms closer than this (Å) are an error naming both (atoms on one site, coordinates
#: in the wrong units), never an energy: nothing physical sits that close, and at zero
#: distance a force has no direction. Above it the ZBL core keeps pairs repulsive.
MIN_DISTANCE = 0.1
#: Periodic cells whose lattice planes are closer than this (Å) are an error: no crystal's
#: cell is that thin, and the images within a cutoff would number millions (a 0.1 Å cell
#: once took 77 s per call). It is almost always a cell given in nm or in fractions.
MIN_CELL_SPACING = 0.5


def species_indices(atoms: Atoms, atomic_numbers: list[int]) -> np.ndarray:
    """Model species index of every atom; an unknown element is a clear error."""
    lookup = {z: k for k, z in enumerate(atomic_numbers)}
    try:
        return np.array([lookup[int(z)] for z in atoms.numbers], dtype=np.int64)
    except KeyError:
        from ase.data import chemical_symbols

        unknown = sorted({int(z) for z in atoms.numbers} - set(lookup))
        known = ", ".join(chemical_symbols[z] for z in atomic_numbers)
        raise InputError(
            f"element(s) {', '.join(chemical_symbols[z] for z in unknown)} not in the model "
            f"(it knows {known}); use a model trained on these elements"
        ) from None


def neighbours(atoms: Atoms, cutoff: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Centre, neighbour and integer image shift of every pair within ``cutoff`` (both
    directions, all periodic images, any cell size).

    matscipy's C neighbour list (tens of times faster than ASE's pure-numpy one on small
    systems) for molecules and fully periodic cells; ASE's for mixed boundary conditions.
    """
    from matscipy.neighbours import neighbour_list

    if atoms.pbc.all():
        return neighbour_list("ijS", atoms, cutoff)
    if not atoms.pbc.any():
        # matscipy needs a cell: any box that holds the molecule with room to spare.
        lower = atoms.positions.min(axis=0)
        extent = atoms.positions.max(axis=0) - lower
        box = Atoms(
            numbers=atoms.numbers,
            positions=atoms.positions - lower + cutoff,
            cell=np.diag(extent + 2 * cutoff + 1.0),
            pbc=False,
        )
        return neighbour_list("ijS", box, cutoff)
    return neighbor_list("ijS", atoms, cutoff)


def check_finite(positions: np.ndarray, cell: np.ndarray, pbc: np.ndarray) -> None:
    """Refuse NaN or infinite positions (naming the first such atom) and, where periodic, cell
    entries: a student would otherwise treat the atom as isolated and return finite numbers."""
    bad = np.flatnonzero(~np.isfinite(positions).all(axis=1))
    if bad.size:
        raise InputError(
            f"atom {bad[0]} has a non-finite position {positions[bad[0]].tolist()} (NaN or inf); "
            "the structure is broken or the simulation blew up"
        )
    if np.any(pbc) and not np.isfinite(cell).all():
        raise InputError(f"the cell {cell.tolist()} has non-finite entries (NaN or inf)")


def check_cell(cell: np.ndarray, pbc: np.ndarray) -> None:
    """Refuse a periodic cell with lattice planes closer than :data:`MIN_CELL_SPACING`."""
    pbc = np.asarray(pbc, dtype=bool)
    if not pbc.any() or abs(np.linalg.det(cell)) < 1e-9:
        return  # flat cells have their own error
    spacing = 1.0 / np.linalg.norm(np.linalg.inv(cell), axis=0)
    thin = [k for k in range(3) if pbc[k] and spacing[k] < MIN_CELL_SPACING]
    if thin:
        k = thin[0]
        raise InputError(cell_spacing_message(k, float(spacing[k])))


def cell_spacing_message(axis: int, spacing: float) -> str:
    """The one-line error for a periodic cell too thin along lattice vector ``axis``."""
    return (
        f"the periodic cell's lattice planes along cell vector {axis} are {spacing:.3f} Å "
        f"apart (less than {MIN_CELL_SPACING:.3f} Å): check that the cell is in Å"
    )


def check_distances(distances: np.ndarray, i: np.ndarray, j: np.ndarray) -> None:
    """Refuse two atoms closer than :data:`MIN_DISTANCE` (naming both)."""
    if distances.size == 0:
        return
    k = int(np.argmin(distances))
    if distances[k] < MIN_DISTANCE:
        raise InputError(close_contact_message(int(i[k]), int(j[k]), float(distances[k])))


def close_contact_message(i: int, j: int, distance: float) -> str:
    """The one-line error for two atoms (or an atom and its own periodic image) too close."""
    pair = f"atom {i} and its own periodic image" if i == j else f"atoms {i} and {j}"
    return (
        f"{pair} are {distance:.3f} Å apart, closer than {MIN_DISTANCE:.3f} Å: remove the "
        "duplicated atom (or enlarge the cell) and check that positions are in Å"
    )


def build_graph(atoms: Atoms, cutoff: float, atomic_numbers: list[int]) -> dict[str, np.ndarray]:
    """The neighbour graph of one structure (all images within ``cutoff``, any cell size).

    Non-finite positions or cells and atoms closer than :data:`MIN_DISTANCE` are errors."""
    if len(atoms) == 0:
        raise InputError("the structure has no atoms")
    check_finite(atoms.positions, atoms.cell.array, atoms.pbc)
    if atoms.pbc.any() and atoms.cell.rank < 3:
        raise InputError("a periodic structure needs a 3-dimensional cell")
    check_cell(atoms.cell.array, atoms.pbc)
    i, j, shifts = neighbours(atoms, float(cutoff))
    vectors = atoms.positions[j] - atoms.positions[i] + shifts @ atoms.cell.array
    check_distances(np.linalg.norm(vectors, axis=1), i, j)
    return {
        "positions": atoms.positions.astype(np.float64),
        "species": species_indices(atoms, atomic_numbers),
        "edge_index": np.stack([i, j]).astype(np.int64),
        "shifts": shifts.astype(np.float64),
        "cell": atoms.cell.array.astype(np.float64),
        "periodic": bool(atoms.pbc.all()),  # stress is defined for 3D-periodic cells only
    }


def pair_floors(
    graphs: list[dict[str, np.ndarray]], atomic_numbers: list[int], cutoff: float
) -> dict[str, float]:
    """Per element pair (``"A-B"``), the shortest distance between two such atoms in
    ``graphs`` (from :func:`build_graph` with ``cutoff``; Å, rounded down to 0.001 Å): the
    ``pair_floors`` of a student trained on them. Pairs never within ``cutoff`` get the
    cutoff: the learned part never sees them (nothing trained their weights)."""
    from .radial import pair_name

    n = len(atomic_numbers)
    shortest = np.full((n, n), np.inf)
    for graph in graphs:
        i, j = graph["edge_index"]
        vectors = graph["positions"][j] - graph["positions"][i] + graph["shifts"] @ graph["cell"]
        species = graph["species"]
        np.minimum.at(shortest, (species[i], species[j]), np.linalg.norm(vectors, axis=1))
    shortest = np.minimum(np.minimum(shortest, shortest.T), cutoff)
    return {
        pair_name(atomic_numbers[a], atomic_numbers[b]): math.floor(shortest[a, b] * 1e3) / 1e3
        for a in range(n)
        for b in range(a, n)
    }


def collate(graphs: list[dict[str, np.ndarray]], dtype: torch.dtype) -> dict[str, torch.Tensor]:
    """Concatenate graphs into one batch (edge indices offset by the atoms before them)."""
    offsets = np.cumsum([0] + [len(g["species"]) for g in graphs])
    out = {
        "positions": torch.tensor(np.concatenate([g["positions"] for g in graphs]), dtype=dtype),
        "species": torch.from_numpy(np.concatenate([g["species"] for g in graphs])),
        "batch": torch.from_numpy(
            np.concatenate([np.full(len(g["species"]), k) for k, g in enumerate(graphs)])
        ).long(),
        "edge_index": torch.from_numpy(
            np.concatenate([g["edge_index"] + offsets[k] for k, g in enumerate(graphs)], axis=1)
        ),
        "shifts": torch.tensor(np.concatenate([g["shifts"] for g in graphs]), dtype=dtype),
        "cell": torch.tensor(np.stack([g["cell"] for g in graphs]), dtype=dtype),
        "n_atoms": torch.tensor([len(g["species"]) for g in graphs], dtype=torch.long),
        "periodic": torch.tensor([g["periodic"] for g in graphs], dtype=torch.bool),
    }
    return out


def edge_vectors(batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """``r_j − r_i`` plus the image offset of every edge of a batch (Å, ``[E, 3]``)."""
    edge_index = batch["edge_index"]
    cell = batch["cell"][batch["batch"][edge_index[0]]]
    offsets = torch.bmm(batch["shifts"].unsqueeze(1), cell).squeeze(1)
    positions = batch["positions"]
    return positions[edge_index[1]] - positions[edge_index[0]] + offsets


def model_dtype(model: torch.nn.Module) -> torch.dtype:
    """The floating dtype of a model's weights (float32 if it has none)."""
    for tensor in [*model.parameters(), *model.buffers()]:
        if tensor.is_floating_point():
            return tensor.dtype
    return torch.float32


def evaluate(
    model: torch.nn.Module,
    batch: dict[str, torch.Tensor],
    compute_stress: bool = False,
    create_graph: bool = False,
) -> dict[str, torch.Tensor]:
    """Energies (per structure and per atom), forces and, if asked, stress of a batch.

    Forces are ``−∂E/∂r``. Stress is ``(1/V) ∂E/∂ε`` under a homogeneous strain ``ε``
    applied to positions and cell together (ASE's sign convention), set only for periodic
    structures (NaN elsewhere).

    A model whose ``energies_and_gradient`` is written out in differentiable operations
    (``gradient_written_out``: :class:`~.moment.MomentStudent`) gives forces and stress
    from it, as the engines do; with ``create_graph`` its graph reaches the weights, so a
    loss on forces is differentiated once instead of through a double backward (the same
    weight gradients; a training step about 1.3× faster). Other models go through
    autograd of ``forward``.
    """
    if bool(getattr(model, "gradient_written_out", False)):
        with torch.set_grad_enabled(create_graph):
            return _evaluate_written_out(model, batch, compute_stress)
    positions = batch["positions"]
    cell = batch["cell"]
    n_graphs = cell.shape[0]
    atom_batch = batch["batch"]
    edge_index = batch["edge_index"]
    positions = positions.detach().requires_grad_(True)
    strain = torch.zeros(n_graphs, 3, 3, dtype=positions.dtype, device=positions.device)
    if compute_stress:
        strain.requires_grad_(True)
    deformation = torch.eye(3, dtype=positions.dtype, device=positions.device) + strain
    strained_pos = torch.bmm(positions.unsqueeze(1), deformation[atom_batch]).squeeze(1)
    strained_cell = torch.bmm(cell, deformation)
    edge_batch = atom_batch[edge_index[0]]
    offsets = torch.bmm(batch["shifts"].unsqueeze(1), strained_cell[edge_batch]).squeeze(1)
    vectors = strained_pos[edge_index[1]] - strained_pos[edge_index[0]] + offsets

    # Vectors are formed in the batch's precision, then cast to the model's: a float64
    # batch keeps far-from-origin coordinates exact for a float32 model.
    atomic = model(vectors.to(model_dtype(model)), edge_index, batch["species"])
    atomic = atomic.to(positions.dtype)
    energy = torch.zeros(n_graphs, dtype=atomic.dtype, device=atomic.device)
    energy = energy.index_add(0, atom_batch, atomic)
    inputs = [positions, strain] if compute_stress else [positions]
    grads = torch.autograd.grad(energy.sum(), inputs, create_graph=create_graph, allow_unused=True)
    forces = -grads[0] if grads[0] is not None else torch.zeros_like(positions)
    out = {"energy": energy, "atomic_energies": atomic, "forces": forces}
    if compute_stress:
        virial = grads[1] if grads[1] is not None else torch.zeros_like(strain)
        out["stress"] = _stress(virial, cell, batch["periodic"])
    return out


def _evaluate_written_out(
    model: torch.nn.Module, batch: dict[str, torch.Tensor], compute_stress: bool
) -> dict[str, torch.Tensor]:
    """:func:`evaluate` through the model's ``energies_and_gradient``: forces are the
    per-edge gradients summed on both atoms of each edge, the virial ``Σ_e v_eᵀ g_e`` of
    each structure."""
    positions = batch["positions"]
    cell = batch["cell"]
    n_graphs = cell.shape[0]
    atom_batch = batch["batch"]
    edge_index = batch["edge_index"]
    vectors = edge_vectors(batch)
    atomic, gradient = model.energies_and_gradient(
        vectors.to(model_dtype(model)), edge_index, batch["species"]
    )
    atomic = atomic.to(positions.dtype)
    gradient = gradient.to(positions.dtype)
    energy = torch.zeros(n_graphs, dtype=atomic.dtype, device=atomic.device)
    energy = energy.index_add(0, atom_batch, atomic)
    forces = edge_forces(gradient, edge_index, positions)
    out = {"energy": energy, "atomic_energies": atomic, "forces": forces}
    if compute_stress:
        edge_batch = atom_batch[edge_index[0]]
        virial = torch.zeros(n_graphs, 3, 3, dtype=positions.dtype, device=positions.device)
        virial = virial.index_add(0, edge_batch, vectors.unsqueeze(2) * gradient.unsqueeze(1))
        out["stress"] = _stress(virial, cell, batch["periodic"])
    return out


def edge_forces(
    gradient: torch.Tensor, edge_index: torch.Tensor, positions: torch.Tensor
) -> torch.Tensor:
    """Forces ``[N, 3]`` (like ``positions``) from the energy's gradient with respect to each
    edge vector ``r_j − r_i`` (+ its image offset): each edge's gradient pulls on its
    centre ``i`` and pushes its neighbour ``j``. Scriptable (the exported module uses it)."""
    forces = torch.zeros_like(positions).index_add(0, edge_index[0], gradient)
    return forces.index_add(0, edge_index[1], -gradient)


def _stress(virial: torch.Tensor, cell: torch.Tensor, periodic: torch.Tensor) -> torch.Tensor:
    """Per structure, ``virial / volume``; NaN for a structure that is not periodic."""
    stress = virial / torch.linalg.det(cell).abs().clamp(min=1e-12).view(-1, 1, 1)
    return torch.where(periodic.view(-1, 1, 1), stress, torch.full_like(stress, float("nan")))
