"""A linear fuel-rate proxy (rpm, throttle, speed, power demand terms) and its least-squares fit.

The anomaly features' context compares the tank level's slope with the consumption over minutes; the proxy is
what they use there (`training.anomaly_features`). It is not the fuel model (`training.nets.FuelTCN`).
"""
from __future__ import annotations

import numpy as np
import torch
from torch.nn import functional as F

from training.channels import ACC, RPM, SP, THR, fill_missing


def fuel_proxy_design(xf: torch.Tensor) -> torch.Tensor:
    """Per-second terms [B, T, 9] of a linear fuel-rate proxy (rpm, throttle, speed, power demand).

    The anomaly model's context features need the consumption over minutes; the TCN over 300 s would cost
    five times its 60-s latency, and over minutes a linear proxy's errors average out.
    """
    v = xf[:, :, SP] / 3.6
    r = xf[:, :, RPM] / 1000.0
    th = xf[:, :, THR] / 100.0
    a = xf[:, :, ACC]
    return torch.stack([torch.ones_like(v), r, r * th, th, r * r, v, v ** 3 / 1000.0, F.relu(a) * v / 10.0,
                        r * th * th], dim=-1)


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
