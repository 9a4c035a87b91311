"""Radial basis, smooth cutoff envelope and the ZBL repulsive core.

Everything here is smooth where it must be: the envelope and its first two derivatives
vanish at the cutoff, so energies and forces are continuous as atoms cross it.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from ase.data import atomic_numbers as atomic_numbers_table
from ase.data import chemical_symbols
from torch import nn

from ..errors import InputError


class PolynomialEnvelope(nn.Module):
    """``u(x) = 1 − (p+1)(p+2)/2 xᵖ + p(p+2) xᵖ⁺¹ − p(p+1)/2 xᵖ⁺²`` for ``x = r / r_c < 1``,
    zero beyond; ``u``, ``u'`` and ``u''`` vanish at ``x = 1``."""

    def __init__(self, p: int = 6) -> None:
        super().__init__()
        self.p = p

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        p = float(self.p)
        xp = torch.pow(x, self.p)
        u = (
            1.0
            - (p + 1.0) * (p + 2.0) / 2.0 * xp
            + p * (p + 2.0) * xp * x
            - p * (p + 1.0) / 2.0 * xp * x * x
        )
        return torch.where(x < 1.0, u, torch.zeros_like(u))

    def derivative(self, x: torch.Tensor) -> torch.Tensor:
        """``du/dx``: ``−p(p+1)(p+2)/2 · xᵖ⁻¹ (1 − x)²`` for ``x < 1``, zero beyond."""
        p = float(self.p)
        du = -0.5 * p * (p + 1.0) * (p + 2.0) * torch.pow(x, self.p - 1) * (1.0 - x) * (1.0 - x)
        return torch.where(x < 1.0, du, torch.zeros_like(du))

    def value_and_derivative(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """:meth:`forward` and :meth:`derivative` from one power of ``x`` (half the
        operators of the two)."""
        p = float(self.p)
        below = torch.pow(x, self.p - 1)  # xᵖ⁻¹
        xp = below * x
        u = 1.0 + xp * ((p * (p + 2.0) - p * (p + 1.0) / 2.0 * x) * x - (p + 1.0) * (p + 2.0) / 2.0)
        one_minus = 1.0 - x
        du = (-0.5 * p * (p + 1.0) * (p + 2.0)) * below * (one_minus * one_minus)
        inside = x < 1.0
        zero = torch.zeros_like(x)
        return torch.where(inside, u, zero), torch.where(inside, du, zero)


class BesselBasis(nn.Module):
    """``sqrt(2/r_c) · sin(kπ r / r_c) / r`` for ``k = 1..n``."""

    def __init__(self, cutoff: float, n: int = 8) -> None:
        super().__init__()
        self.register_buffer("frequencies", torch.arange(1, n + 1, dtype=torch.float32) * math.pi)
        self.register_buffer("prefactor", torch.tensor(math.sqrt(2.0 / cutoff)))
        self.register_buffer("cutoff", torch.tensor(float(cutoff)))

    def forward(self, r: torch.Tensor) -> torch.Tensor:
        """Values ``[E, n]`` at distances ``r [E]`` (> 0; the students clamp them to at
        least 1e-6 Å, where ``sin(ω r) / r`` is ``ω`` to float64 precision)."""
        omega = self.frequencies / self.cutoff
        rr = r.unsqueeze(-1)
        return self.prefactor * torch.sin(omega * rr) / rr


# Universal ZBL screening function (Ziegler, Biersack, Littmark 1985).
_ZBL_C = (0.18175, 0.50986, 0.28022, 0.02817)
_ZBL_D = (3.19980, 0.94229, 0.40290, 0.20162)
#: e²/(4πε₀) in eV·Å.
COULOMB_EV_A = 14.399645
#: The core's default switching range, in fractions of a pair's covalent radii sum.
CORE_WINDOW = (0.4, 0.7)


def check_core_window(value: Any) -> tuple[float, float]:
    """``[inner, outer]`` of the core's switching range checked (``None``: the default)."""
    if value is None:
        return CORE_WINDOW
    numbers = (
        isinstance(value, (list, tuple))
        and len(value) == 2
        and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value)
    )
    if not numbers or not 0.0 < value[0] < value[1] <= 1.0:
        raise InputError(
            "core_window must be [inner, outer] with 0 < inner < outer <= 1 (fractions of "
            f"the covalent radii sum, e.g. [0.4, 0.7]), got {value!r}"
        )
    return float(value[0]), float(value[1])


