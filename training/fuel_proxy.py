"""A linear fuel-rate proxy (rpm, throttle, speed, power demand terms) and its least-squares fit.

The anomaly features' context compares the tank level's slope with the consumption over minutes; the proxy is
what they use there (`training.anomaly_features`). It is not the fuel model (`training.nets.FuelTCN`).
"""
from __future__ import annotations

import numpy as np
import torch
from torch.nn import functional as F

from training.channels import ACC, RPM, SP, THR, fill_missing, take

#: The proxy's terms as products of three of (1, v, r, th, relu(a)) times a unit factor: 1, r, r*th, th, r^2, v,
#: v^3/1000, relu(a)*v/10, r*th^2 (v in m/s, r in krpm, th in 0..1, a in m/s^2).
_TERM_FACTORS = ((0, 0, 0), (2, 0, 0), (2, 3, 0), (3, 0, 0), (2, 2, 0), (1, 0, 0), (1, 1, 1), (4, 1, 0), (2, 3, 3))
_TERM_SCALE = (1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1e-3, 0.1, 1.0)
_BASE_SIGNALS, _BASE_DIV = (SP, RPM, THR, ACC), (3.6, 1000.0, 100.0, 1.0)


def fuel_proxy_design(xf: torch.Tensor, dim: int = -1) -> torch.Tensor:
    """Per-second terms of a linear fuel-rate proxy (rpm, throttle, speed, power demand): [B, T, 9] of xf
    [B, T, 10], or [B, 9, T] of rows [B, 10, T] with `dim` = 1.

    The anomaly model's context features need the consumption over minutes; the TCN over 300 s would cost
    five times its 60-s latency, and over minutes a linear proxy's errors average out. Computed as products of
    gathered factors, a few graph nodes for all nine terms (the device pays per node).
    """
    shape = (-1,) if dim in (-1, xf.dim() - 1) else (-1, 1)

    def const(values: tuple) -> torch.Tensor:
        return torch.tensor(values, device=xf.device).view(shape)

    q = take(xf, _BASE_SIGNALS, dim) / const(_BASE_DIV).to(xf.dtype)
    acc = const((False, False, False, True))
    base = torch.cat([torch.ones_like(take(q, [0], dim)), torch.where(acc, F.relu(q), q)], dim=dim)
    f1, f2, f3 = (take(base, [t[k] for t in _TERM_FACTORS], dim) for k in range(3))
    return f1 * f2 * f3 * const(_TERM_SCALE).to(xf.dtype)


def fit_fuel_proxy(x: np.ndarray, fuel_seq: np.ndarray, fallback: np.ndarray, rows: int = 400_000,
                   seed: int = 0) -> np.ndarray:
    """Least-squares coefficients of `fuel_proxy_design` on windows [n, T, 10] (their last `fuel_seq` columns)."""
    t = fuel_seq.shape[1]
    with torch.no_grad():
        xf, valid = fill_missing(torch.from_numpy(np.ascontiguousarray(x[:, -t:], dtype=np.float32)),
                                 torch.tensor(fallback, dtype=torch.float32))
        design = fuel_proxy_design(xf).reshape(-1, 9).numpy().astype(np.float64)
        ok = valid.min(dim=2).values.reshape(-1).numpy() > 0
    y = fuel_seq.reshape(-1).astype(np.float64)
    idx = np.flatnonzero(ok)
    idx = np.random.default_rng(seed).choice(idx, min(rows, len(idx)), replace=False)
    coef, *_ = np.linalg.lstsq(design[idx], y[idx], rcond=None)
    return coef.astype(np.float32)
