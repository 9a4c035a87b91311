"""Figures of a structure comparison: teacher against student, one PNG per system."""

from __future__ import annotations

from pathlib import Path

from ...errors import InputError
from ...plots import figure, save_figure
from .topology import ARITY

#: Unit of each measured kind.
UNITS = {"bonds": "Å", "angles": "°", "dihedrals": "°"}


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
