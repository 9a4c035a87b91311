"""Student presets: sizes users of this field ask for. Every key can be overridden."""

from __future__ import annotations

from typing import Any

#: Model hyperparameters per preset (``hidden``: widths of the energy MLP).
PRESETS: dict[str, dict[str, Any]] = {
    "standard": {
        "cutoff": 5.0,
        "n_basis": 8,
        "n_radial": 16,
        "max_rank": 3,
        "n_mix": 12,
        "radial_hidden": 48,
        "hidden": [256, 256],
    },
    "tiny": {
        "cutoff": 5.0,
        "n_basis": 8,
        "n_radial": 12,
        "max_rank": 3,
        "n_mix": 8,
        "radial_hidden": 32,
        "hidden": [128, 128],
    },
    "ultra-tiny": {
        "cutoff": 4.5,
        "n_basis": 6,
        "n_radial": 8,
        "max_rank": 2,
        "n_mix": 6,
        "radial_hidden": 16,
        "hidden": [64, 64],
    },
}

MODEL_KEYS = (
    "cutoff",
    "n_basis",
    "n_radial",
    "max_rank",
    "n_mix",
    "radial_hidden",
    "hidden",
    "envelope_p",
)


def model_config(preset: str, **overrides: Any) -> dict[str, Any]:
    """The model hyperparameters of ``preset`` with ``overrides`` applied."""
    if preset not in PRESETS:
        raise ValueError(f"unknown preset {preset!r}; choose one of {', '.join(PRESETS)}")
    unknown = set(overrides) - set(MODEL_KEYS)
    if unknown:
        raise ValueError(
            f"unknown model option(s) {', '.join(sorted(unknown))}; known: {', '.join(MODEL_KEYS)}"
        )
    return {**PRESETS[preset], **overrides}
