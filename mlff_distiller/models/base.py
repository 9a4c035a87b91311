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

from .segments import proxy_graph


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
    def padded_energies_and_gradient(
        self,
        vectors: torch.Tensor,
        species: torch.Tensor,
        neighbour_species: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """:meth:`energies_and_gradient` of ``N`` atoms whose edges come as ``W`` rows per
        atom: row ``i W + k`` of ``vectors [N * W, 3]`` is ``r_j − r_i`` (Å) for a neighbour
        ``j`` of species ``neighbour_species[i W + k]``, or a vector at least the cutoff
        long, which adds exactly nothing (padding; any species). A small molecule given as
        every ordered pair is the case ``W = N`` (``neighbour_species`` may then be left
        out: row ``i N + j``'s is ``species[j]``); LAMMPS hands a rank's few atoms over so.
        The energies ``[N]`` and the gradient ``[N * W, 3]`` (zero in the padding rows).

        Here the rows within the cutoff are picked out and passed on, each pointing at one
        proxy node per species (the student is strictly local: an atom's energy depends on
        its neighbours' species only); an architecture may work on the rows as they are
        (``MomentStudent`` does)."""
        n_atoms = species.shape[0]
        width = vectors.shape[0] // max(n_atoms, 1)
        if neighbour_species is None:
            neighbour_species = species.repeat(width)
        cutoff = float(self.cutoff)
        lengths = (vectors.detach() * vectors.detach()).sum(dim=1)
        rows = (lengths < cutoff * cutoff).nonzero().squeeze(1)
        graph_species, edge_index = proxy_graph(
            torch.div(rows, width, rounding_mode="floor"),
            species,
            neighbour_species.index_select(0, rows),
            self.atomic_numbers.shape[0],
        )
        energies, gradient = self.energies_and_gradient(
            vectors.index_select(0, rows), edge_index, graph_species
        )
        return energies[:n_atoms], torch.zeros_like(vectors).index_copy(0, rows, gradient)
