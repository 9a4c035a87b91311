"""A higher-order student: moments up to rank 6 and element-pair radial MLPs (experimental).

The ``tiny-l3`` and ``standard-l3`` presets; ``max_rank`` (a training option) raises the
angular order. Measured so far: ``benchmarks/distill_presets.py`` (60 epochs), no more
accurate than :class:`~.moment.MomentStudent` of the same size, and a briefly trained one is
less stable in MD; ``benchmarks/architectures.py`` (40 epochs, 1,064 organic frames),
held-out force RMSE ``tiny`` 0.156, ``tiny-l3`` 0.150, rank 4 0.149, rank 6 0.130 eV/Å for
1.35× the call cost of rank 3, with every student still far from fitting its own training
frames (0.10–0.11 eV/Å).

For each atom ``i`` and its neighbours ``j`` within the cutoff, radial channels
``R_{l,n}(r_ij)`` (a small MLP of a Bessel basis, conditioned on the element pair of the
edge, times a smooth envelope) build the Cartesian moments of the neighbour shell

    A_{l,n} = Σ_j R_{l,n}(r_ij) r̂_ij^{⊗l},        l = 0 … max_rank (≤ 6),

stored as the independent components of a symmetric rank-``l`` tensor. Their full
contractions are invariant to rotations, translations and permutations of like atoms:

- two-body: ``A_{0,n}``;
- three-body: ``A_{l,n} ⋅ A_{l,m}`` for every ``l ≥ 1`` and channel pair (angular order up to
  ``max_rank``: ``Σ_jk R R cosˡ θ_jk``);
- four-body: ``B1_a · B2_b · B1_a``, ``tr(B2_c³)`` and ``B1_c · B3_c : B2_c`` on a learned
  mixture ``B_l`` of the channels.

An MLP maps them, with an element embedding, to the atom's energy; a ZBL core adds repulsion
at close contact. The energy of atom ``i`` depends only on neighbours within ``cutoff``: the
model's interaction range equals its cutoff, so it decomposes exactly over MPI ranks. The
radial MLP takes the element pair as an embedding, so the cost per edge does not grow with
the number of elements the model knows.

Forces and stress are derivatives of the energy (autograd); see :mod:`.graph`.
"""

from __future__ import annotations

import math

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
from .segments import centre_slots, sum_outer

#: The highest moment rank a student may use (angular order of its three-body terms).
MAX_RANK = 6


def monomials(rank: int) -> list[tuple[int, int, int]]:
    """Exponents ``(a, b, c)`` of ``x^a y^b z^c`` with ``a + b + c = rank``: the independent
    components of a symmetric rank-``rank`` tensor in 3D."""
    return [(a, b, rank - a - b) for a in range(rank, -1, -1) for b in range(rank - a, -1, -1)]


def multiplicity(powers: tuple[int, int, int]) -> float:
    """How many entries of the full tensor a component stands for: ``l! / (a! b! c!)``."""
    a, b, c = powers
    return math.factorial(a + b + c) / (math.factorial(a) * math.factorial(b) * math.factorial(c))


def _full_index(rank: int) -> list[int]:
    """For every entry ``(i, j, …)`` of a full rank-``rank`` tensor (row-major), the index of
    its independent component in :func:`monomials` order."""
    position = {p: k for k, p in enumerate(monomials(rank))}
    index = []
    for flat in range(3**rank):
        counts = [0, 0, 0]
        for _ in range(rank):
            counts[flat % 3] += 1
            flat //= 3
        index.append(position[(counts[0], counts[1], counts[2])])
    return index


