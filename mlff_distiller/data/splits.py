"""Reproducible train/validation/test splits, by group (molecule) or by frame."""

from __future__ import annotations

import hashlib

from ase import Atoms

from ..errors import InputError

SPLIT_NAMES = ("train", "val", "test")


def split_indices(
    frames: list[Atoms],
    fractions: tuple[float, float, float] = (0.8, 0.1, 0.1),
    by: str = "group",
    seed: int = 0,
) -> dict[str, list[int]]:
    """Indices of ``frames`` for ``train``, ``val`` and ``test``.

    Parameters
    ----------
    frames
        Frames with ``atoms.info["group"]`` (what :func:`read_dataset` returns).
    fractions
        Target fractions of frames; they must sum to 1. A zero fraction gives an empty split.
    by
        ``"group"``: whole groups (molecules, boxes) go to one split, so a test molecule is
        never seen in training. ``"frame"``: frames are shuffled individually.
    seed
        The same seed and the same set of groups give the same split, whatever the order
        of the frames.

    Examples
    --------
    >>> from ase import Atoms
    >>> frames = [Atoms("H2", info={"group": g}) for g in "aabbccddee"]
    >>> s = split_indices(frames, (0.6, 0.2, 0.2), by="group")
    >>> sorted(len(v) for v in s.values())
    [2, 2, 6]
    """
    fractions = tuple(float(f) for f in fractions)
    if len(fractions) != 3 or min(fractions) < 0 or abs(sum(fractions) - 1.0) > 1e-6:
        raise InputError(
            f"fractions must be three non-negative numbers summing to 1, got {fractions}"
        )
    if by == "frame":
        keys = [f"frame:{i}" for i in range(len(frames))]
    elif by == "group":
        keys = []
        for i, atoms in enumerate(frames):
            if "group" not in atoms.info:
                raise InputError(
                    f"frame {i} has no info['group']; split by='frame' or set a group per structure"
                )
            keys.append(str(atoms.info["group"]))
    else:
        raise InputError(f"by must be 'group' or 'frame', got {by!r}")

    units = sorted(set(keys), key=lambda k: _hash(k, seed))
    sizes = dict.fromkeys(units, 0)
    for k in keys:
        sizes[k] += 1
    active = [i for i, f in enumerate(fractions) if f > 0]
    if len(units) < len(active):
        raise InputError(
            f"cannot split {len(units)} {by}(s) into {len(active)} non-empty parts; "
            "add structures, use by='frame', or set a fraction to 0"
        )
    # Walk the shuffled units and fill each split up to its target number of frames; move
    # on early when the units left are only just enough to give every later split one.
    targets = [f * len(keys) for f in fractions]
    counts = [0, 0, 0]
    assignment: dict[str, int] = {}
    pos = 0
    for n, unit in enumerate(units):
        units_left = len(units) - n
        while (
            pos < len(active) - 1
            and counts[active[pos]] > 0
            and (counts[active[pos]] >= targets[active[pos]] or units_left <= len(active) - 1 - pos)
        ):
            pos += 1
        assignment[unit] = active[pos]
        counts[active[pos]] += sizes[unit]
    result: dict[str, list[int]] = {name: [] for name in SPLIT_NAMES}
    for i, k in enumerate(keys):
        result[SPLIT_NAMES[assignment[k]]].append(i)
    return result


def _hash(key: str, seed: int) -> str:
    return hashlib.sha256(f"{seed}:{key}".encode()).hexdigest()
