"""Shared test set-up.

``import torch`` must come before anything imports ``openmm``: OpenMM loads its plugins at
import time, and the TorchForce plugin links against CUDA runtime libraries that only
torch's import puts in reach. Importing torch here keeps any test module order safe.
"""

import torch  # noqa: F401  (import order matters, see above)
