"""The student as an ASE calculator: swap it in for the teacher in one line.

>>> from mlff_distiller import StudentCalculator
>>> atoms.calc = StudentCalculator("runs/tiny/best.pt")          # doctest: +SKIP
"""

from __future__ import annotations

import os
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import torch
from ase import Atoms
from ase.calculators.calculator import Calculator, PropertyNotImplementedError, all_changes
from ase.stress import full_3x3_to_voigt_6_stress

from .devices import resolve_device, torch_dtype
from .errors import InputError
from .export import is_exported, load_exported
from .export.module import script_error_message
from .models import build_graph, collate, evaluate
from .models.checkpoint import load_checkpoint, model_from_checkpoint
from .models.graph import check_finite
from .models.graph import species_indices as species_index

# Below this many atoms a call runs on one torch thread unless told otherwise: threads do not
# pay for themselves on small systems here, and two jobs that each take every core slow each
# other about tenfold (``benchmarks/threads.py`` and ``benchmarks/sharing.py`` measure both).
SERIAL_BELOW_ATOMS = 1000


class StudentCalculator(Calculator):
    """Energy, forces, stress (periodic cells) and per-atom energies from a student.

    Parameters
    ----------
    model
        An exported student file (``mlff-distill export``) or a training checkpoint
        (``best.pt``).
    dtype
        ``"float32"`` or ``"float64"``; default: the dtype the student was trained in.
    script
        Run the TorchScript-compiled model (the same code the engines run).
    device
        Where the student runs: ``"cpu"`` (default), ``"cuda"``, ``"cuda:1"``... Exported
        files of format version 4 on and checkpoints run anywhere; results come back as
        NumPy arrays either way.
    threads
        Torch intra-op threads for each call (restored afterwards, so the rest of the
        process keeps its own setting). Default: torch's own count (every core, or
        ``OMP_NUM_THREADS``) when ``OMP_NUM_THREADS`` is set or the system has at least
        ``SERIAL_BELOW_ATOMS`` atoms, otherwise one thread.
    """

    implemented_properties = ["energy", "free_energy", "forces", "stress", "energies"]

    def __init__(
        self,
        model: str | os.PathLike,
        dtype: str | None = None,
        script: bool = True,
        device: str | None = None,
        threads: int | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        path = Path(model)
        if dtype is not None:
            torch_dtype(dtype)  # refuses anything but float32 and float64
        if threads is not None and (isinstance(threads, bool) or not isinstance(threads, int)
                                    or threads < 1):  # fmt: skip
            raise InputError(f"threads must be a whole number of at least 1, got {threads!r}")
        self.threads = threads
        self.device = resolve_device(device)
        self.path = path
        self._options = {"dtype": dtype, "script": script, "device": device, "threads": threads}
        self._model_digest = _digest(path) if path.is_file() else None
        self.exported = None
        if path.is_file() and is_exported(path):
            module, metadata = load_exported(path, self.device)
            if dtype is not None and dtype != metadata["dtype"]:
                raise InputError(
                    f"{path} holds a {metadata['dtype']} model; export it again with "
                    f"--dtype {dtype} to run it in {dtype}"
                )
            # Older format versions come rebuilt as the current one. Not frozen
            # (torch.jit.freeze): a frozen module ran about 0.1 ms faster on ethanol but
            # crashed the process on a flat or too thin periodic cell (torch 2.9.1), where the
            # module raises its one-line error.
            self.exported = module
            # A student whose chain rule is written out (MomentStudent) needs no autograd:
            # its calls run in inference mode, which skips autograd's bookkeeping on every
            # operator (about a fifth of a call on ethanol). Others differentiate inside.
            student = getattr(module, "model", None)
            self._inference = bool(getattr(student, "gradient_written_out", False))
            self.dtype = torch_dtype(metadata["dtype"])
            self.elements = list(metadata["elements"])
            self.atomic_numbers = [int(z) for z in metadata["atomic_numbers"]]
            self.cutoff = float(metadata["cutoff"])
            self.metadata = metadata
            return
        data = load_checkpoint(path)
        self.dtype = torch_dtype(dtype or data.get("dtype", "float32"))
        module = model_from_checkpoint(data, self.dtype).to(self.device)
        self.model = torch.jit.script(module) if script else module
        self.elements = list(data["elements"])
        self.atomic_numbers = [int(z) for z in module.atomic_numbers.tolist()]
        self.cutoff = float(module.cutoff)
        self.metadata = {k: data.get(k) for k in ("preset", "elements", "teacher", "dataset_hash")}
        self.metadata["cutoff"] = self.cutoff

    def __getstate__(self) -> dict[str, Any]:
        """Pickled by the model's absolute path and the loaded file's digest (TorchScript
        modules do not pickle), so an ``Atoms`` with this calculator goes to
        ``multiprocessing``, joblib or dask workers that see the same file; they reload it."""
        state = self.__dict__.copy()
        state.pop("exported", None)
        state.pop("model", None)
        state["path"] = self.path.resolve()
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        path = Path(state["path"])
        if not path.is_file() or _digest(path) != state["_model_digest"]:
            raise InputError(
                f"cannot unpickle StudentCalculator: {path} is missing or changed since it was "
                "loaded; give the workers the same model file"
            )
        fresh = StudentCalculator(path, **state["_options"])
        self.__dict__.update(state)
        self.exported = fresh.exported
        if fresh.exported is None:
            self.model = fresh.model

    def check_state(self, atoms: Atoms, tol: float = 1e-15) -> list[str]:
        """What changed since the last call: ASE's ``compare_atoms``, whose ``allclose``
        checks cost about 70 µs per property request (twice an MD step) on a small molecule,
        answered by exact comparisons where ``tol`` is ASE's default. Exact equality is the
        stricter test (a change below 1e-15 Å is a recalculation, never a stale result)."""
        if tol != 1e-15 or self.atoms is None:
            return super().check_state(atoms, tol)
        before = self.atoms
        ignored = set(self.ignored_changes)
        changes = []
        if "cell" not in ignored and not np.array_equal(before.cell.array, atoms.cell.array):
            changes.append("cell")
        if "pbc" not in ignored and not np.array_equal(before.pbc, atoms.pbc):
            changes.append("pbc")
        arrays = before.arrays.keys() | atoms.arrays.keys()
        for name in all_changes:
            if name in ("cell", "pbc") or name in ignored or name not in arrays:
                continue
            mine = before.arrays.get(name)
            theirs = atoms.arrays.get(name)
            if mine is None or theirs is None or not np.array_equal(mine, theirs):
                changes.append(name)
        return changes

    def calculate(
        self,
        atoms: Atoms | None = None,
        properties: list[str] | None = None,
        system_changes: list[str] = all_changes,
    ) -> None:
        properties = list(properties or ["energy"])
        super().calculate(atoms, properties, system_changes)
        atoms = self.atoms
        if len(atoms) == 0:
            raise InputError("StudentCalculator got an Atoms object with no atoms")
        want_stress = "stress" in properties
        if want_stress and not atoms.pbc.all():
            raise PropertyNotImplementedError(
                "stress needs a cell periodic in all three directions"
            )
        with _torch_threads(self.call_threads(len(atoms))):
            if self.exported is not None:
                self._calculate_exported(atoms, want_stress or bool(atoms.pbc.all()))
            else:
                self._calculate_checkpoint(atoms, want_stress)
        for name, value in self.results.items():
            if not np.isfinite(value).all():
                self.results = {}
                raise InputError(
                    f"the student returned non-finite {name} for finite inputs; "
                    f"{self.path} is broken: train or export it again"
                )

    def call_threads(self, n_atoms: int) -> int:
        """The torch threads a call on ``n_atoms`` atoms runs with (see ``threads``)."""
        if self.threads is not None:
            return self.threads
        if os.environ.get("OMP_NUM_THREADS") or n_atoms >= SERIAL_BELOW_ATOMS:
            return torch.get_num_threads()
        return 1

    def _calculate_checkpoint(self, atoms: Atoms, want_stress: bool) -> None:
        graph = build_graph(atoms, self.cutoff, self.atomic_numbers)
        batch = collate([graph], torch.float64)  # see _calculate_exported
        batch = {key: value.to(self.device) for key, value in batch.items()}
        with torch.jit.optimized_execution(False):  # see _calculate_exported
            out = evaluate(self.model, batch, compute_stress=want_stress or bool(atoms.pbc.all()))
        energy = float(out["energy"][0].detach())
        self.results = {
            "energy": energy,
            "free_energy": energy,
            "forces": out["forces"].detach().double().cpu().numpy(),
            "energies": out["atomic_energies"].detach().double().cpu().numpy(),
        }
        if "stress" in out and atoms.pbc.all():
            s = out["stress"][0].detach().double().cpu().numpy()
            self.results["stress"] = full_3x3_to_voigt_6_stress(s)

    def _calculate_exported(self, atoms: Atoms, with_stress: bool) -> None:
        """One call of the exported module's ``compute``: its own neighbour search, energy,
        forces and virial.

        On a small molecule the module is most of a call, so what surrounds it is kept
        lean: the arrays go in without copies (``torch.from_numpy``; the module copies
        what it keeps), and the module checks the input itself (unknown elements, NaN
        positions or cell); only when it refuses one are the same checks run here, for
        their clearer messages (element symbols, the offending values)."""
        # float64 in, whatever the student's dtype: edge vectors are differences of
        # absolute positions and keep their precision (the module casts them afterwards).
        positions = _shared(atoms.positions, np.float64)
        cell = _shared(atoms.cell.array, np.float64)
        pbc = _shared(atoms.pbc, np.bool_)
        inputs = [
            torch.from_numpy(a) for a in (positions, _shared(atoms.numbers, np.int64), cell, pbc)
        ]
        if self.device.type != "cpu":
            inputs = [tensor.to(self.device) for tensor in inputs]
        # TorchScript's profiling executor re-optimises for every new number of atoms or
        # edges (hundreds of ms each time); MD changes those shapes constantly. Inference
        # mode (see __init__) holds for every call, so the module's neighbour cache, made in
        # it, is only ever used in it.
        with torch.jit.optimized_execution(False), torch.inference_mode(self._inference):
            try:
                out = self.exported.compute(*inputs, with_stress)
            except torch.jit.Error as error:  # the module's own message, not its trace
                species_index(atoms, self.atomic_numbers)
                check_finite(positions, cell, pbc)
                raise InputError(script_error_message(error)) from None
        value = float(out["energy"])
        self.results = {
            "energy": value,
            "free_energy": value,
            "forces": out["forces"].double().cpu().numpy(),
            "energies": out["energies"].double().cpu().numpy(),
        }
        if with_stress and atoms.pbc.all():
            s = out["virial"].double().cpu().numpy() / atoms.get_volume()
            self.results["stress"] = full_3x3_to_voigt_6_stress(s)


def _shared(array: np.ndarray, dtype: type) -> np.ndarray:
    """``array`` as a C-ordered, writable array of ``dtype`` that ``torch.from_numpy`` can
    share: itself where it is one already (the usual case), else a copy."""
    out = np.ascontiguousarray(array, dtype=dtype)
    return out if out.flags.writeable else out.copy()


@contextmanager
def _torch_threads(count: int):
    """Run the block on ``count`` torch intra-op threads, then restore the process's count
    (under a microsecond each way)."""
    before = torch.get_num_threads()
    if count == before:
        yield
        return
    torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _digest(path: Path) -> str:
    import hashlib

    return hashlib.sha256(path.read_bytes()).hexdigest()
