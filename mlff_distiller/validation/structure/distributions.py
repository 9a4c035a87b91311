"""Distributions of teacher and student trajectories and how far apart they are: radial
distribution functions of liquids, distributions of the bonded terms of molecules, with
MDAnalysis (the minimum image for periodic frames)."""

from __future__ import annotations

import itertools

import numpy as np
from ase import Atoms
from ase.data import atomic_numbers, chemical_symbols

from ...errors import InputError
from .topology import ARITY, backbone_dihedrals, bonded_terms

#: Bins of the histograms behind the total variation distance.
HISTOGRAM_BINS = 50

#: Largest default RDF range (Å).
RDF_R_MAX = 8.0


def radial_distribution(
    frames: list[Atoms], pair: tuple[str, str], r_max: float | None = None, bins: int = 100
) -> tuple[np.ndarray, np.ndarray]:
    """Radial distribution function g(r) of an element pair, averaged over periodic frames.

    Computed by MDAnalysis' ``InterRDF`` on an in-memory Universe built from the frames (any
    right-handed cell, triclinic included). For a same-element pair, an atom's distance to
    itself is excluded, so g(r) tends to 1 at large r in a homogeneous liquid.

    Parameters
    ----------
    frames
        Periodic frames with the same atoms in the same order.
    pair
        Element symbols, e.g. ``("O", "H")``.
    r_max
        Upper end of the range (Å). Defaults to the smaller of half the shortest cell height
        (over all frames) and 8 Å; larger values are refused, as the minimum image would miss
        pairs.
    bins
        Number of bins on ``[0, r_max]``.

    Returns
    -------
    r, g
        Bin centres (Å) and g(r), both of length ``bins``.

    Examples
    --------
    >>> from mlff_distiller.data import water_box
    >>> r, g = radial_distribution([water_box(32)], ("O", "O"))
    >>> round(float(r[g.argmax()]), 1)
    2.8
    """
    import MDAnalysis as mda
    from MDAnalysis.analysis.rdf import InterRDF
    from MDAnalysis.coordinates.memory import MemoryReader

    numbers = _same_atoms(frames, "frames")
    if not all(_periodic(atoms) for atoms in frames):
        raise InputError("radial_distribution needs periodic frames (a cell and pbc=True)")
    largest = _largest_r_max(frames)
    if r_max is None:
        r_max = largest
    elif not 0 < r_max <= largest + 1e-9:
        raise InputError(
            f"r_max must be in (0, {largest:.3f}] Å (half the shortest cell height), got {r_max}"
        )
    if bins < 1:
        raise InputError(f"bins must be a positive integer, got {bins}")
    masks = []
    for symbol in pair:
        if symbol not in atomic_numbers:
            raise InputError(f"unknown element {symbol!r} in pair {pair}")
        masks.append(numbers == atomic_numbers[symbol])
    same = pair[0] == pair[1]
    if masks[0].sum() < (2 if same else 1) or masks[1].sum() < 1:
        raise InputError(f"pair {pair} needs more atoms: the frames have too few of these elements")

    boxes = [_box(atoms) for atoms in frames]
    universe = mda.Universe.empty(len(numbers), trajectory=False)
    universe.load_new(
        np.stack([positions for positions, _ in boxes]).astype(np.float32),
        format=MemoryReader,
        dimensions=np.stack([dimensions for _, dimensions in boxes]),
    )
    rdf = InterRDF(
        universe.atoms[masks[0]],
        universe.atoms[masks[1]],
        nbins=bins,
        range=(0.0, float(r_max)),
        exclusion_block=(1, 1) if same else None,
    ).run()
    return np.asarray(rdf.results.bins, dtype=float), np.asarray(rdf.results.rdf, dtype=float)


