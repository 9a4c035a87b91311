"""Training configuration: defaults, YAML files and command-line overrides.

Every key can be set in a YAML file (``mlff-distill train --config train.yaml``), on the
command line (``--set epochs=50 --set lr=1e-3``) or as a keyword of
:func:`mlff_distiller.training.train`.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from ..errors import InputError
from ..models.presets import MODEL_KEYS, PRESETS

#: Validation metrics ``select_on`` can name (force errors in eV/Å).
SELECT_ON = ("force_rmse", "force_mae")

#: Training defaults; model keys (cutoff, n_radial, hidden, ...) come from the preset.
DEFAULTS: dict[str, Any] = {
    "preset": "tiny",
    "seed": 0,
    "dtype": "float32",
    "epochs": 100,
    "batch_size": 8,
    "lr": 2e-3,
    "min_lr_factor": 0.02,
    "warmup_epochs": 2,
    "weight_decay": 1e-5,
    "ema_decay": 0.99,
    "grad_clip": 10.0,
    "patience": 30,
    # The validation metric that picks best.pt and drives early stopping: force_rmse, or
    # force_mae (less dominated by the few large-force frames of displaced structures).
    "select_on": "force_rmse",
    "energy_weight": 20.0,
    "forces_weight": 10.0,
    "stress_weight": 1.0,
    # Force errors per component above this (eV/Å) count linearly, not squared (a Huber
    # loss, equal to the squared error below it): the few frames of squeezed bonds and
    # close contacts, whose errors are tens of times those of MD frames, stop dominating
    # the fit. 0 is the plain squared error. The shipped students were fine-tuned 30 epochs
    # with 0.05 (standard v8, tiny v12): own 300 K MD 0.048 -> 0.044 and 0.053 -> 0.049
    # eV/Å (benchmarks/results/fidelity-v8-v12.md). That it is the loss and not the extra
    # epochs: six epochs of the standard v7 with it against six without gave 0.046 against
    # 0.048 (a scratch A/B, both measured by benchmarks/fidelity.py).
    "force_huber_delta": 0.0,
    # With init_from: the weights written to blended.pt (and returned, and reported on) are
    # this fraction of init_from's plus the rest of the trained ones (a linear blend of the
    # two, "WiSE-FT"); 0 is no blend. A fine-tune that improves MD-like frames can also
    # drift where no frame looks (the standard v9 candidate grew a 1.5 eV energy well
    # between two lone carbon atoms, which v8, its start, had not); part of the start's
    # weights puts that back while keeping most of the gain.
    "init_blend": 0.0,
    # The teacher's per-atom energies (eV per atom, squared) where the dataset has them:
    # one label per atom instead of one per frame. 0 trains on frame energies only.
    # benchmarks/atom_energy_targets.py: weights 5 and 20 cut the energy error on unseen
    # molecules (31.9 -> 26.3 / 22.6 meV/atom) but not the force error (0.398 -> 0.414 /
    # 0.423 eV/Å), so it is off by default.
    "atom_energy_weight": 0.0,
    "split_by": "group",
    "split_fractions": [0.8, 0.1, 0.1],
    "deterministic": True,
    "threads": 0,
}
#: Options with no default, in a config only when given. ``init_from``: a training
#: checkpoint, an exported student file or ``shipped:NAME`` (a student shipped with the
#: package, e.g. ``shipped:sevennet0-tiny``) whose weights, elements, model and
#: normalisation the student starts from (fine-tuning) instead of a random initialisation.
OPTIONAL = ("init_from",)


def make_config(preset: str, overrides: dict[str, Any]) -> dict[str, Any]:
    """Defaults, then the preset's model keys, then ``overrides``; unknown keys are errors."""
    if preset not in PRESETS:
        raise InputError(f"unknown preset {preset!r}; choose one of {', '.join(PRESETS)}")
    known = set(DEFAULTS) | set(MODEL_KEYS) | set(OPTIONAL)
    unknown = set(overrides) - known
    if unknown:
        raise InputError(
            f"unknown training option(s) {', '.join(sorted(unknown))}; "
            f"known: {', '.join(sorted(known))}"
        )
    if overrides.get("preset", preset) != preset:
        raise InputError(
            f"the options say preset {overrides['preset']!r} but the run's preset is {preset!r}; "
            "choose the preset once (the preset argument or --preset)"
        )
    config = {**DEFAULTS, **PRESETS[preset], **overrides, "preset": preset}
    for key, default in {**DEFAULTS, **PRESETS[preset]}.items():
        if key != "pair_floors":  # "data", a mapping or none: the model checks it
            config[key] = _like(key, config[key], default)
    if config["dtype"] not in ("float32", "float64"):
        raise InputError(f"dtype must be float32 or float64, got {config['dtype']!r}")
    if config["select_on"] not in SELECT_ON:
        raise InputError(
            f"select_on must be one of {', '.join(SELECT_ON)}, got {config['select_on']!r}"
        )
    init = config.get("init_from")
    if "init_from" in config and (not isinstance(init, str) or not init.strip()):
        raise InputError(f"training option init_from must be a path or shipped:NAME, got {init!r}")
    if config["force_huber_delta"] < 0:
        raise InputError(
            f"force_huber_delta must be 0 (squared error) or a positive force in eV/Å, "
            f"got {config['force_huber_delta']}"
        )
    if not 0.0 <= config["init_blend"] < 1.0:
        raise InputError(
            f"init_blend must be at least 0 (no blend) and below 1 (all init_from), "
            f"got {config['init_blend']}"
        )
    if config["init_blend"] > 0 and "init_from" not in config:
        raise InputError("init_blend blends the trained weights with init_from's: give init_from")
    for key in ("epochs", "batch_size"):
        if int(config[key]) < 1:
            raise InputError(f"{key} must be at least 1, got {config[key]}")
    return config


