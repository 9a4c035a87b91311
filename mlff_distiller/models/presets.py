"""Student presets: sizes users of this field ask for. Every key can be overridden."""

from __future__ import annotations

from typing import Any

#: Model hyperparameters per preset (``hidden``: MLP widths).
PRESETS: dict[str, dict[str, Any]] = {
    "standard": {"cutoff": 5.0, "n_basis": 8, "n_radial": 16, "hidden": [400, 400]},
    "tiny": {"cutoff": 5.0, "n_basis": 8, "n_radial": 12, "hidden": [160, 160]},
    "ultra-tiny": {"cutoff": 4.5, "n_basis": 6, "n_radial": 8, "hidden": [80, 80]},
}

MODEL_KEYS = ("cutoff", "n_basis", "n_radial", "hidden", "envelope_p")


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
