"""Student presets: sizes users of this field ask for. Every key can be overridden.

``architecture`` picks the model class: ``moment`` (:class:`~.moment.MomentStudent`, moments
up to rank 2) or ``tensor_moment`` (:class:`~.tensor_moment.TensorMomentStudent`, rank 3 and
per-edge element-pair radial MLPs, whose cost does not grow with the element count).
Every preset hands close pairs from the learned part to the ZBL core (``core_handover``), no
closer than its training data had each element pair (``pair_floors: data``).
"""

from __future__ import annotations

from typing import Any

from ..errors import InputError

#: Model hyperparameters per preset (``hidden``: widths of the energy MLP).
PRESETS: dict[str, dict[str, Any]] = {
    "standard": {
        "architecture": "moment",
        "cutoff": 5.0,
        "n_basis": 8,
        "n_radial": 16,
        "hidden": [400, 400],
        "core_handover": True,
        "pair_floors": "data",
    },
    "tiny": {
        "architecture": "moment",
        "cutoff": 5.0,
        "n_basis": 8,
        "n_radial": 12,
        "hidden": [160, 160],
        "core_handover": True,
        "pair_floors": "data",
    },
    "ultra-tiny": {
        "architecture": "moment",
        "cutoff": 4.5,
        "n_basis": 6,
        "n_radial": 8,
        "hidden": [80, 80],
        "core_handover": True,
        "pair_floors": "data",
    },
    "standard-l3": {
        "architecture": "tensor_moment",
        "cutoff": 5.0,
        "n_basis": 8,
        "n_radial": 16,
        "max_rank": 3,
        "n_mix": 12,
        "radial_hidden": 48,
        "hidden": [256, 256],
        "core_handover": True,
        "pair_floors": "data",
    },
    "tiny-l3": {
        "architecture": "tensor_moment",
        "cutoff": 5.0,
        "n_basis": 8,
        "n_radial": 12,
        "max_rank": 3,
        "n_mix": 8,
        "radial_hidden": 32,
        "hidden": [128, 128],
        "core_handover": True,
        "pair_floors": "data",
    },
}

#: The keys each architecture takes (``architecture`` itself is fixed by the preset).
ARCHITECTURE_KEYS: dict[str, tuple[str, ...]] = {
    "moment": (
        "cutoff",
        "n_basis",
        "n_radial",
        "hidden",
        "envelope_p",
        "core_handover",
        "core_window",
        "pair_floors",
    ),
    "tensor_moment": (
        "cutoff",
        "n_basis",
        "n_radial",
        "max_rank",
        "n_mix",
        "radial_hidden",
        "hidden",
        "envelope_p",
        "core_handover",
        "core_window",
        "pair_floors",
    ),
}
#: Every model key of any architecture (training configs may carry them).
MODEL_KEYS = tuple(dict.fromkeys(k for keys in ARCHITECTURE_KEYS.values() for k in keys))


def model_config(preset: str, **overrides: Any) -> dict[str, Any]:
    """The model hyperparameters of ``preset`` with ``overrides`` applied (``architecture``
    included)."""
    if preset not in PRESETS:
        raise InputError(f"unknown preset {preset!r}; choose one of {', '.join(PRESETS)}")
    architecture = PRESETS[preset]["architecture"]
    known = ARCHITECTURE_KEYS[architecture]
    unknown = set(overrides) - set(known)
    if unknown:
        raise InputError(
            f"unknown model option(s) {', '.join(sorted(unknown))} for preset {preset!r}; "
            f"known: {', '.join(known)}"
        )
    return {**PRESETS[preset], **overrides}
