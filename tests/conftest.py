"""Shared test set-up.

``import torch`` must come before anything imports ``openmm``: OpenMM loads its plugins at
import time, and the TorchForce plugin links against CUDA runtime libraries that only
torch's import puts in reach. Importing torch here keeps any test module order safe.
"""

import pytest  # noqa: E402
import torch  # noqa: F401  (import order matters, see above)


@pytest.fixture(scope="session")
def sevennet():
    """The real default teacher (SevenNet-0, weights from the ``sevenn`` wheel), built once."""
    from mlff_distiller.teachers import get_teacher

    return get_teacher("sevennet-0")
