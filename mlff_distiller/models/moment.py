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
from .segments import (
    centre_slots,
    mix_by_blocks,
    mix_by_pair,
    outer_grad,
    padded_outer_grad,
    padded_sum_outer,
    pair_groups,
    row_sums,
    species_slots,
    sum_outer,
)

#: Non-persistent buffers :class:`MomentStudent` derives from its shape.
_SHAPE_CONSTANTS = ("pair_spread", "pair_slots", "square_left", "square_right", "square_spread")


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
        # Double-counting weights of the 6 independent entries of a symmetric 3×3 tensor.
        self.register_buffer("sym_weights", torch.tensor([1.0, 1.0, 1.0, 2.0, 2.0, 2.0]))
        rows, cols = _pair_index(n_radial)
        self.register_buffer("pair_rows", rows)
        self.register_buffer("pair_cols", cols)
        # The kept pairs n ≤ m spread back to a full symmetric [R, R] matrix (flattened):
        # entry (n, m) and (m, n) each get the pair's value, so the diagonal gets it twice,
        # as the derivative of A_n · A_n (2 A_n) needs. A constant of the shape, not state.
        spread = torch.zeros(rows.numel(), n_radial * n_radial)
        pairs = torch.arange(rows.numel())
        spread[pairs, rows * n_radial + cols] += 1.0
        spread[pairs, cols * n_radial + rows] += 1.0
        self.register_buffer("pair_spread", spread, persistent=False)
        self.register_buffer("pair_slots", rows * n_radial + cols, persistent=False)
        # The 6 independent components of v ⊗ v (xx, yy, zz, xy, xz, yz) are v[left] ·
        # v[right]; ``square_spread`` [6, 9] spreads a gradient with respect to them to the
        # flattened symmetric 3 × 3 matrix M with ∂/∂v = M v. Constants of the shape.
        left = torch.tensor([0, 1, 2, 0, 0, 1])
        right = torch.tensor([0, 1, 2, 1, 2, 2])
        square_spread = torch.zeros(6, 9)
        square_spread[torch.arange(6), left * 3 + right] += 1.0
        square_spread[torch.arange(6), right * 3 + left] += 1.0
        self.register_buffer("square_left", left, persistent=False)
        self.register_buffer("square_right", right, persistent=False)
        self.register_buffer("square_spread", square_spread, persistent=False)
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
        #: energies_and_gradient is written out in differentiable operations: training
        #: takes forces from it (models.graph.evaluate) and differentiates them once.
        self.gradient_written_out = True

    def _load_from_state_dict(
        self, state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys, errors
    ):
        # States written before 2026-12-06 carry the index of the 9 entries of a symmetric
        # 3×3 tensor among its 6, which nothing uses since; it is a constant, not a weight.
        state_dict.pop(prefix + "sym_index", None)
        # A TorchScript file's state keeps non-persistent buffers too: these are rebuilt
        # from the shape, never read from a state.
        for name in _SHAPE_CONSTANTS:
            state_dict.pop(prefix + name, None)
        super()._load_from_state_dict(
            state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys, errors
        )

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
        h = (features - self.feature_mean) / self.feature_std
        first = True
        for layer in self.hidden_layers:
            h = layer(h)
            if first:
                h = h + self.species_embedding(species)
                first = False
        atomic = self.readout(h).squeeze(1) * self.energy_scale
        return atomic + self.energy_shift[species]

    def _learned_energies_and_gradient(
        self, features: torch.Tensor, species: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """:meth:`learned_energies` and the gradient of their sum with respect to the
        features, written out (each hidden layer is a linear map followed by SiLU,
        ``silu′(z) = σ(z) (1 + z (1 − σ(z)))``, then the linear readout): a dozen operators
        where autograd runs hundreds."""
        std = self.feature_std
        h = (features - self.feature_mean) / std
        weights: list[torch.Tensor] = []
        slopes: list[torch.Tensor] = []
        first = True
        for layer in self.hidden_layers:
            if hasattr(layer, "weight"):  # nn.Linear
                weights.append(layer.weight)
                h = layer(h)
                if first:
                    h = h + self.species_embedding(species)
                    first = False
            else:  # nn.SiLU
                sigmoid = torch.sigmoid(h)
                slopes.append(sigmoid * (1.0 + h * (1.0 - sigmoid)))
                h = h * sigmoid
        scale = self.energy_scale
        atomic = self.readout(h).squeeze(1) * scale + self.energy_shift[species]
        grad = (self.readout.weight * scale).expand(h.shape[0], h.shape[1])
        for k in range(len(weights) - 1, -1, -1):
            grad = (grad * slopes[k]) @ weights[k]
        return atomic, grad / std

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
        r, unit = self._lengths(vectors)
        return r, unit, species[edge_index[0]], species[edge_index[1]]

    def _pair_weights(self) -> torch.Tensor:
        """The radial mixing weights of every element pair, ``[S*S, K, R]``."""
        n_basis = self.radial_weights.shape[0]
        weights = self.radial_weights.view(n_basis, self.n_species * self.n_species, self.n_radial)
        return weights.transpose(0, 1)

    def _radial(self, basis: torch.Tensor, pair: torch.Tensor) -> torch.Tensor:
        """Radial channels ``[E, R]`` of enveloped basis values ``[E, K]``: each edge mixes
        its basis with its own element pair's weights only, so the cost does not grow with
        the square of the element count."""
        radial = mix_by_pair(basis, pair, self._pair_weights().contiguous())
        return radial / self.avg_neighbors

    def _angular(self, unit: torch.Tensor) -> torch.Tensor:
        """Angular parts of each edge ``[E, 12]``: 1, r̂ (3) and the 6 independent
        components of r̂⊗r̂ (xx, yy, zz, xy, xz, yz), then two zeros. The zeros cost
        nothing in the moments' features; they make the per-atom batched products about
        twice as fast (measured on 3,072 waters, one thread: 12 columns are a shape the
        BLAS kernels handle well, 10 are not)."""
        ones = torch.ones_like(unit[:, :1])
        return torch.cat([ones, unit, self._squares(unit), torch.zeros_like(unit[:, :2])], dim=1)

    def _angular_gradient(self, unit: torch.Tensor, d_angular: torch.Tensor) -> torch.Tensor:
        """The gradient with respect to the unit vectors ``[E, 3]`` of a loss whose gradient
        with respect to :meth:`_angular`'s columns is ``d_angular``."""
        return d_angular[:, 1:4] + self._squares_gradient(unit, d_angular[:, 4:10])

    def _squares(self, v: torch.Tensor) -> torch.Tensor:
        """The 6 independent components of ``v ⊗ v`` (xx, yy, zz, xy, xz, yz) of vectors
        ``v [..., 3]``, as ``[..., 6]``."""
        return v.index_select(-1, self.square_left) * v.index_select(-1, self.square_right)

    def _squares_gradient(self, v: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
        """The gradient with respect to ``v [..., 3]`` of ``Σ g · _squares(v)`` (``g
        [..., 6]``): ``M v``, ``M`` the symmetric 3 × 3 matrix of ``g`` (a few operators).
        Above 2,048 vectors it is written out per component instead, where batched 3 × 3
        products are the slower form (2.4× on 40,000 vectors, one thread)."""
        if v.numel() > 3 * 2048:
            return _squares_gradient(v, g)
        m = torch.matmul(g, self.square_spread).unflatten(-1, [3, 3])
        return torch.matmul(m, v.unsqueeze(-1)).squeeze(-1)

    def _invariants(self, moments: torch.Tensor) -> torch.Tensor:
        """The features ``[N, F]`` of the moments ``[N, R, 12]`` (:meth:`_angular`):
        ``A0_n``, ``A1_n·A1_m`` and ``A2_n:A2_m`` (``n ≤ m``) and ``A1_n·A2_m·A1_n``; the last
        as ``A2_m`` contracted with the 6 independent components of ``A1_n⊗A1_n`` (weights 1
        on the diagonal, 2 off it), like ``A2_n:A2_m``."""
        n_atoms = moments.shape[0]
        n_square = self.n_radial * self.n_radial
        a0 = moments[:, :, 0]
        a1 = moments[:, :, 1:4]
        a2 = moments[:, :, 4:10]
        weighted = a2 * self.sym_weights
        g1 = torch.bmm(a1, a1.transpose(1, 2)).view(n_atoms, n_square)  # A1_n · A1_m
        g2 = torch.bmm(weighted, a2.transpose(1, 2)).view(n_atoms, n_square)  # A2_n : A2_m
        t = torch.bmm(self._squares(a1), weighted.transpose(1, 2))  # [N, R, R]
        slots = self.pair_slots
        return torch.cat(
            [a0, g1.index_select(1, slots), g2.index_select(1, slots), t.view(n_atoms, n_square)],
            dim=1,
        )

    @torch.jit.export
    def energies_and_gradient(
        self, vectors: torch.Tensor, edge_index: torch.Tensor, species: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """:meth:`forward`'s per-atom energies and the gradient of their sum with respect
        to every edge vector (``[E, 3]``, eV/Å).

        The chain rule is written out through the whole student (energy MLP, invariants,
        moments, radial channels, envelope, handover, ZBL core): no autograd runs inside.
        On a small molecule that is a few hundred operators instead of the ~1,500 that
        autograd through :meth:`forward` runs, and no per-edge intermediate is kept for a
        backward pass. Forces, virials and LAMMPS's per-edge forces all come from this
        gradient (``ExportedStudent.compute``, ``local_energies_and_gradient``); tests hold
        it to autograd of :meth:`forward`. It is made of differentiable operations, so
        where the weights require gradients the result's graph reaches them: training
        differentiates a loss on these forces once (``models.graph.evaluate``).

        Where the neighbour counts allow, the edges are laid out padded once, at the
        start (:func:`~.segments.species_slots`): atoms grouped by element, each owning as
        many rows per neighbour element as the most such neighbours any atom has, and a row
        no edge fills holds a vector twice the cutoff long, whose every term (envelope,
        handover, core) is exactly zero. Every per-edge step then works on that layout: the
        per-atom sums are batched matrix products and each element pair's radial mixing
        one matrix product, with nothing sorted, gathered or scattered between them.
        """
        vectors = vectors.detach()
        n_atoms = species.shape[0]
        centre = edge_index[0]
        s_j = species[edge_index[1]]
        n_species = self.n_species
        flat, order, blocks, columns = species_slots(centre, s_j, species, n_species)
        if len(columns) == 0:  # that padding would be too wide: the edges as they are
            none: list[int] = []
            return self._energies_and_gradient(
                vectors,
                species[centre] * n_species + s_j,
                species,
                centre,
                centre_slots(centre, n_atoms),
                none,
                none,
                False,
            )
        width = columns[-1]
        padded = torch.zeros(n_atoms * width, 3, dtype=vectors.dtype, device=vectors.device)
        padded[:, 0] = 2.0 * self.cutoff
        padded = padded.index_copy(0, flat, vectors)
        grouped = species[order]
        # Every row's element pair: its atom's species and its column's.
        column_species: list[int] = []
        for s in range(n_species):
            for _ in range(columns[s + 1] - columns[s]):
                column_species.append(s)
        row_species = torch.tensor(column_species, dtype=torch.long, device=species.device)
        pair = ((grouped * n_species).unsqueeze(1) + row_species).view(-1)
        energies, gradient = self._energies_and_gradient(
            padded, pair, grouped, centre, (flat, width), blocks, columns, True
        )
        return torch.empty_like(energies).index_copy(0, order, energies), gradient.index_select(
            0, flat
        )

    @torch.jit.export
    def padded_energies_and_gradient(
        self,
        vectors: torch.Tensor,
        species: torch.Tensor,
        neighbour_species: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """:meth:`energies_and_gradient` of edges given as ``W`` rows per atom (row ``i W +
        k``: ``r_j − r_i`` for a neighbour of species ``neighbour_species[i W + k]``, or a
        vector at least the cutoff long as padding; left out, every ordered pair, ``W = N``):
        the energies ``[N]`` and the gradient ``[N * W, 3]`` in the same rows (see
        ``Student.padded_energies_and_gradient``).

        That is already a padded layout, so nothing is sorted, counted or copied into
        place: on a molecule or a LAMMPS rank of a few dozen atoms this is the cheapest
        form, whose cost is the dispatch of its operators rather than their arithmetic
        (ethanol: about two thirds of :meth:`energies_and_gradient`'s time)."""
        n_atoms = species.shape[0]
        width = vectors.shape[0] // max(n_atoms, 1)
        columns = species if neighbour_species is None else neighbour_species.view(n_atoms, width)
        pair = (species * self.n_species).unsqueeze(1) + columns
        none: list[int] = []
        centre = species[:0]
        return self._energies_and_gradient(
            vectors.detach(), pair.view(-1), species, centre, (centre, width), none, none, True
        )

    def _energies_and_gradient(
        self,
        vectors: torch.Tensor,
        pair: torch.Tensor,
        species: torch.Tensor,
        centre: torch.Tensor,
        slots: tuple[torch.Tensor, int],
        blocks: list[int],
        columns: list[int],
        padded: bool,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """:meth:`energies_and_gradient` of rows in a padded layout (``padded``: atom ``i``
        owns rows ``i W`` to ``i W + W − 1``; ``species`` in its atom order, ``centre`` and
        ``slots`` unused; ``blocks`` and ``columns`` from :func:`~.segments.species_slots`
        where the rows are grouped by element pair, else empty), or of edges as they are
        (``centre`` and ``slots`` from :func:`~.segments.centre_slots`); ``pair`` is each
        row's element pair, ``centre species × S + neighbour species``.

        Written for few operators (each costs microseconds of dispatch on a small
        molecule, more than its arithmetic): buffers are used in the model's dtype as
        they are (the callers cast the vectors to it), and the core's terms exist only
        where a pair is close enough to have them."""
        n_atoms = species.shape[0]
        dense = padded
        r, unit = self._lengths(vectors)
        envelope, d_envelope = self.envelope.value_and_derivative(r / self.cutoff)
        d_envelope = d_envelope / self.cutoff
        # The core's share of each pair is 1 − handover; with core_handover the learned
        # part's edge weight is the handover times the envelope. Only pairs closer than the
        # core's reach have a handover below 1 or a core energy: both are evaluated for
        # those alone (elsewhere they are exactly 1 and 0).
        close = torch.nonzero(r < self.zbl.reach().view(-1)[pair]).squeeze(1)
        window = envelope
        d_window = d_envelope
        core: tuple[torch.Tensor, torch.Tensor] | None = None
        if close.shape[0] > 0:  # most structures have none: the core costs nothing
            r_close = r.index_select(0, close)
            pair_close = pair.index_select(0, close)
            si_close = torch.div(pair_close, self.n_species, rounding_mode="floor")
            sj_close = pair_close - si_close * self.n_species
            h_close, dh_close = self.zbl.handover_and_derivative(r_close, si_close, sj_close)
            core = self.zbl.energy_and_derivative(r_close, si_close, sj_close, h_close, dh_close)
            if self.core_handover:
                envelope_close = envelope.index_select(0, close)
                window = envelope.index_copy(0, close, envelope_close * h_close)
                d_window = d_envelope.index_copy(
                    0,
                    close,
                    d_envelope.index_select(0, close) * h_close + envelope_close * dh_close,
                )
        # The Bessel basis is b_k = c sin(ω_k r) / r (BesselBasis); the learned part sees
        # b_k times the window, mixed into radial channels per element pair.
        omega = self.basis.frequencies / self.basis.cutoff
        phase = r.unsqueeze(1) * omega
        sines = torch.sin(phase)
        scale = self.basis.prefactor / r
        basis = sines * (scale * window).unsqueeze(1)  # [E, K]
        weights = self._pair_weights() / self.avg_neighbors  # [S*S, K, R]
        # Many rows are mixed per element pair (by slabs of the padded layout, else sorted
        # by pair once for both directions); few gather each row's weights.
        no_groups: list[int] = []
        groups = (pair[:0], no_groups)
        if not dense:
            groups = pair_groups(pair, self.n_species * self.n_species)
        radial = _mix(basis, pair, weights, groups, blocks, columns)
        angular = self._angular(unit)
        if dense:
            moments = padded_sum_outer(radial, angular, n_atoms)
        else:
            moments = sum_outer(centre, n_atoms, slots, radial, angular)
        energies, d_features = self._learned_energies_and_gradient(
            self._invariants(moments), species
        )
        d_moments = self._invariants_gradient(moments, d_features)

        if dense:
            d_radial, d_angular = padded_outer_grad(radial, angular, d_moments)
        else:
            d_radial, d_angular = outer_grad(centre, n_atoms, slots, radial, angular, d_moments)
        d_basis = _mix(d_radial, pair, weights.transpose(1, 2), groups, blocks, columns)
        # d/dr [c sin(ω r) / r · w] = c / r · [ω cos(ω r) w + sin(ω r) (w′ − w / r)], w the window
        d_r = scale * (
            window * ((d_basis * torch.cos(phase)) @ omega)
            + (d_window - window / r) * row_sums(d_basis * sines)
        )
        if core is not None:
            zbl, d_zbl = core
            d_r = d_r.index_add(0, close, 0.5 * d_zbl)
            if dense:
                owner = torch.div(close, r.shape[0] // n_atoms, rounding_mode="floor")
            else:
                owner = centre.index_select(0, close)
            energies = energies.index_add(0, owner, 0.5 * zbl)

        # ∂/∂r̂ of the angular parts, then r̂ = v / r and r = |v|.
        d_unit = self._angular_gradient(unit, d_angular)
        radial_part = row_sums(d_unit * unit)
        gradient = (d_unit - radial_part.unsqueeze(1) * unit) / r.unsqueeze(1)
        return energies, gradient + d_r.unsqueeze(1) * unit

    def _lengths(self, vectors: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Edge lengths ``[E]`` and unit vectors ``[E, 3]``."""
        r = torch.sqrt(row_sums(vectors * vectors).clamp(min=1e-12))
        return r, vectors / r.unsqueeze(1)

    def _invariants_gradient(self, moments: torch.Tensor, d_features: torch.Tensor) -> torch.Tensor:
        """The gradient with respect to the moments ``[N, R, 12]`` of a loss whose gradient
        with respect to :meth:`_invariants`' features is ``d_features [N, F]``."""
        n_atoms = moments.shape[0]
        n_radial = self.n_radial
        n_pairs = self.pair_rows.shape[0]
        a1 = moments[:, :, 1:4]
        a2 = moments[:, :, 4:10]
        sym = self.sym_weights
        d_a0 = d_features[:, :n_radial]
        # g[n, m] = A_n · A_m kept for n ≤ m (and the same of A2): their gradients as full
        # symmetric matrices.
        spread = torch.mm(
            d_features[:, n_radial : n_radial + 2 * n_pairs].reshape(2 * n_atoms, n_pairs),
            self.pair_spread,
        ).view(n_atoms, 2, n_radial, n_radial)
        s1 = spread[:, 0]
        s2 = spread[:, 1]
        # t[n, a, m] = squares(A1_a) · (w ∘ A2_m)
        d_t = d_features[:, n_radial + 2 * n_pairs :].reshape(n_atoms, n_radial, n_radial)
        d_squares = torch.bmm(d_t, a2) * sym  # [N, R, 6]
        d_a1 = torch.bmm(s1, a1)
        d_a1 = d_a1 + self._squares_gradient(a1, d_squares)
        d_a2 = torch.bmm(s2, a2)
        d_a2 = (d_a2 + torch.bmm(d_t.transpose(1, 2), self._squares(a1))) * sym
        return torch.cat([d_a0.unsqueeze(2), d_a1, d_a2, torch.zeros_like(d_a1[:, :, :2])], dim=2)


def _mix(
    values: torch.Tensor,
    pair: torch.Tensor,
    weights: torch.Tensor,
    groups: tuple[torch.Tensor, list[int]],
    blocks: list[int],
    columns: list[int],
) -> torch.Tensor:
    """Each row's ``values [E, C]`` times its element pair's ``weights [S*S, C, D]``: by
    the slabs of :func:`~.segments.species_slots`' layout (``columns`` not empty) when the
    rows are many, else by :func:`~.segments.mix_by_pair` with ``groups``."""
    if len(columns) > 0 and values.shape[0] > 2048:
        return mix_by_blocks(values, weights, blocks, columns)
    return mix_by_pair(values, pair, weights.contiguous(), groups)


def _squares_gradient(v: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
    """:meth:`MomentStudent._squares_gradient` written out per component."""
    x = v[..., 0:1]
    y = v[..., 1:2]
    z = v[..., 2:3]
    gxy = g[..., 3:4]
    gxz = g[..., 4:5]
    gyz = g[..., 5:6]
    return 2.0 * v * g[..., 0:3] + torch.cat(
        [y * gxy + z * gxz, x * gxy + z * gyz, x * gxz + y * gyz], dim=-1
    )
