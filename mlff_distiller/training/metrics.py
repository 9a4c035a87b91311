"""Per-epoch metrics, written as CSV and JSON after every epoch (atomically)."""

from __future__ import annotations

import csv
import io
import json
import os
from pathlib import Path
from typing import Any


def _atomic_write(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def write_metrics(history: list[dict[str, Any]], out_dir: Path) -> None:
    """``metrics.csv`` and ``metrics.json`` in ``out_dir``, one row per epoch."""
    _atomic_write(out_dir / "metrics.json", json.dumps(history, indent=1))
    if not history:
        return
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(history[0]))
    writer.writeheader()
    writer.writerows(history)
    _atomic_write(out_dir / "metrics.csv", buffer.getvalue())
