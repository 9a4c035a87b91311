"""Rebuild an exported student from its own weights with the core handover switched on.

    .venv/bin/python torchscript_exports/handover.py OLD.pt NEW.pt

Students trained before ``core_handover`` existed let their learned part see pairs at any
distance, so where they have no data (pairs closer than about 0.7 × the sum of covalent
radii) it may extrapolate into an attraction that beats the ZBL core. With the handover the
learned part's edge weight rises from 0 to 1 across the core's switching range
(``ZBLRepulsion.inner``–``outer`` × the covalent-radii sum); at and beyond ``outer`` it is
exactly 1, so every energy and force of a structure whose pairs all lie beyond it is
unchanged bit for bit. This script checks that on a probe, then writes ``NEW.pt`` with the
same metadata plus ``derived_from`` (the old file's SHA-256 and what changed).
"""

from __future__ import annotations

import argparse
import hashlib
from pathlib import Path

import torch

from mlff_distiller.export.exporter import export_module, load_exported
from mlff_distiller.models import build_model


def rebuild(source: Path, core_handover: bool) -> tuple[torch.nn.Module, dict]:
    """The eager student inside exported file ``source``, built with ``core_handover``."""
    module, metadata = load_exported(source)
    dtype = torch.float64 if metadata["dtype"] == "float64" else torch.float32
    config = {**metadata["model_config"], "core_handover": core_handover}
    model = build_model(metadata["preset"], metadata["elements"], **config).to(dtype)
    state = {
        key.removeprefix("model."): value
        for key, value in module.state_dict().items()
        if key.startswith("model.")
    }
    model.load_state_dict(state)
    return model.eval(), metadata


def _probe_energy(scripted, model, dtype) -> tuple[float, float]:
    """Energy of a small organic molecule through the old file and the rebuilt model."""
    from ase.build import molecule

    from mlff_distiller.models import build_graph, collate, evaluate

    atoms = molecule("CH3CH2OH")
    numbers = [int(z) for z in model.atomic_numbers.tolist()]
    batch = collate([build_graph(atoms, float(model.cutoff), numbers)], dtype)
    rebuilt = float(evaluate(model, batch)["energy"][0].detach())
    old = scripted(
        torch.tensor(atoms.positions, dtype=dtype),
        torch.tensor(atoms.numbers),
        torch.zeros(3, 3, dtype=dtype),
        torch.tensor([False] * 3),
    )
    return float(old.detach()), rebuilt


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("source", type=Path, help="an exported student (format 1 or later)")
    parser.add_argument("target", type=Path, help="where to write the rebuilt student")
    args = parser.parse_args()
    scripted, _ = load_exported(args.source)
    same, metadata = rebuild(args.source, core_handover=False)
    dtype = next(same.parameters()).dtype
    old, rebuilt = _probe_energy(scripted, same, dtype)
    if abs(old - rebuilt) > 1e-4 * max(1.0, abs(old)):
        raise SystemExit(f"rebuilding {args.source} changed its energy: {old} -> {rebuilt} eV")
    model, _ = rebuild(args.source, core_handover=True)
    _, handed = _probe_energy(scripted, model, dtype)
    if handed != rebuilt:
        raise SystemExit(f"the handover changed ethanol's energy: {rebuilt} -> {handed} eV")
    digest = hashlib.sha256(args.source.read_bytes()).hexdigest()
    metadata = {
        **metadata,
        "model_config": {**metadata["model_config"], "core_handover": True},
        "derived_from": {"sha256": digest, "change": "core_handover switched on"},
    }
    export_module(model, args.target, metadata)
    print(f"wrote {args.target}: ethanol {old:.6f} eV before and after")


if __name__ == "__main__":
    main()
