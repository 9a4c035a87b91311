"""The student: a strictly local moment-tensor network.

For each atom ``i`` and its neighbours ``j`` within the cutoff, learnable radial channels
``R_n(r_ij)`` (a Bessel basis times a smooth envelope, mixed per element pair) build the
moments

    A0_n = Σ_j R_n,        A1_n = Σ_j R_n r̂_ij,        A2_n = Σ_j R_n r̂_ij ⊗ r̂_ij,

whose contractions ``A0_n``, ``A1_n·A1_m``, ``A2_n:A2_m`` and ``A1_n·A2_m·A1_n`` are invariant
to rotations, translations and permutations of like atoms (up to four-body terms). An MLP
maps them, with an element embedding, to the atom's energy; a ZBL core adds repulsion at
close contact. The energy of atom ``i`` depends only on neighbours within ``cutoff``: the
model's interaction range equals its cutoff, so it decomposes exactly over MPI ranks.

Forces and stress are derivatives of the energy (autograd); see :mod:`.graph`.
"""

from __future__ import annotations

import torch
from torch import nn

from ..errors import InputError
from .base import Student
from .radial import (
    BesselBasis,
    PolynomialEnvelope,
    ZBLRepulsion,
    check_core_window,
    check_pair_floors,
)
from .segments import centre_slots, mix_by_pair, outer_grad, sum_outer


def _pair_index(n: int) -> tuple[torch.Tensor, torch.Tensor]:
    rows, cols = torch.triu_indices(n, n)
    return rows, cols


