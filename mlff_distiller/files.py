"""Files written whole or not at all, and the one JSON encoding every writer uses.

Every file the package writes (datasets, checkpoints, exported students, reports, plots,
run records, LAMMPS data files) goes through :func:`atomic_path`: the writer fills a hidden
temporary file beside the target, which replaces the target only once the write finished.
An interrupted write leaves the old file (or none), never one that looks complete.

>>> import tempfile, pathlib, numpy as np
>>> out = pathlib.Path(tempfile.mkdtemp()) / "result.json"
>>> path = write_json(out, {"rmse": np.float32(0.5), "path": pathlib.Path("a/b")})
>>> path.read_text()
'{\\n  "rmse": 0.5,\\n  "path": "a/b"\\n}\\n'
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, fsync: bool = False) -> Iterator[Path]:
    """A temporary path beside ``path`` (same suffix, so writers that go by the suffix,
    like ``savefig`` or ``np.savez``, behave) that replaces ``path`` when the block ends
    without an exception; on an exception it is removed and ``path`` is left as it was.
    ``fsync`` flushes the file to disk before the rename (datasets, journal chunks)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.{os.getpid()}.partial{path.suffix}")
    try:
        yield tmp
        if fsync:
            fd = os.open(tmp, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_text(path: str | os.PathLike, text: str) -> Path:
    """``text`` at ``path``, atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(text)
    return Path(path)


def json_default(value: Any) -> Any:
    """What :mod:`json` cannot encode itself: arrays and scalars of numpy (and torch,
    anything with ``tolist``) as lists and numbers, sets as lists, paths and anything else
    as their text."""
    if hasattr(value, "tolist"):
        return value.tolist()
    if isinstance(value, (set, frozenset)):
        return list(value)
    return str(value)


def to_json(
    value: Any, indent: int | None = None, sort_keys: bool = False, ensure_ascii: bool = True
) -> str:
    """``value`` as JSON text, with :func:`json_default` for what JSON lacks."""
    return json.dumps(
        value, default=json_default, indent=indent, sort_keys=sort_keys, ensure_ascii=ensure_ascii
    )


def write_json(
    path: str | os.PathLike, data: Any, indent: int | None = 2, sort_keys: bool = False
) -> Path:
    """``data`` as JSON (see :func:`to_json`; µ and Å as themselves) at ``path``,
    atomically, with a final newline."""
    text = to_json(data, indent=indent, sort_keys=sort_keys, ensure_ascii=False)
    return write_text(path, text + "\n")


__all__ = ["atomic_path", "json_default", "to_json", "write_json", "write_text"]
