"""The package's own errors: what a user can fix, each with a one-line message that names
the problem and the fix.

``mlff-distill`` prints these as one line (``--debug`` shows the traceback); any other
exception is a bug and keeps its traceback. Every class also derives from the builtin it
refines (``ValueError``, ``RuntimeError``, ``FileNotFoundError``), so ``except ValueError``
in a user's script still catches bad input.

>>> try:
...     raise InputError("temperature must be positive (K), got -3")
... except ValueError as exc:
...     print(type(exc).__name__, isinstance(exc, MlffDistillerError))
InputError True
"""

from __future__ import annotations


class MlffDistillerError(Exception):
    """Base of every error the package raises on purpose."""


class InputError(MlffDistillerError, ValueError):
    """A value, structure, option or file the package cannot use."""


class MissingFileError(MlffDistillerError, FileNotFoundError):
    """A file or program the package was told to use is not there."""


class RunError(MlffDistillerError, RuntimeError):
    """An engine (LAMMPS, OpenMM, a teacher) or a long job failed; the message says where
    its log is."""


__all__ = ["InputError", "MissingFileError", "MlffDistillerError", "RunError"]
