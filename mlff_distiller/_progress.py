"""Progress bars and messages for long jobs (labeling, training), on standard error."""

from __future__ import annotations

import sys
from typing import Any


class _NoBar:
    """Stands in for a progress bar when progress display is off."""

    def update(self, n: int) -> None: ...
    def set_postfix(self, **kwargs: Any) -> None: ...
    def close(self) -> None: ...


def progress_bar(total: int, initial: int, enabled: bool, unit: str, desc: str) -> Any:
    """A tqdm bar (rate and ETA) on stderr, or a silent stand-in."""
    if not enabled:
        return _NoBar()
    from tqdm.auto import tqdm

    return tqdm(total=total, initial=initial, unit=unit, desc=desc, file=sys.stderr)


def say(enabled: bool, message: str) -> None:
    """Print ``message`` on stderr if ``enabled``."""
    if enabled:
        print(message, file=sys.stderr)
