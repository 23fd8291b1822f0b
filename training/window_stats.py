"""Masked statistics along time (the last dimension) of [B, T] (or [B, S, T]) tensors, as torch operations the
ONNX export keeps.

A weight w (1 = a valid sample, 0 = a missing one) says which samples count; a window with no valid sample gives
a finite value (0, or the fallback of the division's clamp), never NaN. Used by the anomaly feature graph
(`training.anomaly_features`); nothing here knows what a signal is.
"""
from __future__ import annotations

import torch


def masked_mean(v: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    return (v * w).sum(dim=-1) / w.sum(dim=-1).clamp(min=1.0)


def masked_max(v: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    return torch.where(w > 0, v, torch.full_like(v, -1e9)).max(dim=-1).values.clamp(min=0.0)


def median5(a: torch.Tensor, b: torch.Tensor, c: torch.Tensor, d: torch.Tensor, e: torch.Tensor) -> torch.Tensor:
    """The elementwise median of five tensors, by six min/max comparisons (exactly one of the inputs' values,
    as a sort would give, in a few cheap graph nodes instead of a stack and a sort)."""
    f = torch.maximum(torch.minimum(a, b), torch.minimum(c, d))
    g = torch.minimum(torch.maximum(a, b), torch.maximum(c, d))
    return torch.maximum(torch.minimum(e, f), torch.minimum(torch.maximum(e, f), g))


def spike_excursions(v: torch.Tensor, w: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """How far each sample of v [B, T] (or [B, S, T]) stands out from the median of the five around it along
    time ([B, T-4] or [B, S, T-4]), and where that is measured on valid samples only (w, and the two on each
    side)."""
    t = v.shape[-1]
    excursion = (v[..., 2:t - 2] - median5(*(v[..., k:t - 4 + k] for k in range(5)))).abs()
    return excursion, w[..., :t - 4] * w[..., 1:t - 3] * w[..., 2:t - 2] * w[..., 3:t - 1] * w[..., 4:]


def slope_against(y: torch.Tensor, t: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """Weighted least-squares slope of y [B, T] against t [B, T]."""
    tm = masked_mean(t, w).unsqueeze(-1)
    ym = masked_mean(y, w).unsqueeze(-1)
    return (w * (t - tm) * (y - ym)).sum(dim=-1) / (w * (t - tm) ** 2).sum(dim=-1).clamp(min=1e-6)


def _fit(y: torch.Tensor, w: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Weighted least squares of y against t = 0, 1, ... along time: (slope per step, t - its mean, y - its
    mean)."""
    t = torch.arange(y.shape[-1], dtype=y.dtype, device=y.device)
    n = w.sum(dim=-1).clamp(min=1.0)
    dt = t - ((w * t).sum(dim=-1) / n).unsqueeze(-1)
    dy = y - ((w * y).sum(dim=-1) / n).unsqueeze(-1)
    wdt = w * dt
    return (wdt * dy).sum(dim=-1) / (wdt * dt).sum(dim=-1).clamp(min=1.0), dt, dy


def slope_per_min(y: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """Weighted least-squares slope of y [B, T] (or of each series of [B, S, T]) against t (per minute)."""
    return _fit(y, w)[0] * 60.0


def robust_slope_per_min(y: torch.Tensor, w: torch.Tensor, band: float | torch.Tensor) -> torch.Tensor:
    """`slope_per_min` refitted without the samples more than `band` off the first fit (spikes); with [B, S, T]
    series, `band` may be one per series [S, 1]."""
    slope, dt, dy = _fit(y, w)
    kept = ((dy - slope.unsqueeze(-1) * dt).abs() < band).to(y.dtype)
    return _fit(y, w * kept)[0] * 60.0
