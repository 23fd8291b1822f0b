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


def fill_missing(x: torch.Tensor, fallback: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """NaN → the window's mean of that signal (or `fallback` [10] if the signal is missing throughout)."""
    nan = torch.isnan(x)
    valid = (~nan).to(x.dtype)
    count = valid.sum(dim=1, keepdim=True)
    total = torch.where(nan, torch.zeros_like(x), x).sum(dim=1, keepdim=True)
    mean = torch.where(count > 0, total / count.clamp(min=1.0), fallback.view(1, 1, -1))
    return torch.where(nan, mean.expand_as(x), x), valid


def time_step(v: torch.Tensor) -> torch.Tensor:
    """v[t] - v[t-1] along dim 1, 0 at t = 0."""
    return F.pad(v[:, 1:] - v[:, :-1], (0, 0, 1, 0)) if v.dim() == 3 else F.pad(v[:, 1:] - v[:, :-1], (1, 0))


def gps_step_m(xf: torch.Tensor) -> torch.Tensor:
    """Distance (m) between consecutive fixes [B, T] (0 at t = 0), flat-earth."""
    lat, lon = xf[:, :, LAT], xf[:, :, LON]
    north = time_step(lat) * DEG_M
    east = time_step(lon) * DEG_M * torch.cos(lat * (math.pi / 180.0))
    return torch.sqrt(north * north + east * east + 1e-6)


#: The physical range of each signal, as lower and upper bounds in SIGNALS order: readings outside are clipped.
RANGE_LO = np.array([PHYSICAL_RANGE[s][0] for s in SIGNALS], dtype=np.float32)
RANGE_HI = np.array([PHYSICAL_RANGE[s][1] for s in SIGNALS], dtype=np.float32)


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
        self.register_buffer("mean", torch.tensor(np.zeros(c) if mean is None else mean, dtype=torch.float32))
        self.register_buffer("std", torch.tensor(np.ones(c) if std is None else std, dtype=torch.float32))

    def raw_channels(self, x: torch.Tensor) -> torch.Tensor:
        xf, valid = fill_missing(x, self.fallback)
        xf = torch.minimum(torch.maximum(xf, self.lo), self.hi)
        speed = xf[:, :, SP] / 3.6
        make = {
            "speed_ms": lambda: speed, "rpm_k": lambda: xf[:, :, RPM] / 1000.0, "throttle_pct": lambda: xf[:, :, THR],
            "brake_bar": lambda: xf[:, :, BRK], "coolant_c": lambda: xf[:, :, COL],
            "fuel_level_step_pct": lambda: time_step(xf[:, :, FUEL]), "accel_x_ms2": lambda: xf[:, :, ACC],
            "gps_step_m": lambda: gps_step_m(xf), "altitude_step_m": lambda: time_step(xf[:, :, ALT]),
            "speed_step_ms": lambda: time_step(speed),
        }
        chans = [make[n]() if n in make else 1.0 - valid[:, :, SIGNALS.index(n[len("missing_"):])]
                 for n in self.names]
        return torch.stack(chans, dim=1)  # [B, C, T]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = (self.raw_channels(x) - self.mean.view(1, -1, 1)) / self.std.view(1, -1, 1)
        return z.clamp(-self.clip, self.clip)
