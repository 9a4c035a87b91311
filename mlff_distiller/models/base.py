"""What every student model is, whatever its architecture.

A student maps edge vectors (``[E, 3]``, Å), ``edge_index`` (``[2, E]``: centre, neighbour)
and species indices (``[N]``) to per-atom energies (``[N]``, eV) in ``forward``, and gives
those energies with the gradient of their sum with respect to every edge vector in
``energies_and_gradient``: every engine's forces and virial come from that gradient
(``export.module.ExportedStudent``). Here it is autograd through ``forward``; an
architecture may write its chain rule out (``MomentStudent`` does) as long as it agrees.
"""

from __future__ import annotations

import torch
from torch import nn


class Student(nn.Module):
    """Base of the student models (and of anything exported as one)."""

    @torch.jit.export
    def energies_and_gradient(
        self, vectors: torch.Tensor, edge_index: torch.Tensor, species: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """:meth:`forward`'s per-atom energies and the gradient of their sum with respect to
        every edge vector (``[E, 3]``, eV/Å), by autograd through :meth:`forward`."""
        vectors = vectors.detach().requires_grad_(True)
        energies = self.forward(vectors, edge_index, species)
        grads = torch.autograd.grad([energies.sum()], [vectors], allow_unused=True)
        gradient = grads[0]
        if gradient is None:
            gradient = torch.zeros_like(vectors)
        return energies.detach(), gradient

    @torch.jit.export
    def all_pairs_energies_and_gradient(
        self, vectors: torch.Tensor, species: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """:meth:`energies_and_gradient` of a structure of ``N`` atoms given as every
        ordered pair: row ``i N + j`` of ``vectors [N * N, 3]`` is ``r_j − r_i`` (Å); the
        rows ``i = j`` and pairs beyond the cutoff hold vectors at least the cutoff long.
        The energies ``[N]`` and the gradient ``[N * N, 3]`` (zero in the rows that are no
        edge). Here the edges within the cutoff are picked out and passed on; an
        architecture may work on the pairs as they are (``MomentStudent`` does)."""
        n_atoms = species.shape[0]
        cutoff = float(self.cutoff)
        lengths = (vectors.detach() * vectors.detach()).sum(dim=1)
        rows = (lengths < cutoff * cutoff).nonzero().squeeze(1)
        edge_index = torch.stack(
            [torch.div(rows, n_atoms, rounding_mode="floor"), torch.remainder(rows, n_atoms)]
        )
        energies, gradient = self.energies_and_gradient(
            vectors.index_select(0, rows), edge_index, species
        )
        return energies, torch.zeros_like(vectors).index_copy(0, rows, gradient)
