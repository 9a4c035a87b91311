"""The per-atom sums and the per-pair radial mixing equal their obvious forms, values and
gradients, on every path (grouped or scattered edges, the padded layout or its fallback,
gathered or sorted mixing), eager and scripted."""

from __future__ import annotations

import pytest
import torch

from mlff_distiller.models.segments import (
    centre_slots,
    mix_by_blocks,
    mix_by_pair,
    outer_grad,
    pad_rows,
    padded_sum_outer,
    species_slots,
    sum_outer,
)


def _edges(n_atoms: int, n_edges: int, grouped: bool, seed: int = 0) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    centre = torch.randint(0, n_atoms, (n_edges,), generator=generator)
    return torch.sort(centre).values if grouped else centre


def _obvious_sum(centre, n_atoms, left, right):
    out = torch.zeros(n_atoms, left.shape[1], right.shape[1], dtype=left.dtype)
    return out.index_add(0, centre, left.unsqueeze(2) * right.unsqueeze(1))


@pytest.mark.parametrize("grouped", [True, False])
@pytest.mark.parametrize("layout", ["padded", "fallback"])
@pytest.mark.parametrize("scripted", [False, True])
def test_sum_outer_equals_index_add_of_outer_products(grouped, layout, scripted):
    n_atoms, n_edges = 60, 700
    centre = _edges(n_atoms, n_edges, grouped)
    if layout == "fallback":  # one atom with most edges: padding would be far too wide
        centre = torch.where(torch.arange(n_edges) % 3 == 0, centre, torch.zeros_like(centre))
    generator = torch.Generator().manual_seed(1)
    left = torch.randn(n_edges, 5, dtype=torch.float64, generator=generator, requires_grad=True)
    right = torch.randn(n_edges, 4, dtype=torch.float64, generator=generator, requires_grad=True)
    slots_fn = torch.jit.script(centre_slots) if scripted else centre_slots
    sum_fn = torch.jit.script(sum_outer) if scripted else sum_outer
    slots = slots_fn(centre, n_atoms)
    assert (slots[1] == 0) == (layout == "fallback")
    if slots[1] > 0:  # every edge its own row: no two edges share one
        assert torch.unique(slots[0]).numel() == n_edges
    got = sum_fn(centre, n_atoms, slots, left, right)
    want = _obvious_sum(centre, n_atoms, left, right)
    torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-12)
    weight = torch.randn(want.shape, dtype=torch.float64, generator=generator)
    got_grads = torch.autograd.grad((got * weight).sum(), [left, right])
    want_grads = torch.autograd.grad((want * weight).sum(), [left, right])
    for a, b in zip(got_grads, want_grads, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("grouped", [True, False])
@pytest.mark.parametrize("layout", ["padded", "fallback"])
@pytest.mark.parametrize("scripted", [False, True])
def test_outer_grad_is_the_gradient_through_sum_outer(grouped, layout, scripted):
    """The written-out derivative (what the students' force path uses) equals autograd's."""
    n_atoms, n_edges = 50, 600
    centre = _edges(n_atoms, n_edges, grouped, seed=3)
    if layout == "fallback":
        centre = torch.where(torch.arange(n_edges) % 4 == 0, centre, torch.zeros_like(centre))
    generator = torch.Generator().manual_seed(4)
    left = torch.randn(n_edges, 6, dtype=torch.float64, generator=generator, requires_grad=True)
    right = torch.randn(n_edges, 10, dtype=torch.float64, generator=generator, requires_grad=True)
    grad = torch.randn(n_atoms, 6, 10, dtype=torch.float64, generator=generator)
    slots = centre_slots(centre, n_atoms)
    assert (slots[1] == 0) == (layout == "fallback")
    want = torch.autograd.grad(
        (_obvious_sum(centre, n_atoms, left, right) * grad).sum(), [left, right]
    )
    grad_fn = torch.jit.script(outer_grad) if scripted else outer_grad
    got = grad_fn(centre, n_atoms, slots, left.detach(), right.detach(), grad)
    for a, b in zip(got, want, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)


def test_sum_outer_of_no_edges_is_zero():
    centre = torch.zeros(0, dtype=torch.long)
    empty = torch.zeros(0, 3, dtype=torch.float64)
    out = sum_outer(centre, 4, centre_slots(centre, 4), empty, empty)
    assert out.shape == (4, 3, 3) and not bool(out.any())


@pytest.mark.parametrize("n_edges", [300, 5000])  # gathered, sorted by pair
@pytest.mark.parametrize("scripted", [False, True])
def test_mix_by_pair_uses_each_edges_own_pair_weights(n_edges, scripted):
    generator = torch.Generator().manual_seed(2)
    n_pairs, k, r = 9, 8, 6
    pair = torch.randint(0, n_pairs - 1, (n_edges,), generator=generator)  # pair 8 absent
    basis = torch.randn(n_edges, k, dtype=torch.float64, generator=generator, requires_grad=True)
    weights = torch.randn(n_pairs, k, r, dtype=torch.float64, generator=generator)
    weights.requires_grad_(True)
    mix = torch.jit.script(mix_by_pair) if scripted else mix_by_pair
    got = mix(basis, pair, weights)
    want = torch.einsum("ek,ekr->er", basis, weights[pair])
    torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-12)
    weight = torch.randn(want.shape, dtype=torch.float64, generator=generator)
    got_grads = torch.autograd.grad((got * weight).sum(), [basis, weights], create_graph=True)
    want_grads = torch.autograd.grad((want * weight).sum(), [basis, weights], create_graph=True)
    for a, b in zip(got_grads, want_grads, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)
    # Training differentiates forces again: the second derivative goes through as well.
    second = torch.autograd.grad(got_grads[0].square().sum(), [weights])[0]
    expected = torch.autograd.grad(want_grads[0].square().sum(), [weights])[0]
    torch.testing.assert_close(second, expected, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("grouped", [True, False])  # by (centre, neighbour species), or not
@pytest.mark.parametrize("scripted", [False, True])
def test_species_slots_put_each_edge_in_its_own_row_of_its_element_pairs_slab(grouped, scripted):
    n_atoms, n_edges, n_species = 70, 1500, 4
    generator = torch.Generator().manual_seed(6)
    centre = torch.randint(0, n_atoms, (n_edges,), generator=generator)
    neighbour = torch.randint(0, n_atoms, (n_edges,), generator=generator)
    species = torch.randint(0, n_species - 1, (n_atoms,), generator=generator)  # 3 absent
    if grouped:
        order = torch.argsort(centre * n_species + species[neighbour], stable=True)
        centre, neighbour = centre[order], neighbour[order]
    slots_fn = torch.jit.script(species_slots) if scripted else species_slots
    flat, order, blocks, columns = slots_fn(centre, species[neighbour], species, n_species)
    width = columns[-1]
    assert torch.unique(flat).numel() == n_edges  # no two edges share a row
    assert torch.equal(torch.sort(order).values, torch.arange(n_atoms))
    position = flat // width  # the block position of each edge's centre
    assert torch.equal(order[position], centre)
    column = flat % width
    for s in range(n_species):
        in_block = (position >= blocks[s]) & (position < blocks[s + 1])
        assert torch.equal(in_block, species[centre] == s)
        in_columns = (column >= columns[s]) & (column < columns[s + 1])
        assert torch.equal(in_columns, species[neighbour] == s)
    assert columns[4] == columns[3] and blocks[4] == blocks[3]  # species 3: no rows

    # The sums over a species layout are the obvious ones, in block order.
    values = torch.randn(n_edges, 5, dtype=torch.float64, generator=generator)
    other = torch.randn(n_edges, 3, dtype=torch.float64, generator=generator)
    padded = (flat, width)
    got = padded_sum_outer(
        pad_rows(values, padded, n_atoms), pad_rows(other, padded, n_atoms), n_atoms
    )
    want = _obvious_sum(centre, n_atoms, values, other)[order]
    torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-12)

    # Mixing by slabs is mixing each row by its own element pair's weights.
    weights = torch.randn(n_species * n_species, 5, 6, dtype=torch.float64, generator=generator)
    mix = torch.jit.script(mix_by_blocks) if scripted else mix_by_blocks
    got = mix(pad_rows(values, padded, n_atoms), weights, blocks, columns)[flat]
    pair = species[centre] * n_species + species[neighbour]
    torch.testing.assert_close(got, mix_by_pair(values, pair, weights), rtol=1e-12, atol=1e-12)


