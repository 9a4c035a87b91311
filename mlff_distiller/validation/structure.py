"""Structure of teacher and student trajectories: radial distribution functions for liquids,
distributions of bonds, angles and dihedrals (and peptide phi/psi) for molecules.

Both trajectories start from the same structure, so the covalent topology is taken once, from
the first teacher frame, and measured in every frame of both. Distances and angles are computed
with MDAnalysis, with the minimum image for periodic frames.

>>> from mlff_distiller.validation.structure import compare_structures, plot_structures
>>> comparison = compare_structures(teacher_frames, student_frames)  # doctest: +SKIP
>>> plot_structures(comparison, "structure.png", "water-32")  # doctest: +SKIP
"""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
from ase import Atoms
from ase.data import atomic_numbers, chemical_symbols

from ..errors import InputError
from ..plots import figure, save_figure

#: Number of atoms in each term of a topology kind.
ARITY = {"bonds": 2, "angles": 3, "dihedrals": 4}
#: Unit of each measured kind.
UNITS = {"bonds": "Å", "angles": "°", "dihedrals": "°"}
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


def bonded_terms(atoms: Atoms, scale: float = 1.2) -> dict[str, np.ndarray]:
    """Covalent topology from covalent radii: bonds, angles and proper dihedrals.

    Two atoms are bonded when closer than ``scale`` times the sum of their covalent radii
    (``ase.neighborlist.natural_cutoffs``), across the cell boundary if periodic. Angles are
    ``i-j-k`` with ``i < k`` both bonded to ``j``; dihedrals are ``i-j-k-l`` along bonded
    chains, once per chain (``j < k``), without the degenerate ``i == l`` of three-rings.

    Parameters
    ----------
    atoms
        A molecule or periodic structure.
    scale
        Factor on the covalent radii.

    Returns
    -------
    dict
        ``{"bonds": int [B, 2], "angles": int [A, 3], "dihedrals": int [D, 4]}``, sorted rows.

    Examples
    --------
    >>> from ase.build import molecule
    >>> {k: len(v) for k, v in bonded_terms(molecule("CH3CH2OH")).items()}
    {'bonds': 8, 'angles': 13, 'dihedrals': 12}
    """
    from ..data.structures import covalent_bonds

    bonds = covalent_bonds(atoms, scale)
    neighbours: list[set[int]] = [set() for _ in range(len(atoms))]
    for i, j in bonds:
        neighbours[i].add(j)
        neighbours[j].add(i)
    angles = [
        (i, j, k)
        for j in range(len(atoms))
        for i, k in itertools.combinations(sorted(neighbours[j]), 2)
    ]
    dihedrals = [
        (i, j, k, m)
        for j, k in bonds
        for i in sorted(neighbours[j] - {k})
        for m in sorted(neighbours[k] - {j})
        if i != m
    ]
    return {
        "bonds": _index_array(bonds, 2),
        "angles": _index_array(sorted(angles), 3),
        "dihedrals": _index_array(dihedrals, 4),
    }


