"""The numbers of the validation report, each from recorded arrays so a test can redo them."""

from __future__ import annotations

import numpy as np
from ase.data import chemical_symbols


def energy_drift(times_ps: np.ndarray, total_energy: np.ndarray, n_atoms: int) -> dict:
    """Drift of an NVE run: the slope of a least-squares line through the total energy
    (meV/atom/ps) with its standard error, the largest excursion from the first value
    (meV/atom) and the standard deviation (meV/atom).

    Over a short run the slope mostly measures the integrator's bounded O(dt²) oscillation of
    the total energy, not a drift; its standard error says how much of it that is.
    """
    times = np.asarray(times_ps, dtype=float)
    per_atom = 1000.0 * (np.asarray(total_energy) - total_energy[0]) / n_atoms
    (slope, intercept), cov = np.polyfit(times, per_atom, 1, cov="unscaled")
    residual = per_atom - (slope * times + intercept)
    dof = max(len(times) - 2, 1)
    stderr = float(np.sqrt(cov[0, 0] * (residual @ residual) / dof))
    return {
        "energy_drift_meV_per_atom_ps": float(slope),
        "energy_drift_stderr_meV_per_atom_ps": stderr,
        "max_excursion_meV_per_atom": float(np.abs(per_atom).max()),
        "total_energy_std_meV_per_atom": float(per_atom.std()),
        "duration_ps": float(times[-1] - times[0]),
    }


def force_errors(numbers: np.ndarray, reference: np.ndarray, predicted: np.ndarray) -> dict:
    """RMSE and MAE of force components (eV/Å), overall and per element, over frames
    ``[F, N, 3]`` of one system (``numbers [N]``)."""
    diff = np.asarray(predicted) - np.asarray(reference)
    out = {
        "force_rmse_eV_per_A": float(np.sqrt(np.mean(diff**2))),
        "force_mae_eV_per_A": float(np.mean(np.abs(diff))),
        "reference_force_rms_eV_per_A": float(np.sqrt(np.mean(np.asarray(reference) ** 2))),
        "frames": int(diff.shape[0]),
        "per_element": {},
    }
    for z in sorted(set(int(n) for n in numbers)):
        d = diff[:, np.asarray(numbers) == z]
        out["per_element"][chemical_symbols[z]] = {
            "force_rmse_eV_per_A": float(np.sqrt(np.mean(d**2))),
            "force_mae_eV_per_A": float(np.mean(np.abs(d))),
        }
    return out


def latency(step_seconds: np.ndarray) -> dict:
    """Median, 95th and 99th percentile of per-step wall times (ms)."""
    ms = 1000.0 * np.asarray(step_seconds)
    return {
        "latency_ms_median": float(np.median(ms)),
        "latency_ms_p95": float(np.percentile(ms, 95)),
        "latency_ms_p99": float(np.percentile(ms, 99)),
        "steps_timed": int(ms.size),
    }


def min_distance(positions: np.ndarray, cell: np.ndarray | None) -> float:
    """Shortest distance between two atoms of one frame (minimum image if ``cell`` is set)."""
    from ase.geometry import get_distances

    periodic = cell is not None and np.abs(cell).sum() > 0
    if periodic:
        _, d = get_distances(positions, cell=cell, pbc=True)
    else:
        _, d = get_distances(positions)
    d = d + np.diag(np.full(len(positions), np.inf))
    return float(d.min())