def _like(key: str, value: Any, default: Any) -> Any:
    """``value`` checked against the type of the option's default (an int option takes a
    whole number, a float option any number, a list option a list); an error names the key."""
    kind = type(default)
    if isinstance(default, bool):
        ok = isinstance(value, bool)
    elif isinstance(default, int):
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif isinstance(default, float):
        if isinstance(value, str):  # YAML 1.1 reads 2e-3 (no dot) as a string
            try:
                value = float(value)
            except ValueError:
                pass
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        value = float(value) if ok else value
    elif isinstance(default, (list, tuple)):
        ok = isinstance(value, (list, tuple))
    else:
        ok = isinstance(value, kind)
    if not ok:
        names = {bool: "true or false", int: "a whole number", float: "a number",
                 list: "a list, e.g. [128, 128]", str: "a string"}  # fmt: skip
        raise InputError(
            f"training option {key} must be {names.get(kind, kind.__name__)}, got {value!r}"
        )
    return value


def parse_overrides(pairs: list[str]) -> dict[str, Any]:
    """``["epochs=5", "hidden=[64,64]"]`` → ``{"epochs": 5, "hidden": [64, 64]}`` (YAML values)."""
    import yaml

    out: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise InputError(f"override {pair!r} must look like key=value, e.g. epochs=50")
        out[key.strip()] = yaml.safe_load(value)
    return out


#: Options added after runs were made, left out of :func:`config_hash` at their default
#: (:data:`DEFAULTS`) so that a run started before them still resumes.
_HASHED_ONLY_IF_SET = ("force_huber_delta", "init_blend")


def config_hash(config: dict[str, Any]) -> str:
    kept = {k: v for k, v in config.items() if not (k in _HASHED_ONLY_IF_SET and v == DEFAULTS[k])}
    return hashlib.sha256(json.dumps(kept, sort_keys=True).encode()).hexdigest()[:16]