def measure(frames: list[Atoms], indices: np.ndarray, kind: str) -> np.ndarray:
    """Bond lengths (Å), angles (degrees) or dihedrals (degrees, in (-180, 180]) in every frame.

    Computed with MDAnalysis' ``calc_bonds``, ``calc_angles`` and ``calc_dihedrals``, with the
    minimum image for periodic frames. The dihedral sign follows the IUPAC convention.

    Parameters
    ----------
    frames
        Frames with the same atoms in the same order.
    indices
        Atom indices, ``[M, 2]`` for ``"bonds"``, ``[M, 3]`` for ``"angles"``, ``[M, 4]`` for
        ``"dihedrals"`` (as from :func:`bonded_terms`).
    kind
        ``"bonds"``, ``"angles"`` or ``"dihedrals"``.

    Returns
    -------
    numpy.ndarray
        ``len(frames) * M`` values, frame by frame.

    Examples
    --------
    >>> from ase.build import molecule
    >>> water = molecule("H2O")
    >>> measure([water], np.array([[1, 0, 2]]), "angles").round(1)
    array([104.])
    """
    from MDAnalysis.lib.distances import calc_angles, calc_bonds, calc_dihedrals

    if kind not in ARITY:
        raise InputError(f"kind must be one of {', '.join(ARITY)}, got {kind!r}")
    numbers = _same_atoms(frames, "frames")
    indices = np.asarray(indices, dtype=np.int64).reshape(-1, ARITY[kind])
    if indices.size and not (0 <= indices.min() and indices.max() < len(numbers)):
        raise InputError(f"indices must be atom indices in [0, {len(numbers)}) for these frames")
    if not len(indices):
        return np.zeros(0)
    function = {"bonds": calc_bonds, "angles": calc_angles, "dihedrals": calc_dihedrals}[kind]
    values = []
    for atoms in frames:
        positions, dimensions = _box(atoms) if _periodic(atoms) else (atoms.positions, None)
        columns = [np.ascontiguousarray(positions[indices[:, c]]) for c in range(ARITY[kind])]
        values.append(np.asarray(function(*columns, box=dimensions), dtype=float))
    result = np.concatenate(values)
    if kind == "angles":
        return np.degrees(result)
    if kind == "dihedrals":
        return _wrap_degrees(np.degrees(result))
    return result


def distribution_distance(reference: np.ndarray, sample: np.ndarray, kind: str) -> dict[str, float]:
    """How far two samples of one quantity are apart.

    The total variation distance ``0.5 * sum |p - q|`` is taken over a shared histogram of
    :data:`HISTOGRAM_BINS` bins: ``[-180, 180]`` for dihedrals, else from the smallest to the
    largest value of both samples. The Wasserstein-1 (earth mover's) distance is
    ``scipy.stats.wasserstein_distance``, except for dihedrals, where it is the exact
    distance on the circle: the L1 norm of the difference of the two cumulative distributions,
    less its weighted median (Rabin, Delon & Gousseau, J. Math. Imaging Vis. 41, 147 (2011)),
    so samples on either side of ±180° are close. Dihedral means are circular means.

    Parameters
    ----------
    reference, sample
        Values of the quantity (Å for bonds, degrees for angles and dihedrals).
    kind
        ``"bonds"``, ``"angles"`` or ``"dihedrals"``.

    Returns
    -------
    dict
        ``total_variation`` (0 for identical histograms, 1 for disjoint ones),
        ``wasserstein`` (in the quantity's unit), ``mean_reference``, ``mean_sample``.

    Examples
    --------
    >>> d = distribution_distance(np.array([1.0, 1.1]), np.array([1.1, 1.2]), "bonds")
    >>> round(d["wasserstein"], 6), round(d["total_variation"], 6)
    (0.1, 0.5)
    """
    from scipy.stats import wasserstein_distance

    reference, sample, edges, p, q = _histograms(reference, sample, kind)
    if kind == "dihedrals":
        wasserstein = _circular_wasserstein(reference, sample)
        means = [_circular_mean(reference), _circular_mean(sample)]
    else:
        wasserstein = float(wasserstein_distance(reference, sample))
        means = [float(reference.mean()), float(sample.mean())]
    return {
        "total_variation": float(0.5 * np.abs(p - q).sum()),
        "wasserstein": wasserstein,
        "mean_reference": means[0],
        "mean_sample": means[1],
    }


