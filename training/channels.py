"""The device's preprocessing of a raw window, as a torch graph: raw window [B, 60, 10] (device units, NaN = no
reading) → named, standardised channels [B, C, 60].

NaN is filled with the window's own mean of that signal (the training mean if the signal is missing throughout),
readings are clipped to each signal's physical range, a missing-reading mask is kept per signal, and position is
used only through differences (GPS step length; altitude step), never absolutely. Everything here is exported
inside the models' ONNX graphs, so the device runs it on the raw window; it has no learned weights (the
standardisation's mean and spread are fixed at training time).
"""
from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from harness.wire.signals import PHYSICAL_RANGE, SIGNALS

N_SIGNALS = len(SIGNALS)
SP, RPM, THR, BRK, COL, FUEL, ACC, LAT, LON, ALT = range(N_SIGNALS)
DEG_M = math.pi / 180.0 * 6_371_000.0  # metres per degree of latitude

CHANNELS: tuple[str, ...] = (
    "speed_ms", "rpm_k", "throttle_pct", "brake_bar", "coolant_c", "fuel_level_step_pct", "accel_x_ms2",
    "gps_step_m", "altitude_step_m", "speed_step_ms",
) + tuple(f"missing_{s}" for s in SIGNALS)


def take(x: torch.Tensor, index: list[int] | tuple[int, ...] | torch.Tensor, dim: int = 1) -> torch.Tensor:
    """x's entries `index` along `dim`: one Gather in the exported graph, where a list or tensor subscript
    becomes a GatherND between two Transposes. The graphs keep signals on dim 1 and time last ([B, S, T]): a
    Gather of whole rows costs a fraction of one along the last axis."""
    if not isinstance(index, torch.Tensor):
        index = torch.tensor(index, dtype=torch.int64, device=x.device)
    return x.index_select(dim, index)


def fill_missing(x: torch.Tensor, fallback: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """NaN → the window's mean of that signal (or `fallback` [10] if the signal is missing throughout)."""
    nan = torch.isnan(x)
    valid = (~nan).to(x.dtype)
    count = valid.sum(dim=1, keepdim=True)
    total = torch.where(nan, torch.zeros_like(x), x).sum(dim=1, keepdim=True)
    mean = torch.where(count > 0, total / count.clamp(min=1.0), fallback)
    return torch.where(nan, mean.expand_as(x), x), valid


def time_step(v: torch.Tensor) -> torch.Tensor:
    """v[t] - v[t-1] along time, the last dimension ([B, T] or [B, S, T]); 0 at t = 0."""
    return F.pad(v[..., 1:] - v[..., :-1], (1, 0))


def gps_step_m(xf: torch.Tensor) -> torch.Tensor:
    """Distance (m) between consecutive fixes [B, T] (0 at t = 0), flat-earth."""
    lat, lon = xf[:, :, LAT], xf[:, :, LON]
    north = time_step(lat) * DEG_M
    east = time_step(lon) * DEG_M * torch.cos(lat * (math.pi / 180.0))
    return torch.sqrt(north * north + east * east + 1e-6)


#: The physical range of each signal, as lower and upper bounds in SIGNALS order: readings outside are clipped.
RANGE_LO = np.array([PHYSICAL_RANGE[s][0] for s in SIGNALS], dtype=np.float32)
RANGE_HI = np.array([PHYSICAL_RANGE[s][1] for s in SIGNALS], dtype=np.float32)


#: The channels that are one signal divided by a unit factor: (signal, divisor, as its step from the last second).
_SCALED: dict[str, tuple[int, float, bool]] = {
    "speed_ms": (SP, 3.6, False), "rpm_k": (RPM, 1000.0, False), "throttle_pct": (THR, 1.0, False),
    "brake_bar": (BRK, 1.0, False), "coolant_c": (COL, 1.0, False), "fuel_level_step_pct": (FUEL, 1.0, True),
    "accel_x_ms2": (ACC, 1.0, False), "altitude_step_m": (ALT, 1.0, True), "speed_step_ms": (SP, 3.6, True),
}


class Channels(nn.Module):
    """Raw window [B, T, 10] → the named channels [B, C, T], standardised and clipped to ±`clip`."""

    def __init__(self, fallback: np.ndarray, names: tuple[str, ...] = CHANNELS, mean: np.ndarray | None = None,
                 std: np.ndarray | None = None, clip: float = 8.0):
        super().__init__()
        unknown = sorted(set(names) - set(CHANNELS))
        if unknown:
            raise ValueError(f"unknown channel {unknown[0]!r}; expected one of: {', '.join(CHANNELS)}")
        self.names = tuple(names)
        self.clip = clip
        c = len(names)
        self.register_buffer("fallback", torch.tensor(fallback, dtype=torch.float32))
        self.register_buffer("lo", torch.tensor(RANGE_LO))
        self.register_buffer("hi", torch.tensor(RANGE_HI))
        # [C, 1]: broadcast over time as they are (no view), so that they stay named initializers in the exported
        # graph, where `training.reexport` reads them back.
        for key, value in (("mean", np.zeros(c) if mean is None else mean),
                           ("std", np.ones(c) if std is None else std)):
            self.register_buffer(key, torch.tensor(value, dtype=torch.float32).view(c, 1))
        scaled = [n for n in self.names if n in _SCALED]
        missing = [n for n in self.names if n.startswith("missing_")]
        self.with_gps = "gps_step_m" in self.names
        laid_out = scaled + (["gps_step_m"] if self.with_gps else []) + missing
        plan = {"scaled_index": ([_SCALED[n][0] for n in scaled], torch.int64),
                "scaled_div": ([[_SCALED[n][1]] for n in scaled], torch.float32),
                "scaled_step": ([[_SCALED[n][2]] for n in scaled], torch.bool),
                "missing_index": ([SIGNALS.index(n[len("missing_"):]) for n in missing], torch.int64),
                "order": ([laid_out.index(n) for n in self.names], torch.int64)}
        for key, (values, dtype) in plan.items():  # how the graph lays the channels out, not weights
            self.register_buffer(key, torch.tensor(values, dtype=dtype), persistent=False)

    def raw_channels(self, x: torch.Tensor) -> torch.Tensor:
        """The named channels [B, C, T], neither standardised nor clipped. Gathered and computed a group at a
        time (one graph node per step, not per channel): the device runs the graph one node after another."""
        xf, valid = fill_missing(x, self.fallback)
        xf = torch.minimum(torch.maximum(xf, self.lo), self.hi)
        rows, valid_rows = xf.transpose(1, 2), valid.transpose(1, 2)  # [B, 10, T]
        parts = []
        if self.scaled_index.numel():
            scaled = take(rows, self.scaled_index) / self.scaled_div
            parts.append(torch.where(self.scaled_step, time_step(scaled), scaled))
        if self.with_gps:
            parts.append(gps_step_m(xf).unsqueeze(1))
        if self.missing_index.numel():
            parts.append(1.0 - take(valid_rows, self.missing_index))
        return take(torch.cat(parts, dim=1) if len(parts) > 1 else parts[0], self.order)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return ((self.raw_channels(x) - self.mean) / self.std).clamp(-self.clip, self.clip)
