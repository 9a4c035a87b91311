"""The validation suite: a student against its teacher in ASE, OpenMM and LAMMPS.

>>> from mlff_distiller.validation import validate                         # doctest: +SKIP
>>> report = validate("student.pt", "sevennet-0", "quick", "report/")      # doctest: +SKIP
>>> report["verdict"]                                                      # doctest: +SKIP
'PASS'
"""

from .core import validate
from .suite import PROTOCOL_DEFAULTS, THRESHOLD_DEFAULTS, Suite, SuiteError, load_suite

__all__ = [
    "PROTOCOL_DEFAULTS",
    "THRESHOLD_DEFAULTS",
    "Suite",
    "SuiteError",
    "load_suite",
    "validate",
]
