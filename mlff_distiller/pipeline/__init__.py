"""One command from teacher to validated student (``mlff-distill run``).

>>> from mlff_distiller.pipeline import run_pipeline
>>> summary = run_pipeline("my_config.yaml", "runs/my_student")          # doctest: +SKIP
"""

from __future__ import annotations

from .config import BUILTIN, DEFAULTS, ConfigError, load_config
from .run import run_pipeline
from .stages import RunBusyError

__all__ = ["BUILTIN", "DEFAULTS", "ConfigError", "RunBusyError", "load_config", "run_pipeline"]
