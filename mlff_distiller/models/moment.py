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
from .radial import (
    BesselBasis,
    PolynomialEnvelope,
    ZBLRepulsion,
    check_core_window,
    check_pair_floors,
)
from .segments import centre_slots, mix_by_pair, sum_outer


def _pair_index(n: int) -> tuple[torch.Tensor, torch.Tensor]:
    rows, cols = torch.triu_indices(n, n)
    return rows, cols


class MomentStudent(nn.Module):
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
        h = (features - self.feature_mean.to(features.dtype)) / self.feature_std.to(features.dtype)
        first = True
        for layer in self.hidden_layers:
            h = layer(h)
            if first:
                h = h + self.species_embedding(species).to(h.dtype)
                first = False
        atomic = self.readout(h).squeeze(1) * self.energy_scale.to(h.dtype)
        atomic = atomic + self.energy_shift.to(h.dtype)[species]

        centre = edge_index[0]
        pair = 0.5 * self.zbl(r, species[centre], species[edge_index[1]])
        return atomic.index_add(0, centre, pair)

    def descriptors(
        self, vectors: torch.Tensor, edge_index: torch.Tensor, species: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Invariant features of every atom (``[N, F]``) and the edge lengths (``[E]``)."""
        n_atoms = species.shape[0]
        centre = edge_index[0]
        neighbour = edge_index[1]
        r2 = (vectors * vectors).sum(dim=1)
        r = torch.sqrt(r2.clamp(min=1e-12))
        unit = vectors / r.unsqueeze(1)
        s_i = species[centre]
        s_j = species[neighbour]

        envelope = self.envelope(r / self.cutoff)
        if self.core_handover:
            envelope = envelope * self.zbl.handover(r, s_i, s_j)
        basis = self.basis(r) * envelope.unsqueeze(1)  # [E, K]
        # Each edge mixes its basis with its own element pair's weights only, so the cost
        # does not grow with the square of the element count.
        n_radial = self.n_radial
        n_basis = basis.shape[1]
        weights = self.radial_weights.to(vectors.dtype).view(
            n_basis, self.n_species * self.n_species, n_radial
        )
        pair = s_i * self.n_species + s_j
        radial = mix_by_pair(basis, pair, weights.transpose(0, 1).contiguous())  # [E, R]
        radial = radial / self.avg_neighbors.to(vectors.dtype)

        # Angular parts of one edge: 1, r̂ (3) and the 6 independent components of r̂⊗r̂.
        ux = unit[:, 0]
        uy = unit[:, 1]
        uz = unit[:, 2]
        angular = torch.stack(
            [torch.ones_like(ux), ux, uy, uz, ux * ux, uy * uy, uz * uz, ux * uy, ux * uz, uy * uz],
            dim=1,
        )
        moments = sum_outer(centre, n_atoms, centre_slots(centre, n_atoms), radial, angular)
        a0 = moments[:, :, 0]
        a1 = moments[:, :, 1:4]
        a2 = moments[:, :, 4:10]

        g1 = torch.bmm(a1, a1.transpose(1, 2))  # [N, R, R]  A1_n · A1_m
        g2 = torch.bmm(a2 * self.sym_weights.to(a2.dtype), a2.transpose(1, 2))  # A2_n : A2_m
        # Full 3×3 A2 (symmetric) for A1_n · A2_m · A1_n.
        full = a2[:, :, self.sym_index].view(n_atoms, n_radial, 3, 3)
        t = torch.einsum("nac,nmcd,nad->nam", a1, full, a1)  # [N, R, R]
        features = torch.cat(
            [
                a0,
                g1[:, self.pair_rows, self.pair_cols],
                g2[:, self.pair_rows, self.pair_cols],
                t.reshape(n_atoms, n_radial * n_radial),
            ],
            dim=1,
        )

        return features, r
