"""Masked statistics along time of [B, T] (or [B, T, S]) tensors, as torch operations the ONNX export keeps.

A weight w (1 = a valid sample, 0 = a missing one) says which samples count; a window with no valid sample gives
a finite value (0, or the fallback of the division's clamp), never NaN. Used by the anomaly feature graph
(`training.anomaly_features`); nothing here knows what a signal is.
"""
from __future__ import annotations

import torch


def masked_mean(v: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    return (v * w).sum(dim=1) / w.sum(dim=1).clamp(min=1.0)


def masked_max(v: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    return torch.where(w > 0, v, torch.full_like(v, -1e9)).max(dim=1).values.clamp(min=0.0)


def spike_excursions(v: torch.Tensor, w: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """How far each sample of v [B, T] (or [B, T, S]) stands out from the median of the five around it along
    time ([B, T-4] or [B, T-4, S]), and where that is measured on valid samples only (w, and the two on each
    side)."""
    t = v.shape[1]
    around = torch.stack([v[:, k:t - 4 + k] for k in range(5)], dim=-1)
    excursion = (v[:, 2:t - 2] - torch.sort(around, dim=-1).values[..., 2]).abs()
    return excursion, w[:, :t - 4] * w[:, 1:t - 3] * w[:, 2:t - 2] * w[:, 3:t - 1] * w[:, 4:]


def slope_against(y: torch.Tensor, t: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """Weighted least-squares slope of y [B, T] against t [B, T]."""
    tm = masked_mean(t, w).unsqueeze(1)
    ym = masked_mean(y, w).unsqueeze(1)
    return (w * (t - tm) * (y - ym)).sum(dim=1) / (w * (t - tm) ** 2).sum(dim=1).clamp(min=1e-6)


def slope_per_min(y: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """Weighted least-squares slope of y [B, T] against t (per minute)."""
    t = torch.arange(y.shape[1], dtype=y.dtype, device=y.device).view(1, -1)
    tm = masked_mean(t.expand_as(y), w).unsqueeze(1)
    ym = masked_mean(y, w).unsqueeze(1)
    num = (w * (t - tm) * (y - ym)).sum(dim=1)
    den = (w * (t - tm) ** 2).sum(dim=1).clamp(min=1.0)
    return num / den * 60.0


def robust_slope_per_min(y: torch.Tensor, w: torch.Tensor, band: float) -> torch.Tensor:
    """`slope_per_min` refitted without the samples more than `band` off the first fit (spikes)."""
    t = torch.arange(y.shape[1], dtype=y.dtype, device=y.device).view(1, -1)
    slope = slope_per_min(y, w) / 60.0
    tm = masked_mean(t.expand_as(y), w).unsqueeze(1)
    ym = masked_mean(y, w).unsqueeze(1)
    fit = ym + slope.unsqueeze(1) * (t - tm)
    return slope_per_min(y, w * ((y - fit).abs() < band).to(y.dtype))

