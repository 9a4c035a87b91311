"""Checkpoint → one TorchScript file with its metadata inside (``_extra_files``).

The file loads with ``torch.jit.load`` alone. Before it is written, the scripted module
must reproduce the eager model's energy and forces on a probe structure; the file is
written under a temporary name, reloaded and checked, then renamed into place.
"""

from __future__ import annotations

import copy
import datetime
import json
import os
import shlex
import sys
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .. import __version__
from ..devices import DTYPES, resolve_device, torch_dtype
from ..errors import InputError
from ..files import atomic_path
from ..models.checkpoint import load_checkpoint, model_from_checkpoint
from .module import ExportedStudent

#: Version of the exported-file layout; loaders refuse newer ones. 2: ``atomic_energies``
#: takes positions of any precision and casts the edge vectors, not the positions, to the
#: student's dtype (version 1 files are given positions in their own dtype). 3:
#: ``atomic_energies`` refuses non-finite positions and cells, atoms closer than
#: ``models.graph.MIN_DISTANCE`` and non-finite outputs (callers check older files themselves).
#: 4: every tensor the module makes follows the device of its inputs, and ``compute`` returns
#: energy, per-atom energies, forces and virial from one call (``local_energies_and_gradient``
#: for LAMMPS). Loaders rebuild files of older versions as the current module.
FORMAT_VERSION = 4
#: The first version whose module takes float64 positions whatever its own dtype.
FLOAT64_INPUT_VERSION = 2
#: The first version whose module checks its inputs and outputs itself.
CHECKED_INPUT_VERSION = 3
#: Name of the metadata entry in the TorchScript archive.
METADATA_FILE = "mlff_metadata.json"
#: Keys every exported file's metadata has.
REQUIRED_KEYS = (
    "format",
    "format_version",
    "elements",
    "atomic_numbers",
    "cutoff",
    "interaction_range",
    "units",
    "dtype",
    "parameters",
    "teacher",
    "dataset_hash",
    "versions",
    "exported",
)


class ExportError(InputError):
    """A model cannot be exported, or an exported file cannot be used; says how to fix it."""


def export(checkpoint: str | os.PathLike, path: str | os.PathLike, dtype: str = "float32") -> Path:
    """Export a training checkpoint to a TorchScript file at ``path``.

    ``checkpoint`` may also be an exported file (any format version): its weights are
    exported again with this version's code, e.g. to run a file older than format version
    4 on a GPU, or a float32 file in float64 (the weights are cast exactly; a student
    trained in float32 keeps its float32 accuracy).

    Examples
    --------
    >>> export("runs/tiny/best.pt", "tiny.pt", dtype="float64")          # doctest: +SKIP
    PosixPath('tiny.pt')
    """
    if dtype not in DTYPES:
        raise ExportError(f"dtype must be 'float32' or 'float64', got {dtype!r}")
    as_torch = torch_dtype(dtype)
    data = student_checkpoint(checkpoint)
    provenance: dict[str, Any] = {"checkpoint": str(checkpoint)}
    if "exported_from" in data:
        provenance = {"checkpoint": data.get("checkpoint"), "exported_from": str(checkpoint)}
    model = model_from_checkpoint(data, as_torch)
    metadata = student_metadata(
        model,
        list(data["elements"]),
        dtype,
        preset=data.get("preset"),
        model_config=data.get("model_config"),
        teacher=data.get("teacher"),
        dataset=data.get("dataset"),
        dataset_hash=data.get("dataset_hash"),
        **provenance,
    )
    return export_module(model, path, metadata)


def student_checkpoint(path: str | os.PathLike) -> dict[str, Any]:
    """The checkpoint data (:func:`~mlff_distiller.models.checkpoint.load_checkpoint`'s
    dict) of a training checkpoint or of an exported file of any format version; for an
    exported file its weights, rebuilt by this version's code and checked to give the
    file's own energy and forces, and ``exported_from`` (the file) and ``checkpoint`` (the
    one it was exported from) are set."""
    if not is_exported(path):
        return load_checkpoint(path)
    module, metadata = _load_file(Path(path))
    _, data = _rebuilt(module, metadata, str(path))
    return {**data, "exported_from": str(path), "checkpoint": metadata.get("checkpoint")}


