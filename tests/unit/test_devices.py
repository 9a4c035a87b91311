"""Devices: every tensor the exported student makes follows its input's device, and asking
for a device this machine lacks is a one-line error that says what it has.

CI has no GPU, so what runs on CUDA itself is ``benchmarks/gpu_check.py``'s job; here the
TorchScript graphs are read for tensors created without a device, and the refusals are run.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from ase.build import molecule

from mlff_distiller import StudentCalculator
from mlff_distiller.devices import resolve_device
from mlff_distiller.export import export, load_exported

pytestmark = pytest.mark.usefixtures("one_thread")

#: Factories that take a ``device`` argument; without one they make CPU tensors.
FACTORIES = {
    "aten::arange",
    "aten::empty",
    "aten::eye",
    "aten::full",
    "aten::ones",
    "aten::rand",
    "aten::randn",
    "aten::scalar_tensor",
    "aten::tensor",
    "aten::zeros",
}


@pytest.fixture(scope="module", params=["tiny", "tiny-l3"])
def exported(request, tmp_path_factory, make_student_checkpoint):
    out = tmp_path_factory.mktemp(f"devices-{request.param}")
    checkpoint = make_student_checkpoint(out / "best.pt", preset=request.param)
    return export(checkpoint, out / "model.pt", dtype="float64")


def _deviceless_factories(module: torch.jit.ScriptModule) -> list[str]:
    """``method: factory`` for every tensor factory in every method of ``module`` and its
    submodules whose ``device`` argument is the constant None."""
    found = []
    for name, submodule in module.named_modules():
        for method in submodule._c._method_names():
            for node in _all_nodes(submodule._c._get_method(method).graph):
                if node.kind() not in FACTORIES:
                    continue
                arguments = _argument_names(node.schema())
                if "device" not in arguments:
                    continue
                device = list(node.inputs())[arguments.index("device")]
                if device.node().kind() == "prim::Constant" and str(device.type()) == "NoneType":
                    found.append(f"{name or 'student'}.{method}: {node.kind()}")
    return found


def _argument_names(schema: str) -> list[str]:
    """``"aten::zeros(SymInt[] size, *, ScalarType? dtype=None, ...) -> Tensor"`` →
    ``["size", "dtype", ...]`` (the keyword-only marker dropped)."""
    inside = schema[schema.index("(") + 1 : schema.rindex(") ->")]
    names = []
    for argument in inside.split(", "):
        if argument.strip() != "*":
            names.append(argument.split("=")[0].split()[-1])
    return names


def _all_nodes(graph):
    """Every node of a graph, inside loops and branches too."""
    stack = list(graph.nodes())
    while stack:
        node = stack.pop()
        yield node
        for block in node.blocks():
            stack.extend(block.nodes())


def test_schema_reader_finds_a_tensor_made_without_a_device():
    class Careless(torch.nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x + torch.zeros(3, dtype=x.dtype)

    class Careful(torch.nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x + torch.zeros(3, dtype=x.dtype, device=x.device)

    assert _deviceless_factories(torch.jit.script(Careless())) == ["student.forward: aten::zeros"]
    assert _deviceless_factories(torch.jit.script(Careful())) == []


def test_every_tensor_the_exported_student_makes_follows_its_input(exported):
    module, metadata = load_exported(exported)
    assert metadata["format_version"] >= 4
    assert _deviceless_factories(module) == []


def test_positions_on_another_device_than_the_module_are_a_clear_error(exported):
    module, _ = load_exported(exported)
    positions = torch.zeros(3, 3, dtype=torch.float64, device="meta")
    with pytest.raises(torch.jit.Error, match="positions are on meta but the model is on cpu"):
        module(positions, torch.tensor([1, 1, 8]), torch.eye(3), torch.tensor([False] * 3))


def test_resolve_device_names_what_the_machine_has():
    assert resolve_device(None) == torch.device("cpu")
    assert resolve_device("cpu") == torch.device("cpu")
    with pytest.raises(ValueError, match="not a torch device"):
        resolve_device("gpu0")
    with pytest.raises(ValueError, match="not supported"):
        resolve_device("meta")
    if torch.cuda.is_available():
        assert resolve_device("cuda").type == "cuda"
        with pytest.raises(ValueError, match="CUDA device"):
            resolve_device(f"cuda:{torch.cuda.device_count()}")
    else:
        with pytest.raises(ValueError, match="device='cpu'"):
            resolve_device("cuda")


def test_calculator_on_the_cpu_device_is_the_default_and_cuda_is_checked(exported):
    atoms = molecule("CH3CH2OH")
    default = StudentCalculator(exported)
    on_cpu = StudentCalculator(exported, device="cpu")
    forces = [calc.get_forces(atoms.copy()) for calc in (default, on_cpu)]
    np.testing.assert_array_equal(forces[0], forces[1])
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="device 'cuda' asked for"):
            StudentCalculator(exported, device="cuda")
