"""The one atomic writer and the one JSON encoding (mlff_distiller.files)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from mlff_distiller.files import atomic_path, to_json, write_json, write_text


def test_an_interrupted_write_leaves_the_old_file_and_no_temporary(tmp_path):
    target = tmp_path / "report.json"
    write_text(target, "old")
    with pytest.raises(RuntimeError, match="killed"):
        with atomic_path(target) as tmp:
            tmp.write_text("half of the new")
            assert tmp.parent == tmp_path and tmp.name.startswith(".")  # hidden, beside it
            raise RuntimeError("killed")
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["report.json"]


def test_the_temporary_keeps_the_suffix_for_writers_that_go_by_it(tmp_path):
    target = tmp_path / "sub" / "frames.npz"  # np.savez appends .npz to other names
    with atomic_path(target, fsync=True) as tmp:
        assert tmp.suffix == ".npz"
        np.savez(tmp, x=np.arange(3))
    assert np.load(target)["x"].tolist() == [0, 1, 2]
    assert [p.name for p in target.parent.iterdir()] == ["frames.npz"]


def test_json_encodes_numpy_torch_paths_and_sets_and_keeps_unicode(tmp_path):
    data = {
        "scalar": np.float32(0.25),
        "array": np.arange(3),
        "tensor": torch.tensor([1.5, 2.0]),
        "path": Path("runs/x"),
        "set": {3},
        "unit": "µs/atom·step",
    }
    text = write_json(tmp_path / "r.json", data).read_text()
    assert "µs" in text and text.endswith("}\n")
    assert json.loads(text) == {
        "scalar": 0.25,
        "array": [0, 1, 2],
        "tensor": [1.5, 2.0],
        "path": "runs/x",
        "set": [3],
        "unit": "µs/atom·step",
    }
    # Keys sorted on request, so equal values give equal text (digests, fingerprints).
    assert to_json({"b": 1, "a": 2}, sort_keys=True) == '{"a": 2, "b": 1}'


def test_plotting_leaves_matplotlib_as_the_user_set_it(tmp_path):
    """No backend switch and no pyplot: a notebook user's backend and figures survive the
    package's plots (training, validation, benchmarks all go through plots.figure)."""
    import subprocess
    import sys

    script = f"""
import sys, numpy as np, matplotlib
matplotlib.use("svg")
from mlff_distiller.benchmarking import _plot_memory
from mlff_distiller.validation.structure import plot_structures
_plot_memory(np.arange(1, 4) * 1e6, np.array([10.0, 11.0, 11.5]), {str(tmp_path)!r} + "/m.png")
r = np.linspace(0.5, 6, 20)
rdf = {{"O-O": {{"r": r, "g_reference": np.ones(20), "g_sample": np.ones(20), "distance": 0.0}}}}
plot_structures({{"kind": "liquid", "rdf": rdf}}, {str(tmp_path)!r} + "/s.png", "water")
assert matplotlib.get_backend() == "svg", matplotlib.get_backend()
assert "matplotlib.pyplot" not in sys.modules
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "m.png").read_bytes()[:4] == b"\x89PNG"
    assert (tmp_path / "s.png").read_bytes()[:4] == b"\x89PNG"