class TensorMomentStudent(Student):
    """A strictly local, energy-conserving student with moments up to rank ``max_rank``
    (presets ``*-l3``).

    Parameters
    ----------
    atomic_numbers
        The elements the model knows, in model order (species index = position here).
    covalent_radii
        Per element, in Å, for the switching range of the ZBL core.
    cutoff
        Radial cutoff in Å (also the interaction range).
    n_basis
        Bessel functions per edge.
    n_radial
        Radial channels per tensor rank.
    max_rank
        Highest rank of the moments (2 … :data:`MAX_RANK`): the angular order of the
        three-body terms. The four-body contractions use ranks up to 3.
    n_mix
        Mixed channels entering the four-body contractions.
    radial_hidden
        Width of the radial MLP's hidden layer.
    hidden
        Widths of the hidden layers of the energy MLP.
    avg_neighbors
        Typical neighbour count, to normalise the moments (set from data by the trainer).
    envelope_p
        Order of the polynomial cutoff envelope.
    core_handover
        Hand each pair from the learned part to the ZBL core across the core's switching
        range (as in :class:`~.moment.MomentStudent`). Off reproduces older students.
    core_window
        ``[inner, outer]``: the switching range (as in :class:`~.moment.MomentStudent`).
    pair_floors
        Where each element pair's switching range ends at the latest (as in
        :class:`~.moment.MomentStudent`).
    """

    def __init__(
        self,
        atomic_numbers: list[int],
        covalent_radii: list[float],
        cutoff: float = 5.0,
        n_basis: int = 8,
        n_radial: int = 12,
        max_rank: int = 3,
        n_mix: int = 8,
        radial_hidden: int = 32,
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
        if not 2 <= max_rank <= MAX_RANK:
            raise InputError(f"max_rank must be between 2 and {MAX_RANK}, got {max_rank}")
        if n_mix < 1 or n_radial < 1 or radial_hidden < 1:
            raise InputError("n_radial, n_mix and radial_hidden must be at least 1")
        self.n_species = n_species
        self.n_radial = n_radial
        self.max_rank = max_rank
        self.n_mix = n_mix
        self.register_buffer("atomic_numbers", torch.tensor(atomic_numbers, dtype=torch.long))
        self.register_buffer("cutoff", torch.tensor(float(cutoff)))
        self.register_buffer("avg_neighbors", torch.tensor(float(avg_neighbors)))
        # Per-element energy shift (eV) and scale of the learned part (eV), set from data.
        self.register_buffer("energy_shift", torch.zeros(n_species))
        self.register_buffer("energy_scale", torch.tensor(1.0))

        self.basis = BesselBasis(cutoff, n_basis)
        self.envelope = PolynomialEnvelope(envelope_p)
        # Radial MLP: Bessel basis + an embedding of the (centre, neighbour) element pair →
        # n_radial channels per rank. One pair's embedding is looked up per edge.
        self.radial_in = nn.Linear(n_basis, radial_hidden, bias=False)
        self.pair_embedding = nn.Embedding(n_species * n_species, radial_hidden)
        self.radial_out = nn.Linear(radial_hidden, n_radial * (max_rank + 1), bias=False)
        with torch.no_grad():  # unit-variance channels at initialisation
            self.radial_in.weight.normal_(0.0, n_basis**-0.5)
            self.radial_out.weight.normal_(0.0, radial_hidden**-0.5)

        # The multiplicity of each angular component (ranks 0 … max_rank, monomials order),
        # which turns a sum over components into a full tensor contraction.
        powers = [p for rank in range(max_rank + 1) for p in monomials(rank)]
        self.register_buffer("weight_of", torch.tensor([multiplicity(p) for p in powers]))
        starts = [0]
        for rank in range(max_rank + 1):
            starts.append(starts[-1] + len(monomials(rank)))
        self.rank_starts = starts
        self.register_buffer("full2", torch.tensor(_full_index(2), dtype=torch.long))
        self.register_buffer("full3", torch.tensor(_full_index(3), dtype=torch.long))
        # Exponents of every angular component of ranks 0 … max_rank (monomials order), to
        # gather x^a y^b z^c from the powers of the unit vector's components. Derived from
        # max_rank, so not stored in checkpoints.
        self.register_buffer(
            "powers", torch.tensor(powers, dtype=torch.long).t().contiguous(), persistent=False
        )

        # Channel mixing (the same linear map for every component: rotation-equivariant)
        # for ranks 1 … min(max_rank, 3), feeding the four-body contractions.
        self.n_mixed = min(max_rank, 3)
        self.mix = nn.Parameter(torch.randn(self.n_mixed, n_radial, n_mix) / n_radial**0.5)
        rows, cols = torch.triu_indices(n_radial, n_radial)
        self.register_buffer("pair_rows", rows)
        self.register_buffer("pair_cols", cols)
        n_features = n_radial + max_rank * rows.numel() + n_mix * n_mix + n_mix
        if max_rank >= 3:
            n_features += n_mix
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
        r2 = (vectors * vectors).sum(dim=1)
        r = torch.sqrt(r2.clamp(min=1e-12))
        unit = vectors / r.unsqueeze(1)
        pair = species[centre] * self.n_species + species[edge_index[1]]

        # Radial channels: the envelope multiplies the MLP's output, so every channel and
        # its first two derivatives vanish at the cutoff.
        envelope = self.envelope(r / self.cutoff)
        if self.core_handover:
            envelope = envelope * self.zbl.handover(r, species[centre], species[edge_index[1]])
        hidden = self.radial_in(self.basis(r).to(vectors.dtype)) + self.pair_embedding(pair).to(
            vectors.dtype
        )
        radial = self.radial_out(torch.nn.functional.silu(hidden))
        scale = envelope / self.avg_neighbors.to(vectors.dtype)
        radial = (radial * scale.unsqueeze(1)).view(-1, self.max_rank + 1, self.n_radial)

        # Angular monomials x^a y^b z^c of the unit vector, rank by rank in the order of
        # monomials(rank), each multiplied by that rank's radial channels.
        power_list = [torch.ones_like(unit).unsqueeze(1)]
        for _ in range(self.max_rank):
            power_list.append(power_list[-1] * unit.unsqueeze(1))
        pw = torch.cat(power_list, dim=1)  # [E, max_rank + 1, 3]: u_c^k
        monomial = pw[:, self.powers[0], 0] * pw[:, self.powers[1], 1] * pw[:, self.powers[2], 2]
        angular = [
            monomial[:, self.rank_starts[rank] : self.rank_starts[rank + 1]]
            for rank in range(self.max_rank + 1)
        ]
        slots = centre_slots(centre, n_atoms)
        moments = torch.cat(
            [
                sum_outer(centre, n_atoms, slots, angular[rank], radial[:, rank, :])
                for rank in range(len(angular))
            ],
            dim=1,
        )  # [N, M, R]

        weights = self.weight_of.to(vectors.dtype)
        features: list[torch.Tensor] = [moments[:, 0, :]]
        mixed: list[torch.Tensor] = []
        for rank in range(1, self.max_rank + 1):
            start = self.rank_starts[rank]
            stop = self.rank_starts[rank + 1]
            a = moments[:, start:stop, :]  # [N, M_l, R]
            gram = torch.bmm(a.transpose(1, 2), a * weights[start:stop].view(1, -1, 1))
            features.append(gram[:, self.pair_rows, self.pair_cols])
            if rank <= self.n_mixed:
                mixed.append(torch.matmul(a, self.mix[rank - 1].to(a.dtype)))  # [N, M_l, C]

        b1 = mixed[0]  # [N, 3, C]
        b2 = mixed[1][:, self.full2, :].view(n_atoms, 3, 3, self.n_mix)  # [N, 3, 3, C]
        # B1_a · B2_b · B1_a, tr(B2_c³)
        features.append(torch.einsum("nia,nijb,nja->nab", b1, b2, b1).reshape(n_atoms, -1))
        b2sq = torch.einsum("nijc,njkc->nikc", b2, b2)
        features.append(torch.einsum("nikc,nkic->nc", b2sq, b2))
        if self.max_rank >= 3:
            b3 = mixed[2][:, self.full3, :].view(n_atoms, 3, 3, 3, self.n_mix)
            # B1_c · B3_c : B2_c
            features.append(torch.einsum("nic,nijkc,njkc->nc", b1, b3, b2))
        return torch.cat(features, dim=1), r