class MomentStudent(Student):
    """A strictly local, energy-conserving student.

    Parameters
    ----------
    atomic_numbers
        The elements the model knows, in model order (species index = position here).
    cutoff
        Radial cutoff in Å (also the interaction range).
    n_basis, n_radial
        Bessel functions per edge, radial channels mixed from them.
    hidden
        Widths of the hidden MLP layers.
    covalent_radii
        Per element, in Å, for the switching range of the ZBL core.
    avg_neighbors
        Typical neighbour count, to normalise the moments (set from data by the trainer).
    core_handover
        Hand each pair from the learned part to the ZBL core across the core's switching
        range (the learned part's edge weight rises from 0 to 1 where ZBL's falls from 1 to
        0), so that below it the learned part does not see the pair at all and cannot
        extrapolate into an attraction there. Off reproduces students trained before it.
    core_window
        ``[inner, outer]``: the switching range, as fractions of each pair's covalent radii
        sum (the core is whole below ``inner``, gone above ``outer``). Default ``[0.4, 0.7]``.
    pair_floors
        ``{"A-B": Å}``: per element pair, the shortest distance at which the training data
        had it; where that is farther out than the switching range, the range moves out to
        end there (:class:`~.radial.ZBLRepulsion`), so the learned part never sees a pair
        closer than its data did. ``"data"`` (the presets' default): the trainer measures
        them on its training split; ``None`` or a model built without data: none.
    """

    def __init__(
        self,
        atomic_numbers: list[int],
        covalent_radii: list[float],
        cutoff: float = 5.0,
        n_basis: int = 8,
        n_radial: int = 16,
        hidden: list[int] | None = None,
        avg_neighbors: float = 10.0,
        envelope_p: int = 6,
        core_handover: bool = False,
        core_window: list[float] | None = None,
        pair_floors: dict[str, float] | str | None = None,
    ) -> None:
        super().__init__()
        hidden = [128, 128] if hidden is None else list(hidden)
        n_species = len(atomic_numbers)
        if n_species == 0:
            raise InputError("a model needs at least one element")
        self.n_species = n_species
        self.n_radial = n_radial
        self.register_buffer("atomic_numbers", torch.tensor(atomic_numbers, dtype=torch.long))
        self.register_buffer("cutoff", torch.tensor(float(cutoff)))
        self.register_buffer("avg_neighbors", torch.tensor(float(avg_neighbors)))
        # Per-element energy shift (eV) and scale of the learned part (eV), set from data.
        self.register_buffer("energy_shift", torch.zeros(n_species))
        self.register_buffer("energy_scale", torch.tensor(1.0))

        self.basis = BesselBasis(cutoff, n_basis)
        self.envelope = PolynomialEnvelope(envelope_p)
        # Radial channels mixed from the basis, per (centre, neighbour) element pair:
        # [K, S*S*R].
        self.radial_weights = nn.Parameter(
            torch.randn(n_basis, n_species * n_species * n_radial) / n_basis**0.5
        )
        # Double-counting weights of the 6 independent entries of a symmetric 3×3 tensor,
        # and where each of the 9 entries sits among the 6.
        self.register_buffer("sym_weights", torch.tensor([1.0, 1.0, 1.0, 2.0, 2.0, 2.0]))
        self.register_buffer("sym_index", torch.tensor([0, 3, 4, 3, 1, 5, 4, 5, 2]))
        rows, cols = _pair_index(n_radial)
        self.register_buffer("pair_rows", rows)
        self.register_buffer("pair_cols", cols)
        n_features = n_radial + 2 * rows.numel() + n_radial * n_radial
        self.n_features = n_features
        # Standardisation of the features (set from training data by the trainer).
        self.register_buffer("feature_mean", torch.zeros(n_features))
        self.register_buffer("feature_std", torch.ones(n_features))
        widths = [n_features, *hidden]
        self.species_embedding = nn.Embedding(n_species, widths[1])
        layers: list[nn.Module] = []
        for k in range(len(widths) - 1):
            layers.append(nn.Linear(widths[k], widths[k + 1], bias=k > 0))
            layers.append(nn.SiLU())
        self.hidden_layers = nn.ModuleList(layers)
        self.readout = nn.Linear(widths[-1], 1)
        floors = check_pair_floors(pair_floors, list(atomic_numbers))
        if floors and not core_handover:
            raise InputError(
                "pair_floors moves the core handover out, so it needs core_handover: true"
            )
        self.zbl = ZBLRepulsion(
            atomic_numbers, covalent_radii, *check_core_window(core_window), pair_floors=floors
        )
        self.core_handover = bool(core_handover)

    def forward(
        self, vectors: torch.Tensor, edge_index: torch.Tensor, species: torch.Tensor
    ) -> torch.Tensor:
        """Per-atom energies (eV) from edge vectors ``r_j − r_i`` (Å, shape ``[E, 3]``),
        ``edge_index`` (``[2, E]``: centre ``i``, neighbour ``j``; both directions present)
        and species indices (``[N]``)."""
        features, r = self.descriptors(vectors, edge_index, species)
        atomic = self.learned_energies(features, species)
        centre = edge_index[0]
        pair = 0.5 * self.zbl(r, species[centre], species[edge_index[1]])
        return atomic.index_add(0, centre, pair)

    def learned_energies(self, features: torch.Tensor, species: torch.Tensor) -> torch.Tensor:
        """The energy MLP's per-atom energies (eV) from :meth:`descriptors`' features."""
        h = (features - self.feature_mean.to(features.dtype)) / self.feature_std.to(features.dtype)
        first = True
        for layer in self.hidden_layers:
            h = layer(h)
            if first:
                h = h + self.species_embedding(species).to(h.dtype)
                first = False
        atomic = self.readout(h).squeeze(1) * self.energy_scale.to(h.dtype)
        return atomic + self.energy_shift.to(h.dtype)[species]

    def descriptors(
        self, vectors: torch.Tensor, edge_index: torch.Tensor, species: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Invariant features of every atom (``[N, F]``) and the edge lengths (``[E]``)."""
        n_atoms = species.shape[0]
        centre = edge_index[0]
        r, unit, s_i, s_j = self._geometry(vectors, edge_index, species)
        envelope = self.envelope(r / self.cutoff)
        if self.core_handover:
            envelope = envelope * self.zbl.handover(r, s_i, s_j)
        basis = self.basis(r) * envelope.unsqueeze(1)  # [E, K]
        radial = self._radial(basis, s_i * self.n_species + s_j)
        angular = self._angular(unit)
        moments = sum_outer(centre, n_atoms, centre_slots(centre, n_atoms), radial, angular)
        return self._invariants(moments), r

    def _geometry(
        self, vectors: torch.Tensor, edge_index: torch.Tensor, species: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """Edge lengths, unit vectors and the species of each edge's two atoms."""
        r2 = (vectors * vectors).sum(dim=1)
        r = torch.sqrt(r2.clamp(min=1e-12))
        unit = vectors / r.unsqueeze(1)
        return r, unit, species[edge_index[0]], species[edge_index[1]]

    def _pair_weights(self, dtype: torch.dtype) -> torch.Tensor:
        """The radial mixing weights of every element pair, ``[S*S, K, R]``."""
        n_basis = self.radial_weights.shape[0]
        weights = self.radial_weights.to(dtype).view(
            n_basis, self.n_species * self.n_species, self.n_radial
        )
        return weights.transpose(0, 1).contiguous()

    def _radial(self, basis: torch.Tensor, pair: torch.Tensor) -> torch.Tensor:
        """Radial channels ``[E, R]`` of enveloped basis values ``[E, K]``: each edge mixes
        its basis with its own element pair's weights only, so the cost does not grow with
        the square of the element count."""
        radial = mix_by_pair(basis, pair, self._pair_weights(basis.dtype))
        return radial / self.avg_neighbors.to(basis.dtype)

    def _angular(self, unit: torch.Tensor) -> torch.Tensor:
        """Angular parts of each edge ``[E, 10]``: 1, r̂ (3) and the 6 independent
        components of r̂⊗r̂ (xx, yy, zz, xy, xz, yz)."""
        ux = unit[:, 0]
        uy = unit[:, 1]
        uz = unit[:, 2]
        return torch.stack(
            [torch.ones_like(ux), ux, uy, uz, ux * ux, uy * uy, uz * uz, ux * uy, ux * uz, uy * uz],
            dim=1,
        )

    def _invariants(self, moments: torch.Tensor) -> torch.Tensor:
        """The features ``[N, F]`` of the moments ``[N, R, 10]``: ``A0_n``, ``A1_n·A1_m``
        and ``A2_n:A2_m`` (``n ≤ m``) and ``A1_n·A2_m·A1_n``."""
        n_atoms = moments.shape[0]
        a0 = moments[:, :, 0]
        a1 = moments[:, :, 1:4]
        a2 = moments[:, :, 4:10]
        g1 = torch.bmm(a1, a1.transpose(1, 2))  # [N, R, R]  A1_n · A1_m
        g2 = torch.bmm(a2 * self.sym_weights.to(a2.dtype), a2.transpose(1, 2))  # A2_n : A2_m
        # Full 3×3 A2 (symmetric) for A1_n · A2_m · A1_n.
        full = a2[:, :, self.sym_index].view(n_atoms, self.n_radial, 3, 3)
        t = torch.einsum("nac,nmcd,nad->nam", a1, full, a1)  # [N, R, R]
        return torch.cat(
            [
                a0,
                g1[:, self.pair_rows, self.pair_cols],
                g2[:, self.pair_rows, self.pair_cols],
                t.reshape(n_atoms, self.n_radial * self.n_radial),
            ],
            dim=1,
        )

    @torch.jit.export
    def energies_and_gradient(
        self, vectors: torch.Tensor, edge_index: torch.Tensor, species: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """:meth:`forward`'s per-atom energies and the gradient of their sum with respect
        to every edge vector (``[E, 3]``, eV/Å), without a graph through the descriptor.

        The chain rule through the descriptor is written out (moments, radial channels,
        envelope, handover, ZBL core); only the energy MLP is differentiated by autograd,
        with respect to the features. On a small molecule that is a few hundred operators
        instead of the ~1,500 that autograd through the whole forward runs, and none of the
        per-edge intermediates is kept for a backward pass. Forces, virials and LAMMPS's
        per-edge forces all come from this gradient (``ExportedStudent.compute``,
        ``local_energies_and_gradient``); tests compare it with autograd of :meth:`forward`.
        """
        vectors = vectors.detach()
        n_atoms = species.shape[0]
        centre = edge_index[0]
        r, unit, s_i, s_j = self._geometry(vectors, edge_index, species)
        x = r / self.cutoff
        envelope = self.envelope(x)
        d_envelope = self.envelope.derivative(x) / self.cutoff.to(r.dtype)
        # The core's share of each pair is 1 − handover; with core_handover the learned
        # part's edge weight is the handover times the envelope.
        handover, d_handover = self.zbl.handover_and_derivative(r, s_i, s_j)
        if self.core_handover:
            window = envelope * handover
            d_window = d_envelope * handover + envelope * d_handover
        else:
            window = envelope
            d_window = d_envelope
        bessel = self.basis(r)
        basis = bessel * window.unsqueeze(1)  # [E, K]
        d_basis = self.basis.derivative(r, bessel) * window.unsqueeze(
            1
        ) + bessel * d_window.unsqueeze(1)
        pair = s_i * self.n_species + s_j
        radial = self._radial(basis, pair)
        angular = self._angular(unit)
        slots = centre_slots(centre, n_atoms)
        moments = sum_outer(centre, n_atoms, slots, radial, angular)
        features = self._invariants(moments).detach().requires_grad_(True)

        learned = self.learned_energies(features, species)
        grads = torch.autograd.grad([learned.sum()], [features], allow_unused=True)
        d_features = grads[0]
        if d_features is None:
            d_features = torch.zeros_like(features)
        d_moments = self._invariants_gradient(moments, d_features.detach())

        d_radial, d_angular = outer_grad(centre, n_atoms, slots, radial, angular, d_moments)
        d_radial = d_radial / self.avg_neighbors.to(r.dtype)
        weights = self._pair_weights(r.dtype).transpose(1, 2).contiguous()  # [S*S, R, K]
        d_r = (mix_by_pair(d_radial, pair, weights) * d_basis).sum(dim=1)

        zbl, d_zbl = self.zbl.energy_and_derivative(r, s_i, s_j, handover, d_handover)
        d_r = d_r + 0.5 * d_zbl
        energies = learned.detach().index_add(0, centre, 0.5 * zbl)

        # ∂/∂r̂ of the angular parts, then r̂ = v / r and r = |v|.
        ux = unit[:, 0]
        uy = unit[:, 1]
        uz = unit[:, 2]
        g = d_angular
        d_unit = torch.stack(
            [
                g[:, 1] + 2.0 * ux * g[:, 4] + uy * g[:, 7] + uz * g[:, 8],
                g[:, 2] + 2.0 * uy * g[:, 5] + ux * g[:, 7] + uz * g[:, 9],
                g[:, 3] + 2.0 * uz * g[:, 6] + ux * g[:, 8] + uy * g[:, 9],
            ],
            dim=1,
        )
        radial_part = (d_unit * unit).sum(dim=1)
        gradient = (d_unit - radial_part.unsqueeze(1) * unit) / r.unsqueeze(1)
        gradient = gradient + d_r.unsqueeze(1) * unit
        return energies, gradient

    def _invariants_gradient(self, moments: torch.Tensor, d_features: torch.Tensor) -> torch.Tensor:
        """The gradient with respect to the moments ``[N, R, 10]`` of a loss whose gradient
        with respect to :meth:`_invariants`' features is ``d_features [N, F]``."""
        n_atoms = moments.shape[0]
        n_radial = self.n_radial
        n_pairs = self.pair_rows.shape[0]
        a1 = moments[:, :, 1:4]
        a2 = moments[:, :, 4:10]
        d_a0 = d_features[:, :n_radial]
        # g[n, m] = A_n · A_m kept for n ≤ m: its gradient as a full matrix, symmetrised.
        rows = self.pair_rows
        cols = self.pair_cols
        s1 = torch.zeros(n_atoms, n_radial, n_radial, dtype=moments.dtype, device=moments.device)
        s1[:, rows, cols] = d_features[:, n_radial : n_radial + n_pairs]
        s2 = torch.zeros_like(s1)
        s2[:, rows, cols] = d_features[:, n_radial + n_pairs : n_radial + 2 * n_pairs]
        d_t = d_features[:, n_radial + 2 * n_pairs :].reshape(n_atoms, n_radial, n_radial)
        full = a2[:, :, self.sym_index].view(n_atoms, n_radial, 3, 3)
        d_a1 = torch.bmm(s1 + s1.transpose(1, 2), a1)
        d_a1 = d_a1 + 2.0 * torch.einsum("nam,nmcd,nad->nac", d_t, full, a1)
        d_a2 = torch.bmm(s2 + s2.transpose(1, 2), a2) * self.sym_weights.to(a2.dtype)
        d_full = torch.einsum("nam,nac,nad->nmcd", d_t, a1, a1).reshape(n_atoms, n_radial, 9)
        # The gather by sym_index, reversed: each of the 9 entries adds to its independent one.
        d_a2 = d_a2.index_add(2, self.sym_index, d_full)
        return torch.cat([d_a0.unsqueeze(2), d_a1, d_a2], dim=2)