def pair_name(first: int, second: int) -> str:
    """``"A-B"`` for atomic numbers ``first`` and ``second``, lighter element first."""
    low, high = sorted((int(first), int(second)))
    return f"{chemical_symbols[low]}-{chemical_symbols[high]}"


def check_pair_floors(value: Any, atomic_numbers: list[int]) -> dict[str, float]:
    """``{"A-B": Å}`` checked against the model's elements (``None`` or ``"data"``: none
    yet; the trainer replaces ``"data"`` with the floors of its training set)."""
    if value is None or value == "data":
        return {}
    known = {pair_name(a, b) for k, a in enumerate(atomic_numbers) for b in atomic_numbers[k:]}
    if not isinstance(value, dict):
        raise InputError(
            "pair_floors must be 'data' (measured by the trainer) or a mapping of element "
            f"pairs to distances in Å such as {{'H-H': 1.3}}, got {value!r}"
        )
    floors = {}
    for key, distance in value.items():
        parts = str(key).split("-")
        name = pair_name(*(atomic_numbers_of(p) for p in parts)) if len(parts) == 2 else key
        if name not in known:
            raise InputError(
                f"pair_floors names the pair {key!r}, which is not a pair of this model's "
                f"elements ({', '.join(chemical_symbols[z] for z in atomic_numbers)})"
            )
        if isinstance(distance, bool) or not isinstance(distance, (int, float)) or distance < 0:
            raise InputError(f"pair_floors[{key!r}] must be a distance in Å >= 0, got {distance!r}")
        floors[name] = float(distance)
    return floors


def atomic_numbers_of(symbol: str) -> int:
    """The atomic number of a chemical symbol (an unknown one is an error)."""
    if symbol not in atomic_numbers_table:
        raise InputError(f"{symbol!r} is not a chemical symbol")
    return atomic_numbers_table[symbol]


