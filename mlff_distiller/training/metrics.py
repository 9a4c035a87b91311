"""Per-epoch metrics, written as CSV and JSON after every epoch (atomically)."""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any

from ..files import write_json, write_text


def write_metrics(history: list[dict[str, Any]], out_dir: Path) -> None:
    """``metrics.csv`` and ``metrics.json`` in ``out_dir``, one row per epoch."""
    write_json(out_dir / "metrics.json", history, indent=1)
    if not history:
        return
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(history[0]))
    writer.writeheader()
    writer.writerows(history)
    write_text(out_dir / "metrics.csv", buffer.getvalue())
