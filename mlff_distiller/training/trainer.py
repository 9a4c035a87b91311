"""Distillation training: a student learns the teacher's energies, forces and stress.

One process, or several with ``torchrun`` (data parallel over ``torch.distributed``, gloo on
CPU): every rank takes its share of each batch, the loss is normalised by the whole batch,
and gradients are summed across ranks, so N processes follow the same trajectory as one.
"""

from __future__ import annotations

import hashlib
import math
import os
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from ase.stress import voigt_6_to_full_3x3_stress

from .._progress import progress_bar, say
from ..data import dataset_metadata, read_dataset, split_indices
from ..devices import torch_dtype
from ..errors import InputError, MissingFileError
from ..models import build_graph, build_model, collate, evaluate
from ..models.checkpoint import (
    CheckpointError,
    load_checkpoint,
    model_from_checkpoint,
    save_checkpoint,
)
from ..models.graph import edge_vectors, pair_floors
from ..models.presets import MODEL_KEYS
from ..shipped import resolve_student
from .config import config_hash, make_config
from .metrics import write_metrics
from .report import test_report


def _file_hash(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()[:16]


def _dist() -> tuple[int, int]:
    """(rank, world size); initialises the gloo process group under ``torchrun``."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world > 1:
        import torch.distributed as dist

        if not dist.is_initialized():
            dist.init_process_group("gloo")
        return dist.get_rank(), world
    return 0, 1


class _Item:
    """One training frame: its graph and labels."""

    def __init__(self, atoms: Any, cutoff: float, numbers: list[int]) -> None:
        self.graph = build_graph(atoms, cutoff, numbers)
        self.n_atoms = len(atoms)
        self.energy = float(atoms.get_potential_energy())
        self.forces = atoms.get_forces()
        self.numbers = atoms.numbers
        # The teacher's per-atom energies, where the dataset has them (SevenNet gives them).
        atom_energies = atoms.calc.results.get("energies")
        self.atom_energies = None if atom_energies is None else np.asarray(atom_energies)
        stress = atoms.calc.results.get("stress") if atoms.pbc.all() else None
        self.stress = None if stress is None else voigt_6_to_full_3x3_stress(np.asarray(stress))
        self.volume = (
            float(abs(np.linalg.det(atoms.cell.array))) if self.stress is not None else 0.0
        )


def _labels(items: list[_Item], dtype: torch.dtype) -> dict[str, torch.Tensor]:
    stress = [it.stress if it.stress is not None else np.full((3, 3), np.nan) for it in items]
    atom_energies = [
        it.atom_energies if it.atom_energies is not None else np.full(it.n_atoms, np.nan)
        for it in items
    ]
    return {
        "atom_energies": torch.tensor(np.concatenate(atom_energies), dtype=dtype),
        "energy": torch.tensor([it.energy for it in items], dtype=dtype),
        "forces": torch.tensor(np.concatenate([it.forces for it in items]), dtype=dtype),
        "stress": torch.tensor(np.stack(stress), dtype=dtype),
        "volume": torch.tensor([it.volume for it in items], dtype=dtype),
    }


def _initial_student(path: Path, preset: str, cfg: dict[str, Any]) -> dict[str, Any]:
    """The checkpoint data of ``init_from``'s student, checked against the run's preset
    and model options (a fine-tuned student keeps its starting student's model)."""
    from ..export import student_checkpoint

    data = student_checkpoint(path)
    if data.get("preset") != preset:
        raise InputError(
            f"init_from {str(path)!r} is a {data.get('preset')!r} student, but this run trains "
            f"a {preset!r} one; use preset {data.get('preset')!r} or another init_from"
        )
    given = data["model_config"]
    differ = [
        f"{key}={cfg[key]!r} (its {given[key]!r})"
        for key in MODEL_KEYS
        if key in given and key != "pair_floors" and key in cfg and cfg[key] != given[key]
    ]
    if differ:
        raise InputError(
            f"init_from {str(path)!r} was built with other model options than this run asks: "
            f"{', '.join(differ)}; drop those options or init_from"
        )
    return data


def _normalisation(
    items: list[_Item], numbers: list[int], atom_targets: bool = False
) -> dict[str, Any]:
    """Per-element reference energies, force RMS, neighbours.

    With per-atom energy targets (``atom_targets``) and every frame labelled with them, the
    reference energy of an element is the mean of the teacher's per-atom energies of that
    element, so the learned part fits what is left of each atom's energy; otherwise it is
    the least-squares fit of frame energies on composition.
    """
    if atom_targets and all(it.atom_energies is not None for it in items):
        z = np.concatenate([it.numbers for it in items])
        e = np.concatenate([it.atom_energies for it in items])
        shift = np.array([e[z == number].mean() if (z == number).any() else 0.0
                          for number in numbers])  # fmt: skip
    else:
        counts = np.array([[np.sum(it.numbers == z) for z in numbers] for it in items], float)
        energies = np.array([it.energy for it in items])
        ridge = 1e-8 * np.eye(len(numbers))
        shift = np.linalg.solve(counts.T @ counts + ridge, counts.T @ energies)
    forces = np.concatenate([it.forces for it in items])
    edges = sum(it.graph["edge_index"].shape[1] for it in items)
    atoms = sum(it.n_atoms for it in items)
    return {
        "energy_shift": shift.tolist(),
        "energy_scale": float(np.sqrt(np.mean(forces**2))) or 1.0,
        "avg_neighbors": max(edges / atoms, 1.0),
    }


def _standardise_features(
    model: torch.nn.Module, items: list[_Item], dtype: torch.dtype, batch_size: int
) -> None:
    """Set the model's feature mean and spread from (up to 512) training frames."""
    features = []
    with torch.no_grad():
        for start in range(0, min(len(items), 512), batch_size):
            batch = collate([it.graph for it in items[start : start + batch_size]], dtype)
            f, _ = model.descriptors(edge_vectors(batch), batch["edge_index"], batch["species"])
            features.append(f.double())
    f = torch.cat(features)
    std = f.std(dim=0) if f.shape[0] > 1 else torch.ones(f.shape[1], dtype=f.dtype)
    model.feature_mean.copy_(f.mean(dim=0))
    model.feature_std.copy_(std.clamp(min=1e-6 * float(std.max()) + 1e-12))


def _lr(step: int, total: int, warmup: int, base: float, min_factor: float) -> float:
    if step < warmup:
        return base * (step + 1) / warmup
    progress = (step - warmup) / max(total - warmup, 1)
    return base * (
        min_factor + (1 - min_factor) * 0.5 * (1 + math.cos(math.pi * min(progress, 1.0)))
    )


def _loss(
    out: dict[str, torch.Tensor],
    labels: dict[str, torch.Tensor],
    n_atoms: torch.Tensor,
    totals: tuple[int, int, int, int],
    config: dict[str, Any],
) -> torch.Tensor:
    """Sums over this rank's frames divided by the whole batch's counts, so the per-rank
    losses add up to the batch mean (frames, force components, periodic frames, atoms with
    a per-atom energy label)."""
    n_frames, n_force, n_stress, n_atom_energies = totals
    de = (out["energy"] - labels["energy"]) / n_atoms
    loss = config["energy_weight"] * (de**2).sum() / n_frames
    df = out["forces"] - labels["forces"]
    delta = config["force_huber_delta"]
    if delta > 0:  # 2 × Huber: the squared error below delta, 2 delta |df| - delta² above
        zero = torch.zeros_like(df)
        force_term = 2.0 * torch.nn.functional.huber_loss(df, zero, reduction="sum", delta=delta)
    else:
        force_term = (df**2).sum()
    loss = loss + config["forces_weight"] * force_term / max(n_force, 1)
    if n_stress and "stress" in out:
        mask = ~torch.isnan(labels["stress"][:, 0, 0])
        if mask.any():
            # Stress as virial per atom (eV), comparable with the energy per atom.
            scale = (labels["volume"] / n_atoms)[mask].view(-1, 1, 1)
            ds = (out["stress"][mask] - labels["stress"][mask]) * scale
            loss = loss + config["stress_weight"] * (ds**2).sum() / (9 * n_stress)
    if n_atom_energies and config["atom_energy_weight"]:
        mask = ~torch.isnan(labels["atom_energies"])
        da = out["atomic_energies"][mask] - labels["atom_energies"][mask]
        loss = loss + config["atom_energy_weight"] * (da**2).sum() / n_atom_energies
    return loss


def _evaluate_items(
    model: torch.nn.Module, items: list[_Item], dtype: torch.dtype, batch_size: int
) -> dict[str, Any]:
    """Predictions and errors of ``model`` on ``items`` (energy per atom, forces)."""
    e_pred, e_ref, n_at, f_pred, f_ref, z = [], [], [], [], [], []
    for start in range(0, len(items), batch_size):
        chunk = items[start : start + batch_size]
        batch = collate([it.graph for it in chunk], dtype)
        out = evaluate(model, batch)
        e_pred.append(out["energy"].detach().double().numpy())
        f_pred.append(out["forces"].detach().double().numpy())
        e_ref.append([it.energy for it in chunk])
        n_at.append([it.n_atoms for it in chunk])
        f_ref.append(np.concatenate([it.forces for it in chunk]))
        z.append(np.concatenate([it.numbers for it in chunk]))
    n = np.concatenate(n_at)
    e_err = (np.concatenate(e_pred) - np.concatenate(e_ref)) / n
    f_err = np.concatenate(f_pred) - np.concatenate(f_ref)
    return {
        "energy_mae_meV_per_atom": float(1e3 * np.abs(e_err).mean()),
        "force_mae_eV_per_A": float(np.abs(f_err).mean()),
        "force_rmse_eV_per_A": float(np.sqrt((f_err**2).mean())),
        "_energy_per_atom": (np.concatenate(e_pred) / n, np.concatenate(e_ref) / n),
        "_forces": (np.concatenate(f_pred), np.concatenate(f_ref)),
        "_numbers": np.concatenate(z),
    }


def train(
    dataset: str | os.PathLike,
    preset: str = "tiny",
    out_dir: str | os.PathLike = "runs/student",
    *,
    config: dict[str, Any] | None = None,
    overwrite: bool = False,
    progress: bool = True,
    **overrides: Any,
) -> Path:
    """Train a student on a labelled dataset; return the best checkpoint's path.

    Parameters
    ----------
    dataset
        An HDF5 dataset from :func:`mlff_distiller.data.label`.
    preset
        ``standard``, ``tiny`` or ``ultra-tiny``.
    out_dir
        Where ``best.pt``, ``last.pt``, ``metrics.csv``/``.json``, ``test_report.json`` and
        ``parity.png`` go. Rerunning with the same config resumes from ``last.pt``.
    config, **overrides
        Training options (see :data:`mlff_distiller.training.config.DEFAULTS` and the preset's
        model keys); keyword overrides win over ``config``.

    Examples
    --------
    >>> best = train("data.h5", "tiny", "runs/tiny", epochs=50)      # doctest: +SKIP
    """
    cfg = make_config(preset, {**(config or {}), **overrides})
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise FileExistsError(
            f"{out} is a file; training writes a directory (best.pt, last.pt, metrics): "
            "give --out a directory name"
        )
    rank, world = _dist()
    dataset = Path(dataset)
    if not dataset.is_file():
        raise MissingFileError(
            f"dataset {str(dataset)!r} does not exist; make one with `mlff-distill dataset label`"
        )
    dataset_hash = _file_hash(dataset)
    run_key = {"config": config_hash(cfg), "dataset": dataset_hash}
    init = None
    if "init_from" in cfg:
        init_path = resolve_student(cfg["init_from"])
        run_key["init_from"] = _file_hash(init_path)
        init = _initial_student(init_path, preset, cfg)

    resume = _resume_state(out, run_key, overwrite)
    # Finished means trained and reported; a run killed while writing its report only
    # writes the report again.
    finished = resume is not None and bool(resume.get("finished"))
    result = out / ("blended.pt" if cfg["init_blend"] > 0 else "best.pt")
    reported = all((out / name).is_file() for name in ("test_report.json", "parity.png"))
    if finished and reported and result.is_file():
        say(progress and rank == 0, f"{result} is already trained; nothing to do")
        return result

    if cfg["threads"]:
        torch.set_num_threads(int(cfg["threads"]))
    torch.manual_seed(cfg["seed"])
    if cfg["deterministic"]:
        torch.use_deterministic_algorithms(True)
    dtype = torch_dtype(cfg["dtype"])

    frames = read_dataset(dataset)
    teacher = dataset_metadata(dataset).get("teacher", {})
    elements = sorted({s for f in frames for s in f.get_chemical_symbols()}, key=_z)
    if init is not None:
        unknown = sorted(set(elements) - set(init["elements"]), key=_z)
        if unknown:
            raise InputError(
                f"the dataset has {', '.join(unknown)}, which init_from's student "
                f"({', '.join(init['elements'])}) does not know; train without init_from"
            )
        elements = list(init["elements"])
    numbers = [_z(el) for el in elements]
    splits = split_indices(
        frames, tuple(cfg["split_fractions"]), by=cfg["split_by"], seed=cfg["seed"]
    )
    if not splits["train"] or not splits["val"]:
        raise InputError(
            "the split left no training or validation frames; add data or change split_fractions"
        )
    items = {
        name: [_Item(frames[i], cfg["cutoff"], numbers) for i in idx]
        for name, idx in splits.items()
    }

    if init is not None:
        # Fine-tuning: the student's model, floors and normalisation stay those of the
        # student it starts from, so that its weights keep their meaning.
        model = model_from_checkpoint(init, dtype).train()
        model_cfg = {k: v for k, v in init["model_config"].items() if k != "avg_neighbors"}
        norm = {
            "energy_shift": model.energy_shift.double().tolist(),
            "energy_scale": float(model.energy_scale),
            "avg_neighbors": float(init["model_config"]["avg_neighbors"]),
        }
    else:
        norm = _normalisation(items["train"], numbers, cfg["atom_energy_weight"] > 0)
        model_cfg = {k: cfg[k] for k in MODEL_KEYS if k in cfg}
        if model_cfg.get("pair_floors") == "data":
            graphs = [it.graph for it in items["train"]]
            model_cfg["pair_floors"] = pair_floors(graphs, numbers, float(cfg["cutoff"]))
        model = build_model(preset, elements, **model_cfg, avg_neighbors=norm["avg_neighbors"])
        model = model.to(dtype)  # before the shifts, so float64 runs keep them exact
        model.energy_shift.copy_(torch.tensor(norm["energy_shift"], dtype=torch.float64))
        model.energy_scale.fill_(norm["energy_scale"])
        _standardise_features(model, items["train"], dtype, cfg["batch_size"])
    params = [p for p in model.parameters()]
    optimizer = torch.optim.AdamW(params, lr=cfg["lr"], weight_decay=cfg["weight_decay"])
    ema = [p.detach().clone() for p in params]

    steps_per_epoch = math.ceil(len(items["train"]) / cfg["batch_size"])
    total_steps = steps_per_epoch * cfg["epochs"]
    warmup = steps_per_epoch * cfg["warmup_epochs"]
    state = {"epoch": 0, "step": 0, "best": math.inf, "best_epoch": -1, "stale": 0, "history": []}
    if resume is not None:
        model.load_state_dict(resume["train_state"])
        optimizer.load_state_dict(resume["optimizer"])
        for e, saved in zip(ema, resume["ema"]):
            e.copy_(saved)
        state = {k: resume[k] for k in state}
        say(progress and rank == 0, f"resuming {out} after epoch {state['epoch']}")

    base = {
        "preset": preset,
        "elements": elements,
        "model_config": {**model_cfg, "avg_neighbors": norm["avg_neighbors"]},
        "dtype": cfg["dtype"],
        "normalization": norm,
        "config": cfg,
        "run_key": run_key,
        "dataset": str(dataset),
        "dataset_hash": dataset_hash,
        "teacher": teacher,
        "splits": {k: len(v) for k, v in splits.items()},
    }
    # Created only now: a run that fails on its data or config leaves no empty directory.
    out.mkdir(parents=True, exist_ok=True)
    bar = progress_bar(cfg["epochs"], state["epoch"], progress and rank == 0, "epoch", "training")
    try:
        for epoch in range(state["epoch"], state["epoch"] if finished else cfg["epochs"]):
            model.train()
            generator = torch.Generator().manual_seed(cfg["seed"] * 100_003 + epoch)
            order = torch.randperm(len(items["train"]), generator=generator).tolist()
            epoch_loss = 0.0
            for start in range(0, len(order), cfg["batch_size"]):
                batch_items = [items["train"][i] for i in order[start : start + cfg["batch_size"]]]
                lr = _lr(state["step"], total_steps, warmup, cfg["lr"], cfg["min_lr_factor"])
                for group in optimizer.param_groups:
                    group["lr"] = lr
                loss_value = _step(model, optimizer, batch_items, rank, world, dtype, cfg)
                epoch_loss += loss_value
                state["step"] += 1
                decay = min(cfg["ema_decay"], (1 + state["step"]) / (10 + state["step"]))
                with torch.no_grad():
                    for e, p in zip(ema, params):
                        e.mul_(decay).add_(p.detach(), alpha=1 - decay)

            with _swapped(params, ema):
                model.eval()
                val = _evaluate_items(model, items["val"], dtype, cfg["batch_size"])
                score = val[f"{cfg['select_on']}_eV_per_A"]
                improved = score < state["best"]
                record = {
                    "epoch": epoch + 1,
                    "step": state["step"],
                    "lr": lr,
                    "train_loss": epoch_loss / steps_per_epoch,
                    **{f"val_{k}": v for k, v in val.items() if not k.startswith("_")},
                    "time": time.time(),
                }
                state["history"].append(record)
                if improved:
                    state["best"], state["best_epoch"], state["stale"] = (
                        score,
                        epoch + 1,
                        0,
                    )
                    if rank == 0:
                        save_checkpoint(
                            {
                                **base,
                                "model_state": model.state_dict(),
                                "epoch": epoch + 1,
                                "metrics": record,
                            },
                            out / "best.pt",
                        )
                else:
                    state["stale"] += 1
            state["epoch"] = epoch + 1
            stop = state["stale"] >= cfg["patience"]
            if rank == 0:
                save_checkpoint(
                    {
                        **base,
                        **state,
                        "train_state": model.state_dict(),
                        "optimizer": optimizer.state_dict(),
                        "ema": ema,
                        "finished": stop or state["epoch"] == cfg["epochs"],
                    },
                    out / "last.pt",
                )
                write_metrics(state["history"], out)
            bar.update(1)
            bar.set_postfix(
                loss=f"{record['train_loss']:.4g}", val_F_rmse=f"{val['force_rmse_eV_per_A']:.4f}"
            )
            if stop:
                say(
                    progress and rank == 0,
                    f"early stop: no improvement for {cfg['patience']} epochs",
                )
                break
    finally:
        bar.close()

    if rank == 0 and cfg["init_blend"] > 0:
        blended = blend_checkpoints(init, load_checkpoint(out / "best.pt"), cfg["init_blend"])
        save_checkpoint(blended, result)
    if rank == 0:
        test_report(
            out,
            items.get("test") or items["val"],
            dtype,
            cfg["batch_size"],
            _evaluate_items,
            "test" if items.get("test") else "val",
            checkpoint=result.name,
        )
    return result


def blend_checkpoints(
    start: dict[str, Any], trained: dict[str, Any], weight: float
) -> dict[str, Any]:
    """``trained`` with every trained parameter replaced by ``weight × start's + (1 −
    weight) × trained's`` (a fine-tune blended back towards the student it started from).

    Only a fine-tune of ``start`` can be blended with it: the same preset, elements, model
    options and every non-trained number (normalisation, floors) equal; anything else is an
    error, since their weights would not mean the same thing.
    """
    if not 0.0 <= weight <= 1.0:
        raise InputError(f"a blend weight lies between 0 and 1, got {weight}")
    same = (
        start.get("preset") == trained.get("preset")
        and list(start.get("elements", [])) == list(trained.get("elements", []))
        and start.get("model_config") == trained.get("model_config")
    )
    if not same:
        raise InputError(
            "these checkpoints are not a student and its fine-tune (preset, elements or "
            "model options differ): they cannot be blended"
        )
    # Through the models: an exported file's state lacks the buffers derived at build time.
    dtype = torch_dtype(trained.get("dtype", "float32"))
    first_model = model_from_checkpoint(start, dtype)
    model = model_from_checkpoint(trained, dtype)
    names = {name for name, _ in model.named_parameters()}
    first_state = first_model.state_dict()
    state = {}
    for key, value in model.state_dict().items():
        first = first_state[key]
        if key in names:
            state[key] = (weight * first.double() + (1.0 - weight) * value.double()).to(value.dtype)
        elif not torch.equal(first, value):
            raise InputError(
                f"these checkpoints differ in {key}, which training does not change: "
                "they are not a student and its fine-tune, and cannot be blended"
            )
        else:
            state[key] = value.clone()
    # best.pt's validation metrics describe it, not the blend (test_report.json does that).
    kept = {key: value for key, value in trained.items() if key != "metrics"}
    return {**kept, "model_state": state, "blend": {"init_weight": weight}}


def _step(model, optimizer, batch_items, rank: int, world: int, dtype, cfg) -> float:
    """One optimiser step; each rank computes its share, gradients are summed over ranks."""
    totals = (
        len(batch_items),
        3 * sum(it.n_atoms for it in batch_items),
        sum(1 for it in batch_items if it.stress is not None),
        sum(it.n_atoms for it in batch_items if it.atom_energies is not None),
    )
    mine = batch_items[rank::world]
    optimizer.zero_grad(set_to_none=False)
    loss_value = 0.0
    if mine:
        batch = collate([it.graph for it in mine], dtype)
        labels = _labels(mine, dtype)
        out = evaluate(model, batch, compute_stress=totals[2] > 0, create_graph=True)
        loss = _loss(out, labels, batch["n_atoms"].to(dtype), totals, cfg)
        loss.backward()
        loss_value = float(loss.detach())
    else:  # a rank with nothing this step still joins the gradient sum
        for p in model.parameters():
            if p.grad is None:
                p.grad = torch.zeros_like(p)
    if world > 1:
        import torch.distributed as dist

        for p in model.parameters():
            if p.grad is None:
                p.grad = torch.zeros_like(p)
            dist.all_reduce(p.grad)
        total = torch.tensor([loss_value], dtype=torch.float64)
        dist.all_reduce(total)
        loss_value = float(total)
    torch.nn.utils.clip_grad_norm_(model.parameters(), cfg["grad_clip"])
    optimizer.step()
    return loss_value


class _swapped:
    """Temporarily load the EMA weights into the model's parameters."""

    def __init__(self, params: list[torch.Tensor], ema: list[torch.Tensor]) -> None:
        self.params, self.ema = params, ema

    def __enter__(self) -> None:
        self.saved = [p.detach().clone() for p in self.params]
        with torch.no_grad():
            for p, e in zip(self.params, self.ema):
                p.copy_(e)

    def __exit__(self, *exc: Any) -> None:
        with torch.no_grad():
            for p, s in zip(self.params, self.saved):
                p.copy_(s)


def _resume_state(out: Path, run_key: dict[str, str], overwrite: bool) -> dict[str, Any] | None:
    last = out / "last.pt"
    if not last.exists():
        return None
    try:
        data = load_checkpoint(last)
    except CheckpointError:
        data = None
    if data is not None and data.get("run_key") == run_key and not overwrite:
        return data
    if not overwrite:
        raise FileExistsError(
            f"{out} holds a training run with another config or dataset; "
            "choose another output directory or pass overwrite=True (--overwrite)"
        )
    for name in ("last.pt", "best.pt", "blended.pt", "test_report.json", "parity.png"):
        (out / name).unlink(missing_ok=True)
    return None


def _z(symbol: str) -> int:
    from ase.data import atomic_numbers

    return atomic_numbers[symbol]
