"""One process at a time: an advisory ``flock`` on a lock file.

The operating system drops the lock when its process ends, however it ends, so a killed job
never leaves a stale lock behind.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Iterator
from pathlib import Path

from .errors import MlffDistillerError


class BusyError(MlffDistillerError, RuntimeError):
    """Another process holds the lock."""


@contextlib.contextmanager
def exclusive(lock_file: Path, busy: str, error: type[BusyError] = BusyError) -> Iterator[None]:
    """Hold ``lock_file`` for the duration of the block, or raise ``error`` with ``busy``
    formatted with ``holder`` (the other process's pid line)."""
    lock_file.parent.mkdir(parents=True, exist_ok=True)
    with open(lock_file, "a+") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "another process"
            raise error(busy.format(holder=holder)) from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"pid {os.getpid()}\n")
        handle.flush()
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