def test_species_slots_fall_back_when_padding_would_be_far_too_wide():
    n_atoms = 600
    centre = torch.cat([torch.zeros(200, dtype=torch.long), torch.arange(1, 101)])
    neighbour = torch.cat([torch.arange(1, 201), torch.zeros(100, dtype=torch.long)])
    species = torch.zeros(n_atoms, dtype=torch.long)
    flat, order, blocks, columns = species_slots(centre, species[neighbour], species, 2)
    assert columns == [] and blocks == [0, n_atoms, n_atoms]


@pytest.mark.parametrize("n_vectors", [7, 5000])
@pytest.mark.parametrize("shape", ["rows", "batched"])
def test_squares_and_their_gradient_on_both_sides_of_the_size_switch(n_vectors, shape):
    """``MomentStudent._squares`` is v ⊗ v's xx, yy, zz, xy, xz, yz, and
    ``_squares_gradient`` its gradient by autograd, as ``M v`` (few vectors) and written per
    component (many), for rows ``[E, 3]`` and batches ``[N, R, 3]`` alike."""
    from mlff_distiller.models import build_model

    model = build_model("tiny", ["H", "O"]).double()
    generator = torch.Generator().manual_seed(n_vectors)
    size = (n_vectors, 3) if shape == "rows" else (n_vectors // 7 + 1, 7, 3)
    v = torch.randn(size, generator=generator, dtype=torch.float64, requires_grad=True)
    g = torch.randn(size[:-1] + (6,), generator=generator, dtype=torch.float64)
    x, y, z = v[..., 0], v[..., 1], v[..., 2]
    expected = torch.stack([x * x, y * y, z * z, x * y, x * z, y * z], dim=-1)
    squares = model._squares(v)
    torch.testing.assert_close(squares, expected, rtol=0, atol=0)
    (autograd,) = torch.autograd.grad((g * squares).sum(), v)
    torch.testing.assert_close(model._squares_gradient(v.detach(), g), autograd)
