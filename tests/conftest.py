"""Shared test set-up.

Markers (``pytest -m "not slow"`` is the fast lane; see README):

- ``teacher``: loads a real teacher (everything under ``tests/teachers/``, tests that use the
  ``sevennet`` fixture, or marked by hand);
- ``engine``: drives a real engine process (everything under ``tests/engines/``);
- ``mpi``: runs ``mpirun`` with more than one rank (marked by hand);
- ``slow``: all of the above, everything under ``tests/integration/``, and tests marked by
  hand because they train, label or run MD for tens of seconds.

``import torch`` must come before anything imports ``openmm``: OpenMM loads its plugins at
import time, and the TorchForce plugin links against CUDA runtime libraries that only
torch's import puts in reach. Importing torch here keeps any test module order safe.
"""

from pathlib import Path

import pytest  # noqa: E402
import torch  # noqa: F401  (import order matters, see above)

TESTS = Path(__file__).resolve().parent


def pytest_collection_modifyitems(config, items):
    """Mark each test by what it runs (see the module docstring): the markers follow from
    where a test lives and which fixtures it takes, so a new test is marked by itself."""
    for item in items:
        where = Path(str(item.fspath)).resolve().relative_to(TESTS).parts[0]
        if where == "teachers" or "sevennet" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.teacher)
        if where == "engines":
            item.add_marker(pytest.mark.engine)
        heavy = ("teacher", "engine", "mpi")
        if where == "integration" or any(item.get_closest_marker(m) for m in heavy):
            item.add_marker(pytest.mark.slow)


@pytest.fixture(scope="session")
def sevennet():
    """The real default teacher (SevenNet-0, weights from the ``sevenn`` wheel), built once."""
    from mlff_distiller.teachers import get_teacher

    return get_teacher("sevennet-0")


def write_student_checkpoint(path, elements=("H", "C", "N", "O"), preset="tiny", seed=0):
    """A float64 ``best.pt`` of a seeded random student with noisy weights, written with the
    keys :func:`mlff_distiller.training.train` writes (no training needed)."""
    from mlff_distiller.models import build_model
    from mlff_distiller.models.checkpoint import save_checkpoint
    from mlff_distiller.models.presets import MODEL_KEYS
    from mlff_distiller.training.config import config_hash, make_config

    cfg = make_config(preset, {"dtype": "float64"})
    norm = {"energy_shift": [-1.0 - k for k in range(len(elements))], "energy_scale": 1.0,
            "avg_neighbors": 4.0}  # fmt: skip
    model_cfg = {k: cfg[k] for k in MODEL_KEYS if k in cfg}
    torch.manual_seed(seed)
    model = build_model(preset, list(elements), **model_cfg, avg_neighbors=norm["avg_neighbors"])
    model = model.double()
    with torch.no_grad():
        model.energy_shift.copy_(torch.tensor(norm["energy_shift"], dtype=torch.float64))
        for p in model.parameters():
            p.add_(0.1 * torch.randn_like(p))
    payload = {
        "preset": preset,
        "elements": list(elements),
        "model_config": {**model_cfg, "avg_neighbors": norm["avg_neighbors"]},
        "dtype": "float64",
        "normalization": norm,
        "config": cfg,
        "run_key": {"config": config_hash(cfg), "dataset": "synthetic"},
        "dataset": "synthetic.h5",
        "dataset_hash": "synthetic",
        "teacher": {"name": "none", "note": "random student for tests"},
        "splits": {"train": 1, "val": 1, "test": 0},
        "model_state": model.state_dict(),
        "epoch": 1,
        "metrics": {},
    }
    return save_checkpoint(payload, path)


@pytest.fixture(scope="session")
def make_student_checkpoint():
    """``make_student_checkpoint(path, elements=..., preset=..., seed=...)`` → ``best.pt``."""
    return write_student_checkpoint


@pytest.fixture(scope="module")
def one_thread():
    """Tens of atoms per call: one torch thread is much faster than two on a shared machine.
    Use with ``pytestmark = pytest.mark.usefixtures("one_thread")``."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
