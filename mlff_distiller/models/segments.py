"""Per-edge products summed per atom, and per-element-pair radial mixing, without the
``[edges, a, b]`` intermediates that made them memory-bound.

Both are exact rewrites of the obvious forms (``index_add`` of an outer product; a gather of
each edge's ``[K, R]`` weight block and a batched matrix product); only the order of the
floating-point sums changes. On 768 waters (~40,000 edges, one thread) they cut the moments
from ~34 to ~11 ms and the radial mixing from ~25 to ~7-15 ms (forward and backward).
"""

from __future__ import annotations

import torch


def centre_slots(centre: torch.Tensor, n_atoms: int) -> tuple[torch.Tensor, int]:
    """``flat [E]`` and ``width``: edge ``e`` takes row ``flat[e]`` of an ``[n_atoms *
    width]`` layout in which each atom owns ``width`` consecutive rows (``width`` is the
    largest neighbour count). Edges need not be grouped by centre. ``width`` is 0 when the
    padded layout would be more than four times the edge count (then callers fall back
    to ``index_add``)."""
    n_edges = centre.shape[0]
    if n_edges == 0:
        return centre, 0
    counts = torch.bincount(centre, minlength=n_atoms)
    width = int(counts.max())
    if n_atoms * width > 4 * n_edges + 1024:
        return centre, 0
    return centre * width + rank_in_group(centre, counts), width


def rank_in_group(key: torch.Tensor, counts: torch.Tensor) -> torch.Tensor:
    """Each entry's place among the entries of the same ``key`` (0, 1, ... in their order),
    given ``counts = bincount(key)``; no sort where ``key`` is grouped already (LAMMPS's
    plugin hands edges over grouped by centre and neighbour element)."""
    starts = torch.cumsum(counts, 0) - counts
    rank = torch.arange(key.shape[0], device=key.device)
    if bool((key[1:] >= key[:-1]).all()):
        return rank - starts[key]
    order = torch.argsort(key, stable=True)
    return torch.empty_like(rank).index_copy(0, order, rank - starts[key[order]])


def sum_outer(
    centre: torch.Tensor,
    n_atoms: int,
    slots: tuple[torch.Tensor, int],
    left: torch.Tensor,
    right: torch.Tensor,
) -> torch.Tensor:
    """``out[i, a, b] = Σ_{e: centre[e] = i} left[e, a] · right[e, b]`` (``[N, A, B]``), as one
    batched matrix product over each atom's padded edges (``slots`` from
    :func:`centre_slots`)."""
    flat, width = slots
    if width == 0:
        out = torch.zeros(
            n_atoms, left.shape[1], right.shape[1], dtype=left.dtype, device=left.device
        )
        return out.index_add(0, centre, left.unsqueeze(2) * right.unsqueeze(1))
    return padded_sum_outer(
        pad_rows(left, slots, n_atoms), pad_rows(right, slots, n_atoms), n_atoms
    )


def pad_rows(values: torch.Tensor, slots: tuple[torch.Tensor, int], n_atoms: int) -> torch.Tensor:
    """Per-edge ``values [E, C]`` in the padded layout of ``slots`` (:func:`centre_slots`,
    width > 0): ``[n_atoms * width, C]``, zero in the rows no edge fills."""
    flat, width = slots
    out = torch.zeros(n_atoms * width, values.shape[1], dtype=values.dtype, device=values.device)
    return out.index_copy(0, flat, values)


def padded_sum_outer(left: torch.Tensor, right: torch.Tensor, n_atoms: int) -> torch.Tensor:
    """:func:`sum_outer` of edges already in a padded layout (``[n_atoms * width, A]`` and
    ``[n_atoms * width, B]``, atom ``i`` owning rows ``i * width`` to ``i * width + width -
    1``): one batched matrix product."""
    width = left.shape[0] // n_atoms
    return torch.bmm(
        left.view(n_atoms, width, left.shape[1]).transpose(1, 2),
        right.view(n_atoms, width, right.shape[1]),
    )


