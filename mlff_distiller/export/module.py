"""The exported student: one TorchScript module that finds its own neighbours.

Inputs are what every engine has: positions (Å), atomic numbers, the cell (Å, rows are cell
vectors) and periodic flags. The energy is differentiable with respect to positions and
cell, so forces (−∂E/∂r) and stress (strain derivative) come from autograd wherever the
module runs (ASE, OpenMM's TorchForce, LAMMPS).

>>> module = torch.jit.load("model.pt")                                    # doctest: +SKIP
>>> energy = module(positions, numbers, cell, pbc)                         # doctest: +SKIP
"""

from __future__ import annotations

import torch
from torch import nn


class ExportedStudent(nn.Module):
    """A trained :class:`~mlff_distiller.models.MomentStudent` plus its neighbour search."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model
        numbers = [int(z) for z in model.atomic_numbers.tolist()]
        lookup = torch.full((119,), -1, dtype=torch.long)
        for index, z in enumerate(numbers):
            lookup[z] = index
        self.register_buffer("species_lookup", lookup)
        self.register_buffer("atomic_numbers", model.atomic_numbers.clone())
        self.cutoff = float(model.cutoff)

    def species(self, numbers: torch.Tensor) -> torch.Tensor:
        """Model species index of every atom; an element the model does not know is an error."""
        inside = (numbers >= 0) & (numbers < 119)
        if not bool(inside.all()):
            raise ValueError("atomic numbers must lie between 1 and 118")
        species = self.species_lookup[numbers]
        if bool((species < 0).any()):
            unknown: list[int] = torch.unique(numbers[species < 0]).tolist()
            known: list[int] = self.atomic_numbers.tolist()
            raise ValueError(
                "atomic numbers "
                + str(unknown)
                + " are not in this model (it knows atomic numbers "
                + str(known)
                + ")"
            )
        return species

    @torch.jit.export
    def neighbours(
        self, positions: torch.Tensor, cell: torch.Tensor, pbc: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Every pair (both directions) within the cutoff, over all periodic images.

        Returns ``edge_index [2, E]`` and integer ``shifts [E, 3]`` such that the edge vector
        is ``r_j − r_i + shifts @ cell``. All pairs are tested against each needed image, so
        the cost grows as N² × images: fine for the hundreds of atoms typical of molecules
        and small boxes.
        """
        n = positions.shape[0]
        dtype = positions.dtype
        pos = positions.detach()
        periodic = bool(pbc.any())
        if periodic:
            cell_d = cell.detach()
            inverse = torch.linalg.inv(cell_d)
            # Wrap into the cell along periodic directions (w: whole cells moved).
            fractional = pos @ inverse
            wrap = torch.where(pbc, torch.floor(fractional), torch.zeros_like(fractional))
            pos = pos - wrap @ cell_d
            # Images needed per direction: cutoff over the spacing of lattice planes.
            spacing = 1.0 / torch.linalg.norm(inverse, dim=0)
            reps = torch.where(pbc, torch.ceil(self.cutoff / spacing), torch.zeros_like(spacing))
            r0, r1, r2 = int(reps[0]), int(reps[1]), int(reps[2])
            grid = torch.stack(
                torch.meshgrid(
                    torch.arange(-r0, r0 + 1, dtype=dtype),
                    torch.arange(-r1, r1 + 1, dtype=dtype),
                    torch.arange(-r2, r2 + 1, dtype=dtype),
                    indexing="ij",
                ),
                dim=-1,
            ).reshape(-1, 3)
        else:
            wrap = torch.zeros_like(pos)
            grid = torch.zeros(1, 3, dtype=dtype)
            cell_d = torch.zeros(3, 3, dtype=dtype)
        cutoff2 = self.cutoff * self.cutoff
        centres: list[torch.Tensor] = []
        others: list[torch.Tensor] = []
        images: list[torch.Tensor] = []
        eye = torch.eye(n, dtype=torch.bool)
        for k in range(grid.shape[0]):
            shift = grid[k]
            delta = pos.unsqueeze(0) + (shift @ cell_d) - pos.unsqueeze(1)  # [i, j, 3]
            close = (delta * delta).sum(dim=2) < cutoff2
            if bool((shift == 0).all()):
                close = close & ~eye
            pair = close.nonzero()
            centres.append(pair[:, 0])
            others.append(pair[:, 1])
            images.append(shift.expand(pair.shape[0], 3))
        i = torch.cat(centres)
        j = torch.cat(others)
        shifts = torch.cat(images)
        # Back to the caller's unwrapped positions: r_j − r_i + (S − w_j + w_i) @ cell.
        shifts = shifts - wrap[j] + wrap[i]
        return torch.stack([i, j]), shifts

    @torch.jit.export
    def atomic_energies(
        self, positions: torch.Tensor, numbers: torch.Tensor, cell: torch.Tensor, pbc: torch.Tensor
    ) -> torch.Tensor:
        """Per-atom energies (eV), differentiable with respect to positions and cell."""
        if positions.shape[0] == 0:
            raise ValueError("no atoms")
        species = self.species(numbers)
        edge_index, shifts = self.neighbours(positions, cell, pbc)
        vectors = (
            positions[edge_index[1]] - positions[edge_index[0]] + shifts.to(positions.dtype) @ cell
        )
        return self.model(vectors, edge_index, species)

    def forward(
        self, positions: torch.Tensor, numbers: torch.Tensor, cell: torch.Tensor, pbc: torch.Tensor
    ) -> torch.Tensor:
        """Total energy (eV) of one structure: positions ``[N, 3]`` in Å, atomic numbers
        ``[N]``, cell ``[3, 3]`` in Å (rows are cell vectors; ignored where ``pbc`` is false)
        and ``pbc [3]`` booleans."""
        return self.atomic_energies(positions, numbers, cell, pbc).sum()

    @torch.jit.export
    def energies_from_edges(
        self, vectors: torch.Tensor, edge_index: torch.Tensor, species: torch.Tensor
    ) -> torch.Tensor:
        """Per-atom energies from a neighbour list the engine built (LAMMPS): edge vectors
        ``r_j − r_i`` (Å), ``edge_index [2, E]`` and model species indices."""
        return self.model(vectors, edge_index, species)
