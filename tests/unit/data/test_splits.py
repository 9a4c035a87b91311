"""Train/validation/test splits: grouped by molecule, reproducible, order-independent."""

from __future__ import annotations

import pytest
from ase import Atoms

from mlff_distiller.data import split_indices


def _frames(groups: str) -> list[Atoms]:
    return [Atoms("H2", positions=[[0, 0, 0], [0, 0, 0.74]], info={"group": g}) for g in groups]


def test_grouped_split_never_shares_a_group_between_splits():
    frames = _frames("aaabbbcccdddeeefffggghhhiiijjj")
    splits = split_indices(frames, (0.6, 0.2, 0.2), by="group", seed=1)
    groups = {name: {frames[i].info["group"] for i in idx} for name, idx in splits.items()}
    assert not groups["train"] & groups["val"]
    assert not groups["train"] & groups["test"]
    assert not groups["val"] & groups["test"]
    assert sorted(i for idx in splits.values() for i in idx) == list(range(len(frames)))
    assert [len(splits[k]) for k in ("train", "val", "test")] == [18, 6, 6]


def test_split_is_reproducible_and_independent_of_frame_order():
    frames = _frames("abcdefghijklmnopqrstuvwxyz")
    first = split_indices(frames, seed=4)
    reversed_frames = frames[::-1]
    second = split_indices(reversed_frames, seed=4)
    for name in first:
        assert {frames[i].info["group"] for i in first[name]} == {
            reversed_frames[i].info["group"] for i in second[name]
        }
    assert split_indices(frames, seed=5) != first


def test_every_requested_split_gets_a_group_even_when_groups_are_few():
    splits = split_indices(_frames("aaaaaaaabc"), (0.8, 0.1, 0.1), by="group")
    assert all(splits[name] for name in ("train", "val", "test"))
    splits = split_indices(_frames("ab"), (0.5, 0.5, 0.0), by="group")
    assert splits["test"] == [] and len(splits["train"]) == len(splits["val"]) == 1


def test_frame_split():
    splits = split_indices(_frames("a" * 100), (0.8, 0.1, 0.1), by="frame", seed=0)
    assert [len(splits[k]) for k in ("train", "val", "test")] == [80, 10, 10]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"fractions": (0.5, 0.2, 0.2)}, "summing to 1"),
        ({"fractions": (1.2, -0.1, -0.1)}, "non-negative"),
        ({"by": "molecule"}, "by must be"),
    ],
)
def test_bad_split_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        split_indices(_frames("abc"), **kwargs)


def test_too_few_groups_and_missing_groups():
    with pytest.raises(ValueError, match="cannot split 2 group"):
        split_indices(_frames("ab"))
    with pytest.raises(ValueError, match="has no info\\['group'\\]"):
        split_indices([Atoms("H")])