def outer_grad(
    centre: torch.Tensor,
    n_atoms: int,
    slots: tuple[torch.Tensor, int],
    left: torch.Tensor,
    right: torch.Tensor,
    grad: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The derivative of a loss through :func:`sum_outer`: given ``grad [N, A, B]`` (the
    loss's gradient with respect to its output), ``d left [E, A]`` (``Σ_b grad[i, a, b] ·
    right[e, b]``) and ``d right [E, B]`` (``Σ_a left[e, a] · grad[i, a, b]``), ``i`` being each
    edge's centre; two batched matrix products over the same padded layout."""
    flat, width = slots
    if width == 0:
        per_edge = grad.index_select(0, centre)  # [E, A, B]
        d_left = torch.bmm(per_edge, right.unsqueeze(2)).squeeze(2)
        d_right = torch.bmm(left.unsqueeze(1), per_edge).squeeze(1)
        return d_left, d_right
    d_left, d_right = padded_outer_grad(
        pad_rows(left, slots, n_atoms), pad_rows(right, slots, n_atoms), grad
    )
    return d_left.index_select(0, flat), d_right.index_select(0, flat)


def padded_outer_grad(
    left: torch.Tensor, right: torch.Tensor, grad: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """:func:`outer_grad` of edges already in a padded layout (:func:`padded_sum_outer`):
    the gradients with respect to ``left`` and ``right``, in that layout."""
    n_atoms = grad.shape[0]
    width = left.shape[0] // n_atoms
    a = left.shape[1]
    b = right.shape[1]
    d_left = torch.bmm(right.view(n_atoms, width, b), grad.transpose(1, 2))
    d_right = torch.bmm(left.view(n_atoms, width, a), grad)
    return d_left.reshape(n_atoms * width, a), d_right.reshape(n_atoms * width, b)


def pair_groups(
    pair: torch.Tensor, n_pairs: int, sorted_above: int = 2048
) -> tuple[torch.Tensor, list[int]]:
    """How :func:`mix_by_pair` groups edges by element pair: above ``sorted_above`` edges,
    the order that sorts them by pair and each pair's edge count; up to it, nothing (an
    empty order: each edge's weight block is gathered). Computed once, it serves the
    mixing and its derivative alike."""
    if pair.shape[0] <= sorted_above:
        return pair[:0], []
    counts: list[int] = torch.bincount(pair, minlength=n_pairs).tolist()
    return torch.argsort(pair), counts


def mix_by_pair(
    basis: torch.Tensor,
    pair: torch.Tensor,
    weights: torch.Tensor,
    groups: tuple[torch.Tensor, list[int]] | None = None,
) -> torch.Tensor:
    """``out[e] = basis[e] @ weights[pair[e]]`` (``basis [E, K]``, ``weights [P, K, R]``):
    each edge's radial channels from its own element pair's weights. ``groups``
    (:func:`pair_groups`, computed here when not given) says how: few edges gather their
    weight blocks (a few ops); many are sorted by pair and each pair's block is one matrix
    product."""
    n_edges = basis.shape[0]
    n_pairs = weights.shape[0]
    if groups is None:
        groups = pair_groups(pair, n_pairs)
    order, counts = groups
    if len(counts) == 0:
        return torch.bmm(basis.unsqueeze(1), weights[pair]).squeeze(1)
    chunks = torch.split(basis.index_select(0, order), counts)
    pieces: list[torch.Tensor] = []
    for p in range(n_pairs):
        if counts[p] > 0:
            pieces.append(torch.mm(chunks[p], weights[p]))
    mixed = torch.cat(pieces)
    out = torch.zeros(n_edges, weights.shape[2], dtype=mixed.dtype, device=mixed.device)
    return out.index_copy(0, order, mixed)


def species_slots(
    centre: torch.Tensor, neighbour_species: torch.Tensor, species: torch.Tensor, n_species: int
) -> tuple[torch.Tensor, torch.Tensor, list[int], list[int]]:
    """A padded layout in which the element pair of every row is known by where it lies.

    Atoms are grouped by species (``order [N]``: the atom of each block position; atoms of
    species ``s`` fill positions ``blocks[s]`` to ``blocks[s + 1] - 1``), and each atom owns
    ``width = columns[-1]`` consecutive rows, of which columns ``columns[s]`` to
    ``columns[s + 1] - 1`` hold its neighbours of species ``s`` (as many columns as the
    most such neighbours any atom has). Edge ``e`` goes to row ``flat[e]``. So the rows of
    the element pair ``(a, s)`` are one slab, block ``a`` × columns of ``s``
    (:func:`mix_by_blocks`), and the per-atom sums are batched matrix products
    (:func:`padded_sum_outer`). ``columns`` is empty when that layout would be more than
    1.5 times the edge count (plus 1,024 rows): then callers fall back to
    :func:`centre_slots`, whose padding is narrower where atoms differ in neighbour
    elements (batches of different molecules: a training step on 32 organic molecules took
    about twice as long in this layout, 2.7 rows per edge, as in that one, 1.8; liquid
    water has 1.25 here)."""
    n_atoms = species.shape[0]
    n_edges = centre.shape[0]
    order = torch.argsort(species, stable=True)
    ends: list[int] = torch.cumsum(torch.bincount(species, minlength=n_species), 0).tolist()
    blocks = [0] + ends
    empty: list[int] = []
    if n_edges == 0:
        return centre, order, blocks, empty
    key = centre * n_species + neighbour_species
    counts = torch.bincount(key, minlength=n_atoms * n_species)
    widths = counts.view(n_atoms, n_species).max(dim=0).values
    right: list[int] = torch.cumsum(widths, 0).tolist()
    columns = [0] + right
    width = columns[-1]
    if 2 * n_atoms * width > 3 * n_edges + 2048:
        return centre, order, blocks, empty
    slot = rank_in_group(key, counts)
    position = torch.empty_like(order).index_copy(
        0, order, torch.arange(n_atoms, device=centre.device)
    )
    offsets = torch.cumsum(widths, 0) - widths
    return position[centre] * width + offsets[neighbour_species] + slot, order, blocks, columns


def mix_by_blocks(
    values: torch.Tensor, weights: torch.Tensor, blocks: list[int], columns: list[int]
) -> torch.Tensor:
    """:func:`mix_by_pair` of rows in :func:`species_slots`' layout (``values [N * width,
    C]``, ``weights [S*S, C, D]``): each element pair's slab is one matrix product, with
    nothing sorted, gathered or scattered."""
    n_species = len(blocks) - 1
    width = columns[-1]
    n_atoms = values.shape[0] // width
    grid = values.view(n_atoms, width, values.shape[1])
    out = torch.empty(n_atoms, width, weights.shape[2], dtype=values.dtype, device=values.device)
    for a in range(n_species):
        if blocks[a + 1] > blocks[a]:
            for s in range(n_species):
                if columns[s + 1] > columns[s]:
                    slab = grid[blocks[a] : blocks[a + 1], columns[s] : columns[s + 1]]
                    # One matrix product of the slab's rows (a batched one would multiply
                    # each atom's few rows on its own).
                    mixed = torch.mm(slab.reshape(-1, slab.shape[2]), weights[a * n_species + s])
                    out[blocks[a] : blocks[a + 1], columns[s] : columns[s + 1]] = mixed.view(
                        slab.shape[0], slab.shape[1], mixed.shape[1]
                    )
    return out.view(n_atoms * width, weights.shape[2])


def proxy_graph(
    centre: torch.Tensor,
    centre_species: torch.Tensor,
    neighbour_species: torch.Tensor,
    n_species: int,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The graph of a strictly local student's centre atoms: species ``[C + n_species]`` (the
    centres, then one proxy node per species) and ``edge_index [2, E]`` from each edge's
    centre (``centre [E]`` indexes ``centre_species [C]``) to the proxy node of its
    neighbour's species. An atom's energy depends on its own edges and its neighbours'
    species only, so neighbours (ghost atoms, periodic images) need no node of their own;
    the first ``C`` energies are the centres'."""
    n_centres = centre_species.shape[0]
    proxies = torch.arange(n_species, dtype=torch.long, device=centre_species.device)
    species = torch.cat([centre_species, proxies])
    return species, torch.stack([centre, neighbour_species + n_centres])


def row_sums(x: torch.Tensor) -> torch.Tensor:
    """``x.sum(dim=1)`` of a ``[E, C]`` tensor with few columns, as a matrix-vector product:
    on the CPU a sum over a dimension of 3 to 8 is several times slower."""
    return x @ torch.ones(x.shape[1], dtype=x.dtype, device=x.device)
