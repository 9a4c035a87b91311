"""Rebuild an exported student from its own weights with the core handover switched on.

    .venv/bin/python torchscript_exports/handover.py OLD.pt NEW.pt [--pair-floors-from S.json]

Students trained before ``core_handover`` existed let their learned part see pairs at any
distance, so where they have no data (pairs closer than about 0.7 × the sum of covalent
radii) it may extrapolate into an attraction that beats the ZBL core. With the handover the
learned part's edge weight rises from 0 to 1 across the core's switching range
(``ZBLRepulsion.inner``–``outer`` × the covalent-radii sum); at and beyond ``outer`` it is
exactly 1, so every energy and force of a structure whose pairs all lie beyond it is
unchanged bit for bit. This script checks that on a probe, then writes ``NEW.pt`` with the
same metadata plus ``derived_from`` (the old file's SHA-256 and what changed).

With ``--pair-floors-from`` (a structure cache, e.g. a run's
``structures/structures.json``: the structures the student was trained on) the rebuilt
student also gets ``pair_floors`` measured on them (``models.graph.pair_floors``): each
element pair's handover ends no closer than those structures had that pair, as students
trained with ``pair_floors: data`` do. Every one of those structures keeps its energy
(checked on all of them, to 1e-9 relative in float64).
"""

from __future__ import annotations

import argparse
import copy
import hashlib
from pathlib import Path

import torch

from mlff_distiller.export.exporter import export_module, load_exported
from mlff_distiller.models import build_model


def rebuild(source: Path, **changes) -> tuple[torch.nn.Module, dict]:
    """The eager student inside exported file ``source``, its model config with
    ``changes`` (``core_handover``, ``pair_floors``)."""
    module, metadata = load_exported(source)
    dtype = torch.float64 if metadata["dtype"] == "float64" else torch.float32
    config = {"pair_floors": None, **metadata["model_config"], **changes}
    model = build_model(metadata["preset"], metadata["elements"], **config).to(dtype)
    # The floors come from ``config`` (an upgraded older file carries zeros for them).
    state = {
        key.removeprefix("model."): value
        for key, value in module.state_dict().items()
        if key.startswith("model.") and key != "model.zbl.floor"
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


def measured_floors(model: torch.nn.Module, path: Path) -> tuple[dict[str, float], list]:
    """The pair floors of the structures in cache ``path`` for ``model``, and their graphs."""
    from mlff_distiller.data.cache import read_structure_cache
    from mlff_distiller.models import build_graph
    from mlff_distiller.models.graph import pair_floors

    numbers = [int(z) for z in model.atomic_numbers.tolist()]
    graphs = [build_graph(a, float(model.cutoff), numbers) for a in read_structure_cache(path)]
    return pair_floors(graphs, numbers, float(model.cutoff)), graphs


def _same_energies(before: torch.nn.Module, after: torch.nn.Module, graphs: list) -> float:
    """The largest relative energy change from ``before`` to ``after`` over ``graphs``
    (float64 copies of both, batches of 32)."""
    from mlff_distiller.models import collate, evaluate

    before, after = copy.deepcopy(before).double(), copy.deepcopy(after).double()
    worst = 0.0
    for start in range(0, len(graphs), 32):
        batch = collate(graphs[start : start + 32], torch.float64)
        e0 = evaluate(before, batch)["energy"].detach()
        e1 = evaluate(after, batch)["energy"].detach()
        worst = max(worst, float(((e1 - e0).abs() / e0.abs().clamp(min=1.0)).max()))
    return worst


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("source", type=Path, help="an exported student (format 1 or later)")
    parser.add_argument("target", type=Path, help="where to write the rebuilt student")
    parser.add_argument(
        "--pair-floors-from",
        type=Path,
        metavar="STRUCTURES",
        help="also set pair_floors from this structure cache (the student's training set)",
    )
    args = parser.parse_args()
    scripted, _ = load_exported(args.source)
    same, metadata = rebuild(args.source, core_handover=False)
    dtype = next(same.parameters()).dtype
    old, rebuilt = _probe_energy(scripted, same, dtype)
    if abs(old - rebuilt) > 1e-4 * max(1.0, abs(old)):
        raise SystemExit(f"rebuilding {args.source} changed its energy: {old} -> {rebuilt} eV")
    changes: dict = {"core_handover": True}
    change = "core_handover switched on"
    if args.pair_floors_from:
        floors, graphs = measured_floors(same, args.pair_floors_from)
        changes["pair_floors"] = floors
        change += f"; pair_floors from {len(graphs)} structures ({args.pair_floors_from})"
    model, _ = rebuild(args.source, **changes)
    _, handed = _probe_energy(scripted, model, dtype)
    if args.pair_floors_from:
        handed_only, _ = rebuild(args.source, core_handover=True)
        worst = _same_energies(handed_only, model, graphs)
        if worst > 1e-9:
            raise SystemExit(
                f"the pair floors changed a training structure's energy by {worst:.3g}"
            )
        print(f"pair floors: {len(graphs)} structures keep their energies (largest change "
              f"{worst:.1e} relative); {floors}")  # fmt: skip
    elif handed != rebuilt:
        raise SystemExit(f"the handover changed ethanol's energy: {rebuilt} -> {handed} eV")
    digest = hashlib.sha256(args.source.read_bytes()).hexdigest()
    metadata.pop("file_format_version", None)  # the new file is of the current format
    metadata = {
        **metadata,
        "model_config": {**metadata["model_config"], **changes},
        "derived_from": {"sha256": digest, "change": change},
    }
    export_module(model, args.target, metadata)
    print(f"wrote {args.target}: ethanol {old:.6f} eV before and after")


if __name__ == "__main__":
    main()