def rdf_distance(r: np.ndarray, g_reference: np.ndarray, g_sample: np.ndarray) -> float:
    """Relative L1 distance of two RDFs on the same grid.

    ``integral |g_sample - g_reference| dr / integral |g_reference| dr`` (trapezoid rule):
    0 for identical curves, 1 for a zero ``g_sample``.

    Examples
    --------
    >>> r = np.linspace(0.0, 5.0, 11)
    >>> round(rdf_distance(r, np.ones(11), np.full(11, 1.1)), 12)
    0.1
    """
    r, g_reference, g_sample = (np.asarray(a, dtype=float) for a in (r, g_reference, g_sample))
    if not r.ndim == 1 or not r.shape == g_reference.shape == g_sample.shape or r.size < 2:
        raise InputError(
            f"r, g_reference and g_sample must be 1-D of one length >= 2, got shapes "
            f"{r.shape}, {g_reference.shape}, {g_sample.shape}"
        )
    norm = np.trapezoid(np.abs(g_reference), r)
    if not norm > 0:
        raise InputError("g_reference is zero everywhere; the relative distance is undefined")
    return float(np.trapezoid(np.abs(g_sample - g_reference), r) / norm)


def compare_structures(reference: list[Atoms], sample: list[Atoms]) -> dict:
    """Compare the structure of teacher frames (``reference``) and student frames (``sample``).

    Both are frames of one system (same atoms, same order). Periodic systems (``"liquid"``) get
    the RDF of every unordered element pair (heavier element first, e.g. ``"O-H"``; a
    same-element pair needs two atoms), on one grid for both. Molecules get distributions of
    bonds, angles and dihedrals of the topology of ``reference[0]`` (:func:`bonded_terms`), and
    of phi and psi if :func:`backbone_dihedrals` finds any; kinds without terms are left out.

    Returns
    -------
    dict
        JSON-serialisable: ``{"kind": "liquid", "rdf": {"O-O": {"r", "g_reference",
        "g_sample", "distance"}, ...}}`` or ``{"kind": "molecule", "bonds": {...},
        "angles": {...}, "dihedrals": {...}, "phi": {...}, "psi": {...}}``, where each
        distribution has the keys of :func:`distribution_distance` plus ``n_terms``,
        ``bin_edges``, ``p_reference`` and ``p_sample`` (the histograms, for plotting).

    Examples
    --------
    >>> from mlff_distiller.data import water_box
    >>> comparison = compare_structures([water_box(32)], [water_box(32)])
    >>> comparison["kind"], sorted(comparison["rdf"]), comparison["rdf"]["O-O"]["distance"]
    ('liquid', ['H-H', 'O-H', 'O-O'], 0.0)
    """
    if not reference or not sample:
        raise InputError("compare_structures needs at least one reference and one sample frame")
    numbers = _same_atoms([*reference, *sample], "reference and sample")
    periodic = {_periodic(atoms) for atoms in [*reference, *sample]}
    if len(periodic) > 1:
        raise InputError("reference and sample mix periodic and non-periodic frames")
    if periodic.pop():
        r_max = _largest_r_max([*reference, *sample])
        elements = sorted(set(numbers.tolist()), reverse=True)
        rdf = {}
        for a, b in itertools.combinations_with_replacement(elements, 2):
            if a == b and np.count_nonzero(numbers == a) < 2:
                continue
            pair = (chemical_symbols[a], chemical_symbols[b])
            r, g_reference = radial_distribution(reference, pair, r_max)
            _, g_sample = radial_distribution(sample, pair, r_max)
            rdf["-".join(pair)] = {
                "r": r.tolist(),
                "g_reference": g_reference.tolist(),
                "g_sample": g_sample.tolist(),
                "distance": rdf_distance(r, g_reference, g_sample),
            }
        return {"kind": "liquid", "rdf": rdf}

    terms = bonded_terms(reference[0])
    quadruples = {**terms, **backbone_dihedrals(reference[0], terms)}
    comparison: dict = {"kind": "molecule"}
    for name, indices in quadruples.items():
        if not len(indices):
            continue
        kind = name if name in ARITY else "dihedrals"
        values = measure(reference, indices, kind), measure(sample, indices, kind)
        _, _, edges, p, q = _histograms(*values, kind)
        comparison[name] = {
            **distribution_distance(*values, kind),
            "n_terms": len(indices),
            "bin_edges": edges.tolist(),
            "p_reference": p.tolist(),
            "p_sample": q.tolist(),
        }
    return comparison