def _checkpoint_of_exported(
    module: torch.jit.ScriptModule, metadata: dict[str, Any], name: str
) -> dict[str, Any]:
    """What :func:`~mlff_distiller.models.checkpoint.model_from_checkpoint` needs, read
    from a loaded exported file (its student's weights, its metadata's model description)."""
    missing = [key for key in ("preset", "model_config") if not metadata.get(key)]
    if missing:
        raise ExportError(
            f"{name!r} does not record its {' and '.join(missing)}, so its student cannot "
            "be rebuilt; export the training checkpoint (best.pt) instead"
        )
    state = {
        key[len("model.") :]: tensor.cpu()
        for key, tensor in module.state_dict().items()
        if key.startswith("model.")
    }
    return {
        "preset": metadata["preset"],
        "elements": metadata["elements"],
        "model_config": metadata["model_config"],
        "dtype": metadata["dtype"],
        "model_state": state,
        **{key: metadata.get(key) for key in ("teacher", "dataset", "dataset_hash")},
    }


def _rebuilt(
    module: torch.jit.ScriptModule, metadata: dict[str, Any], name: str
) -> tuple[torch.jit.ScriptModule, dict[str, Any]]:
    """The student of an exported file rebuilt by this version's code from its weights (in
    its dtype, frozen, scripted) and checked against the file's own numbers, with the
    checkpoint data it was built from."""
    data = _checkpoint_of_exported(module, metadata, name)
    dtype = torch_dtype(metadata["dtype"])
    try:
        model = model_from_checkpoint(data, dtype)
    except (RuntimeError, KeyError, TypeError, ValueError) as exc:
        raise ExportError(
            f"{name!r} cannot be rebuilt from its metadata by mlff_distiller {__version__} "
            f"({str(exc).splitlines()[0][:200]}); export its training checkpoint again"
        ) from None
    for parameter in model.parameters():
        parameter.requires_grad_(False)
    scripted = torch.jit.script(ExportedStudent(model).eval())
    _check_rebuilt(scripted, module, metadata, name)
    return scripted, data


def _check_rebuilt(
    rebuilt: torch.jit.ScriptModule,
    earlier: torch.jit.ScriptModule,
    metadata: dict[str, Any],
    name: str,
) -> None:
    """The student rebuilt from a file's weights by this version's code (``rebuilt``, in the
    file's dtype) must give the file's own energy and forces on a probe structure: model
    code that changed since the file was written would otherwise change its numbers."""
    dtype = torch_dtype(metadata["dtype"])
    probe = _probe(metadata["atomic_numbers"], dtype)
    version = int(metadata.get("format_version", 1))
    width = torch.float64 if version >= FLOAT64_INPUT_VERSION else dtype
    results = []
    for module in (rebuilt, earlier):
        positions = probe["positions"].to(width).requires_grad_(True)
        energy = module(positions, probe["numbers"], probe["cell"].to(width), probe["pbc"])
        (grad,) = torch.autograd.grad(energy, [positions])
        results.append((float(energy.detach()), grad))
    tol = 1e-9 if dtype == torch.float64 else 1e-5
    (e_new, g_new), (e_old, g_old) = results
    force_error = float((g_new - g_old).abs().max())
    if abs(e_new - e_old) > tol * max(1.0, abs(e_old)) or force_error > 100 * tol:
        raise ExportError(
            f"{name!r} cannot be rebuilt faithfully by mlff_distiller {__version__}: its "
            f"energy {e_old:.10g} eV becomes {e_new:.10g} eV (forces differ by "
            f"{force_error:.3g} eV/Å); keep using it with the version that wrote it, or "
            "export its training checkpoint again"
        )


def student_metadata(
    model: torch.nn.Module, elements: list[str], dtype: str, **provenance: Any
) -> dict[str, Any]:
    """The metadata an exported file carries: what the model is (elements, cutoff, range,
    units, dtype, size), the versions and the export date, plus ``provenance`` (preset,
    teacher, dataset, checkpoint, ...)."""
    return {
        "format": "mlff_distiller.exported",
        "format_version": FORMAT_VERSION,
        "elements": list(elements),
        "atomic_numbers": [int(z) for z in model.atomic_numbers.tolist()],
        "cutoff": float(model.cutoff),
        # Strictly local: each atom's energy depends on neighbours within the cutoff only.
        "interaction_range": float(model.cutoff),
        "message_passing_steps": 0,
        "units": {"length": "Angstrom", "energy": "eV"},
        "dtype": dtype,
        "parameters": int(sum(p.numel() for p in model.parameters())),
        **provenance,
        "versions": {
            "mlff_distiller": __version__,
            "torch": torch.__version__,
            "python": sys.version.split()[0],
        },
        "exported": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "command": shlex.join(sys.argv),
    }


