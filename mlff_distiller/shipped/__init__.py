"""The students shipped with the package (``torchscript_exports/``), by name.

``shipped:sevennet0-tiny`` names the shipped ``tiny`` wherever a student file is asked for
(a fine-tuning start, ``training: {init_from: shipped:sevennet0-tiny}``); the files here are
links to ``torchscript_exports/``, copied into wheels as package data.

>>> resolve_student("shipped:sevennet0-tiny").name                        # doctest: +SKIP
'sevennet0-tiny.pt'
"""

from __future__ import annotations

import os
from pathlib import Path

from ..errors import MissingFileError

PREFIX = "shipped:"
_HERE = Path(__file__).resolve().parent


def shipped_names() -> list[str]:
    """The names of the shipped students."""
    return sorted(p.stem for p in _HERE.glob("*.pt") if p.is_file())


def resolve_student(spec: str | os.PathLike) -> Path:
    """The file of ``spec``: ``shipped:NAME`` or a path to a student (checkpoint or exported
    file); a missing one is an error naming what exists."""
    text = str(spec)
    if text.startswith(PREFIX):
        name = text[len(PREFIX) :]
        path = _HERE / f"{name}.pt"
        if not path.is_file():
            raise MissingFileError(
                f"no shipped student {name!r}; shipped: {', '.join(shipped_names()) or 'none'}"
            )
        return path
    path = Path(text)
    if not path.is_file():
        raise MissingFileError(
            f"student {text!r} does not exist; give a checkpoint, an exported file or "
            f"shipped:NAME ({', '.join(PREFIX + n for n in shipped_names())})"
        )
    return path