def _periodic(atoms: Atoms) -> bool:
    if atoms.pbc.all():
        if abs(np.linalg.det(atoms.cell.array)) < 1e-9:
            raise InputError("a periodic frame has a degenerate cell; set atoms.cell")
        return True
    if atoms.pbc.any():
        raise InputError(f"partly periodic frames are not supported (pbc={atoms.pbc.tolist()})")
    return False


def _same_atoms(frames: list[Atoms], what: str) -> np.ndarray:
    if not frames:
        raise InputError(f"{what}: no frames given")
    numbers = frames[0].numbers
    if any(not np.array_equal(atoms.numbers, numbers) for atoms in frames[1:]):
        raise InputError(f"{what}: every frame must have the same atoms in the same order")
    return numbers


def _box(atoms: Atoms) -> tuple[np.ndarray, np.ndarray]:
    """Positions rotated into MDAnalysis' cell orientation (a along x, b in the xy plane) and
    the box ``[a, b, c, alpha, beta, gamma]``."""
    from ase.geometry import cellpar_to_cell

    if np.linalg.det(atoms.cell.array) < 0:
        raise InputError("left-handed cells are not supported; swap two cell vectors")
    dimensions = atoms.cell.cellpar()
    positions = atoms.cell.scaled_positions(atoms.positions) @ cellpar_to_cell(dimensions)
    return positions, dimensions


def _largest_r_max(frames: list[Atoms]) -> float:
    heights = [1.0 / np.linalg.norm(atoms.cell.reciprocal(), axis=1).max() for atoms in frames]
    return float(min(0.5 * min(heights), RDF_R_MAX))


def _wrap_degrees(angles: np.ndarray) -> np.ndarray:
    """Angles in (-180, 180]."""
    return angles - 360.0 * np.ceil((angles - 180.0) / 360.0)


def _histograms(
    reference: np.ndarray, sample: np.ndarray, kind: str
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Checked samples (dihedrals wrapped), shared bin edges and the fraction in each bin."""
    if kind not in ARITY:
        raise InputError(f"kind must be one of {', '.join(ARITY)}, got {kind!r}")
    arrays = []
    for name, values in (("reference", reference), ("sample", sample)):
        values = np.asarray(values, dtype=float).ravel()
        if not values.size or not np.isfinite(values).all():
            raise InputError(f"{name} must be a non-empty array of finite values")
        arrays.append(_wrap_degrees(values) if kind == "dihedrals" else values)
    reference, sample = arrays
    if kind == "dihedrals":
        low, high = -180.0, 180.0
    else:
        low, high = min(reference.min(), sample.min()), max(reference.max(), sample.max())
        if high - low < 1e-12:
            low, high = low - 0.5, high + 0.5
    edges = np.linspace(low, high, HISTOGRAM_BINS + 1)
    p = np.histogram(reference, edges)[0] / reference.size
    q = np.histogram(sample, edges)[0] / sample.size
    return reference, sample, edges, p, q


def _circular_wasserstein(reference: np.ndarray, sample: np.ndarray) -> float:
    """Wasserstein-1 distance (degrees) of two samples of angles on the circle."""
    points = np.sort(np.concatenate([reference, sample]))
    cdf_difference = (
        np.searchsorted(np.sort(reference), points[:-1], side="right") / reference.size
        - np.searchsorted(np.sort(sample), points[:-1], side="right") / sample.size
    )
    # The arc through ±180° outside all points, where the two cumulative distributions agree.
    cdf_difference = np.append(cdf_difference, 0.0)
    widths = np.append(np.diff(points), 360.0 - (points[-1] - points[0]))
    order = np.argsort(cdf_difference)
    cumulative = np.cumsum(widths[order])
    median = cdf_difference[order][np.searchsorted(cumulative, 0.5 * cumulative[-1])]
    return float(np.sum(widths * np.abs(cdf_difference - median)))


def _circular_mean(angles: np.ndarray) -> float:
    radians = np.radians(angles)
    mean = np.degrees(np.arctan2(np.sin(radians).mean(), np.cos(radians).mean()))
    return float(_wrap_degrees(mean))