def backbone_dihedrals(
    atoms: Atoms, terms: dict[str, np.ndarray] | None = None
) -> dict[str, np.ndarray]:
    """Peptide backbone phi and psi quadruples, found from the bond graph.

    A carbonyl C is a carbon bonded to a terminal O (an O with one neighbour). A residue is a
    chain N-CA-C of a nitrogen, a tetrahedral carbon CA (four neighbours, as every amino
    acid's alpha carbon, glycine's included) and a carbonyl C; an sp2 carbon between an N and
    a C=O, as in the rings of caffeine or uracil, is not a backbone. Its phi is ``C(prev)-N-CA-C``
    when N is an amide N (bonded to another carbonyl C, ``C(prev)``); its psi is
    ``N-CA-C-N(next)`` when C is bonded to another nitrogen ``N(next)``. So the N-terminal
    residue of an uncapped peptide has a psi but no phi, as in the usual definition.

    Parameters
    ----------
    atoms
        The structure whose bonds define the graph.
    terms
        Output of :func:`bonded_terms` for ``atoms``; computed if not given.

    Returns
    -------
    dict
        ``{"phi": int [P, 4], "psi": int [Q, 4]}``; shape ``(0, 4)`` for a non-peptide.

    Examples
    --------
    >>> from ase.build import molecule
    >>> {k: v.shape for k, v in backbone_dihedrals(molecule("CH3CH2OH")).items()}
    {'phi': (0, 4), 'psi': (0, 4)}
    """
    bonds = bonded_terms(atoms)["bonds"] if terms is None else np.asarray(terms["bonds"])
    neighbours: list[set[int]] = [set() for _ in range(len(atoms))]
    for i, j in bonds.tolist():
        neighbours[i].add(j)
        neighbours[j].add(i)
    symbols = atoms.get_chemical_symbols()

    def carbonyl(c: int) -> bool:
        return symbols[c] == "C" and any(
            symbols[o] == "O" and len(neighbours[o]) == 1 for o in neighbours[c]
        )

    phi, psi = [], []
    for n in range(len(atoms)):
        if symbols[n] != "N":
            continue
        for ca in sorted(neighbours[n]):
            if symbols[ca] != "C" or len(neighbours[ca]) != 4:
                continue
            for c in sorted(neighbours[ca] - {n}):
                if not carbonyl(c):
                    continue
                phi += [(prev, n, ca, c) for prev in sorted(neighbours[n] - {ca}) if carbonyl(prev)]
                psi += [
                    (n, ca, c, nxt) for nxt in sorted(neighbours[c] - {ca}) if symbols[nxt] == "N"
                ]
    return {"phi": _index_array(sorted(phi), 4), "psi": _index_array(sorted(psi), 4)}


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


def plot_structures(comparison: dict, path: str | Path, title: str) -> Path:
    """Plot teacher against student from a :func:`compare_structures` result, as one PNG.

    RDF curves for a liquid, histograms of bonds, angles, dihedrals (and phi, psi) for a
    molecule, with the distances in each subplot's title. The file is written atomically.

    Parameters
    ----------
    comparison
        Output of :func:`compare_structures` (also after a JSON round trip).
    path
        The PNG to write; its folder is created if needed.
    title
        Title of the figure, e.g. the system's name.

    Returns
    -------
    pathlib.Path
        ``path``.
    """
    path = Path(path)
    if comparison.get("kind") == "liquid":
        panels = list(comparison["rdf"].items())
    elif comparison.get("kind") == "molecule":
        panels = [(name, comparison[name]) for name in (*ARITY, "phi", "psi") if name in comparison]
    else:
        raise InputError(
            f"comparison['kind'] must be 'liquid' or 'molecule', got {comparison.get('kind')!r}"
        )
    if not panels:
        raise InputError(f"nothing to plot for {title!r}: the comparison has no distributions")

    columns = min(3, len(panels))
    rows = -(-len(panels) // columns)
    fig, axes = figure((4.2 * columns, 3.4 * rows), rows, columns, squeeze=False)
    axes = axes.ravel()
    for ax, (name, result) in zip(axes, panels):
        if comparison["kind"] == "liquid":
            ax.plot(result["r"], result["g_reference"], label="teacher")
            ax.plot(result["r"], result["g_sample"], "--", label="student")
            ax.axhline(1.0, color="grey", lw=0.5)
            ax.set_xlabel("r (Å)")
            ax.set_ylabel(f"g(r) {name}")
            ax.set_title(f"{name}  rel. L1 {result['distance']:.3f}")
        else:
            unit = UNITS.get(name, "°")
            ax.stairs(result["p_reference"], result["bin_edges"], label="teacher")
            ax.stairs(result["p_sample"], result["bin_edges"], ls="--", label="student")
            ax.set_xlabel(f"{name} ({unit})")
            ax.set_ylabel("fraction")
            ax.set_title(
                f"{name}  TV {result['total_variation']:.3f}  W {result['wasserstein']:.3g} {unit}"
            )
        ax.legend(fontsize="small")
    for ax in axes[len(panels) :]:
        ax.set_visible(False)
    fig.suptitle(title)
    fig.tight_layout()
    return save_figure(fig, path)


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


def _index_array(rows: list[tuple[int, ...]], width: int) -> np.ndarray:
    return np.array(rows, dtype=np.int64).reshape(-1, width)


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