def export_module(
    model: torch.nn.Module, path: str | os.PathLike, metadata: dict[str, Any]
) -> Path:
    """Script ``model`` (a student in eval mode), self-check it, and write it atomically."""
    if model.training:
        raise ExportError("the model is in training mode; call model.eval() before exporting")
    for attribute in ("cutoff", "atomic_numbers"):
        if not hasattr(model, attribute):
            raise ExportError(
                f"the model has no {attribute}; only students with one can be exported"
            )
    if not hasattr(model, "energies_and_gradient"):
        raise ExportError(
            f"{type(model).__name__} has no energies_and_gradient; derive it from "
            "mlff_distiller.models.Student (autograd through forward) to export it"
        )
    if float(model.cutoff) <= 0 or model.atomic_numbers.numel() == 0:
        raise ExportError("the model's cutoff or element list is empty")
    missing = [k for k in REQUIRED_KEYS if k not in metadata]
    if missing:
        raise ExportError(f"export metadata lacks {', '.join(missing)}")
    # Frozen: the weights are constants for every engine, so autograd records nothing for
    # them and forces cost a derivative with respect to positions (or edges) alone. (A copy:
    # the caller's model keeps its flags.)
    frozen = copy.deepcopy(model)
    for parameter in frozen.parameters():
        parameter.requires_grad_(False)
    module = ExportedStudent(frozen).eval()
    scripted = torch.jit.script(module)
    _self_check(model, scripted, metadata)

    path = Path(path)
    with atomic_path(path) as tmp:
        torch.jit.save(scripted, str(tmp), _extra_files={METADATA_FILE: json.dumps(metadata)})
        reloaded = torch.jit.load(str(tmp), map_location="cpu")
        _self_check(model, reloaded, metadata)
    return path


def _probe(numbers: list[int], dtype: torch.dtype) -> dict[str, torch.Tensor]:
    """A small periodic structure of every element, spaced like a liquid."""
    rng = np.random.default_rng(0)
    n = max(8, 2 * len(numbers))
    edge = 6.0
    positions = rng.uniform(0, edge, size=(n, 3))
    for _ in range(200):  # push apart pairs closer than 1 Å (minimum image)
        d = positions[None] - positions[:, None]
        d -= edge * np.round(d / edge)
        r = np.linalg.norm(d, axis=2) + np.eye(n) * 10
        if r.min() > 1.0:
            break
        i, j = np.unravel_index(np.argmin(r), r.shape)
        positions[j] = rng.uniform(0, edge, size=3)
    species = [numbers[k % len(numbers)] for k in range(n)]
    return {
        "positions": torch.tensor(positions, dtype=dtype),
        "numbers": torch.tensor(species, dtype=torch.long),
        "cell": torch.eye(3, dtype=dtype) * edge,
        "pbc": torch.tensor([True, True, True]),
    }


def _self_check(model: torch.nn.Module, scripted: Any, metadata: dict[str, Any]) -> None:
    """The scripted module must give the eager model's energy and forces on a probe."""
    from ase import Atoms

    from ..models import build_graph, collate, evaluate

    dtype = next(model.parameters()).dtype
    probe = _probe(metadata["atomic_numbers"], dtype)
    atoms = Atoms(
        numbers=probe["numbers"].numpy(),
        positions=probe["positions"].double().numpy(),
        cell=probe["cell"].double().numpy(),
        pbc=True,
    )
    batch = collate([build_graph(atoms, float(model.cutoff), metadata["atomic_numbers"])], dtype)
    reference = evaluate(model, batch)
    positions = probe["positions"].clone().requires_grad_(True)
    energy = scripted(positions, probe["numbers"], probe["cell"], probe["pbc"])
    (grad,) = torch.autograd.grad(energy, [positions])
    tol = 1e-9 if dtype == torch.float64 else 1e-4
    e_ref = float(reference["energy"][0].detach())
    value = float(energy.detach())
    if abs(value - e_ref) > tol * max(1.0, abs(e_ref)):
        raise ExportError(
            f"self-check failed: scripted energy {value:.10g} eV differs from the "
            f"model's {e_ref:.10g} eV; the model cannot be exported faithfully"
        )
    force_error = float((-grad - reference["forces"]).abs().max())
    if force_error > tol * 100:
        raise ExportError(f"self-check failed: forces differ by {force_error:.3g} eV/Å")


