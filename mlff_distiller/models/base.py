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