class ZBLRepulsion(nn.Module):
    """Screened nuclear repulsion for close contacts, switched off smoothly before bonding
    distances: pair ``i, j`` gets the full ZBL energy below ``inner × (rcov_i + rcov_j)`` and
    none above ``outer × (rcov_i + rcov_j)``, so it keeps atoms from collapsing (no NaN, no
    fusion) without touching the chemistry the student learns.

    ``pair_floors`` (``{"A-B": Å}``, see :meth:`handover`) moves a pair's switching range
    out, keeping its width, so that it ends at that distance where that is farther than
    ``outer × (rcov_i + rcov_j)``: the shortest distance at which the training data had the
    pair. The learned part then never sees a pair closer than its data did, where nothing
    pinned it (students without floors attracted H-H there with thousands of eV/Å:
    ``benchmarks/close_pairs.py``)."""

    def __init__(
        self,
        atomic_numbers: list[int],
        covalent_radii: list[float],
        inner: float = CORE_WINDOW[0],
        outer: float = CORE_WINDOW[1],
        pair_floors: dict[str, float] | None = None,
    ) -> None:
        super().__init__()
        inner, outer = check_core_window([inner, outer])
        floors = check_pair_floors(pair_floors, list(atomic_numbers))
        z = torch.tensor(atomic_numbers, dtype=torch.float32)
        self.register_buffer("z", z)
        self.register_buffer("rcov", torch.tensor(covalent_radii, dtype=torch.float32))
        # [S, S] Å, symmetric; 0 (no floor) keeps the covalent switching range.
        floor = torch.zeros(len(atomic_numbers), len(atomic_numbers))
        for a, first in enumerate(atomic_numbers):
            for b, second in enumerate(atomic_numbers):
                floor[a, b] = floors.get(pair_name(first, second), 0.0)
        self.register_buffer("floor", floor)
        self.register_buffer("zbl_c", torch.tensor(_ZBL_C))
        self.register_buffer("zbl_d", torch.tensor(_ZBL_D))
        self.inner = float(inner)
        self.outer = float(outer)
        self.coulomb = COULOMB_EV_A

    def forward(self, r: torch.Tensor, si: torch.Tensor, sj: torch.Tensor) -> torch.Tensor:
        """Pair energies (eV) for distances ``r`` between species indices ``si`` and ``sj``."""
        r = r.clamp(min=0.05)  # finite (huge) energy even for atoms on top of each other
        charge, _, terms, _ = self._screening(r, si, sj)
        energy = charge / r * terms.sum(-1)
        return energy * (1.0 - self.handover(r, si, sj))

    def _screening(
        self, r: torch.Tensor, si: torch.Tensor, sj: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """``k zi zj`` (eV Å), the screening length ``a`` (Å), the four terms ``c_k exp(−d_k
        r / a)`` of the screening function (``[E, 4]``) and the ``d_k``."""
        zi = self.z[si].to(r.dtype)
        zj = self.z[sj].to(r.dtype)
        powers = torch.pow(self.z.to(r.dtype), 0.23)  # per element, not per edge
        a = 0.46850 / (powers[si] + powers[sj])
        x = r / a
        c = self.zbl_c.to(r.dtype)
        d = self.zbl_d.to(r.dtype)
        return self.coulomb * zi * zj, a, c * torch.exp(-d * x.unsqueeze(-1)), d

    def energy_and_derivative(
        self,
        r: torch.Tensor,
        si: torch.Tensor,
        sj: torch.Tensor,
        handover: torch.Tensor,
        handover_derivative: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """:meth:`forward` and its derivative with respect to ``r``, given the
        :meth:`handover` at ``r`` and its derivative (:meth:`handover_and_derivative`)."""
        close = r < 0.05
        r = r.clamp(min=0.05)
        charge, a, terms, d = self._screening(r, si, sj)
        phi = terms.sum(-1)
        dphi = -(terms * d).sum(-1) / a
        bare = charge / r * phi
        d_bare = charge * (dphi - phi / r) / r
        d_bare = torch.where(close, torch.zeros_like(d_bare), d_bare)
        energy = bare * (1.0 - handover)
        return energy, d_bare * (1.0 - handover) - bare * handover_derivative

    def reach(self) -> torch.Tensor:
        """``[S, S]``, Å: per element pair, the distance beyond which the pair is the
        learned part's alone (handover exactly 1, no core energy), the end of its
        switching range."""
        rsum = self.rcov.unsqueeze(1) + self.rcov.unsqueeze(0)
        return torch.maximum(self.outer * rsum, self.floor)

    def handover_and_derivative(
        self, r: torch.Tensor, si: torch.Tensor, sj: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """:meth:`handover` and its derivative with respect to ``r``."""
        t, width = self._switch(r, si, sj)
        value = t * t * t * (10.0 - 15.0 * t + 6.0 * t * t)
        one_minus = 1.0 - t
        return value, 30.0 * t * t * one_minus * one_minus / width

    def handover(self, r: torch.Tensor, si: torch.Tensor, sj: torch.Tensor) -> torch.Tensor:
        """The learned part's share of each pair: a C² smoothstep from 0 at ``inner × (rcov_i
        + rcov_j)`` to 1 at ``outer × (rcov_i + rcov_j)``, or, where the pair's floor lies
        farther out, over the same width ending at the floor; the core's share is one minus
        it."""
        t, _ = self._switch(r, si, sj)
        return t * t * t * (10.0 - 15.0 * t + 6.0 * t * t)

    def _switch(
        self, r: torch.Tensor, si: torch.Tensor, sj: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """How far each pair is through its switching range (0..1), and the range's width."""
        rsum = (self.rcov[si] + self.rcov[sj]).to(r.dtype)
        width = (self.outer - self.inner) * rsum
        start = torch.maximum(self.inner * rsum, self.floor[si, sj].to(r.dtype) - width)
        return ((r - start) / width).clamp(0.0, 1.0), width

    def _load_from_state_dict(
        self, state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys, errors
    ):
        # Files written before pair floors existed have none: keep the constructor's zeros.
        if prefix + "floor" not in state_dict:
            state_dict[prefix + "floor"] = self.floor
        super()._load_from_state_dict(
            state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys, errors
        )