def load_exported(
    path: str | os.PathLike, device: str | torch.device | None = None
) -> tuple[torch.jit.ScriptModule, dict[str, Any]]:
    """Load an exported student (onto ``device``, default the CPU) and its metadata, with
    actionable errors.

    A file of an older format version is rebuilt in memory from its weights by this
    version's code (checked to give the file's own energy and forces), so every caller gets
    the current module: :meth:`~mlff_distiller.export.module.ExportedStudent.compute`, any
    device. ``metadata["format_version"]`` is then the current one and
    ``metadata["file_format_version"]`` (set only then) the file's. The file is not changed
    (``mlff-distill export old.pt --out new.pt`` writes the upgraded one).
    """
    path = Path(path)
    target = resolve_device(device)
    module, metadata = _load_file(path)
    version = int(metadata.get("format_version", 1))
    if version < FORMAT_VERSION:
        metadata["file_format_version"] = version
        module, _ = _rebuilt(module, metadata, str(path))
        metadata["format_version"] = FORMAT_VERSION
    if target.type != "cpu":
        module = module.to(target)
    return module, metadata


def _load_file(path: Path) -> tuple[torch.jit.ScriptModule, dict[str, Any]]:
    """The TorchScript module and metadata of an exported file, as written (on the CPU)."""
    if not path.is_file():
        raise ExportError(f"model file {str(path)!r} does not exist")
    extra = {METADATA_FILE: ""}
    try:
        module = torch.jit.load(str(path), map_location="cpu", _extra_files=extra)
    except RuntimeError as exc:
        text = str(exc)
        if "PytorchStreamReader" in text or "zip archive" in text or "constants.pkl" in text:
            raise ExportError(
                f"{str(path)!r} is not a TorchScript file (or it is truncated/corrupted); "
                "export one with `mlff-distill export`"
            ) from None
        raise ExportError(f"cannot load {str(path)!r}: {text.splitlines()[0]}") from None
    if not extra[METADATA_FILE]:
        raise ExportError(
            f"{str(path)!r} is a TorchScript file without mlff_distiller metadata; "
            "export the model with `mlff-distill export`"
        )
    metadata = json.loads(extra[METADATA_FILE])
    if metadata.get("format") != "mlff_distiller.exported":
        raise ExportError(f"{str(path)!r} is not an mlff_distiller export")
    if int(metadata.get("format_version", 0)) > FORMAT_VERSION:
        raise ExportError(
            f"{str(path)!r} has format version {metadata['format_version']}; this mlff_distiller "
            f"reads up to {FORMAT_VERSION}: upgrade mlff_distiller"
        )
    missing = [k for k in REQUIRED_KEYS if k not in metadata]
    if missing:
        raise ExportError(f"{str(path)!r} metadata lacks {', '.join(missing)}; re-export it")
    for parameter in module.parameters():  # files written before export froze them
        parameter.requires_grad_(False)
    return module, metadata


def is_exported(path: str | os.PathLike) -> bool:
    """Whether ``path`` is a TorchScript archive, without loading it.

    ``torch.save`` checkpoints are zip files too; only TorchScript archives hold ``code/``.
    A truncated archive (no zip directory at its end) counts as exported when its first
    entries' own headers name our metadata (written first) or ``code/`` files, so loading it
    says "export it again", not "retrain".
    """
    import zipfile

    if not zipfile.is_zipfile(path):
        with open(path, "rb") as handle:
            head = handle.read(1 << 20)
        return f"/extra/{METADATA_FILE}".encode() in head or b"/code/__torch__/" in head
    with zipfile.ZipFile(path) as archive:
        return any("/code/" in name for name in archive.namelist())
