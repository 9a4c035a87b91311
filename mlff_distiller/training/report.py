"""The final test-set report of a training run: errors overall and per element, parity plot."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..files import write_json
from ..models.checkpoint import load_checkpoint, model_from_checkpoint
from ..plots import figure, save_figure


def test_report(
    out_dir: Path,
    items: list[Any],
    dtype: torch.dtype,
    batch_size: int,
    evaluate_items: Callable[..., dict[str, Any]],
    split: str,
    checkpoint: str = "best.pt",
) -> dict[str, Any]:
    """Evaluate ``checkpoint`` (in ``out_dir``) on ``items``; write ``test_report.json``
    (which names it) and ``parity.png``."""
    from ase.data import chemical_symbols

    model = model_from_checkpoint(load_checkpoint(out_dir / checkpoint), dtype)
    result = evaluate_items(model, items, dtype, batch_size)
    numbers = result["_numbers"]
    f_pred, f_ref = result["_forces"]
    per_element = {}
    for z in sorted(set(int(n) for n in numbers)):
        err = (f_pred - f_ref)[numbers == z]
        per_element[chemical_symbols[z]] = {
            "atoms": int(err.shape[0]),
            "force_mae_eV_per_A": float(np.abs(err).mean()),
            "force_rmse_eV_per_A": float(np.sqrt((err**2).mean())),
        }
    report = {
        "checkpoint": checkpoint,
        "split": split,
        "frames": len(items),
        **{k: v for k, v in result.items() if not k.startswith("_")},
        "per_element": per_element,
    }
    write_json(out_dir / "test_report.json", report)
    _parity_plot(result, out_dir / "parity.png", split)
    return report


def _parity_plot(result: dict[str, Any], path: Path, split: str) -> None:
    e_pred, e_ref = result["_energy_per_atom"]
    f_pred, f_ref = result["_forces"]
    fig, axes = figure((9, 4.2), 1, 2)
    panels = [
        (
            axes[0],
            e_ref,
            e_pred,
            "energy (eV/atom)",
            f"MAE {result['energy_mae_meV_per_atom']:.1f} meV/atom",
        ),
        (
            axes[1],
            f_ref.ravel(),
            f_pred.ravel(),
            "force component (eV/Å)",
            f"RMSE {result['force_rmse_eV_per_A']:.3f} eV/Å",
        ),
    ]
    for ax, ref, pred, label, text in panels:
        ax.scatter(ref, pred, s=4, alpha=0.5)
        lo, hi = float(min(ref.min(), pred.min())), float(max(ref.max(), pred.max()))
        ax.plot([lo, hi], [lo, hi], color="k", lw=0.8)
        ax.set_xlabel(f"teacher {label}")
        ax.set_ylabel(f"student {label}")
        ax.set_title(text)
    fig.suptitle(f"student vs teacher, {split} set")
    fig.tight_layout()
    save_figure(fig, path)
