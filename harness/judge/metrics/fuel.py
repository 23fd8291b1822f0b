"""Fuel-rate accuracy: R² = 1 − SS_res/SS_tot and MAE of predicted against true fuel rate (L/h).

Pairing a fuel result with its ground truth is the caller's: the rig holds the trace and decides what the truth
of a window is.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

__all__ = ["FuelAccuracy", "fuel_accuracy", "mean_absolute_error", "r_squared"]


def _pairs(predicted: Sequence[float] | np.ndarray, true: Sequence[float] | np.ndarray
           ) -> tuple[np.ndarray, np.ndarray]:
    p = np.asarray(predicted, dtype=float).reshape(-1)
    t = np.asarray(true, dtype=float).reshape(-1)
    if len(p) != len(t):
        raise ValueError(f"{len(p)} predictions but {len(t)} true values")
    if not (np.all(np.isfinite(p)) and np.all(np.isfinite(t))):
        raise ValueError("predicted and true values must be finite")
    return p, t


def r_squared(predicted: Sequence[float] | np.ndarray, true: Sequence[float] | np.ndarray) -> float | None:
    """Coefficient of determination 1 − SS_res/SS_tot; None for no values or a constant truth (undefined).

    >>> r_squared([1.0, 2.0, 3.0], [1.0, 2.0, 3.0]), r_squared([2.0, 2.0, 2.0], [1.0, 2.0, 3.0])
    (1.0, 0.0)
    """
    p, t = _pairs(predicted, true)
    ss_tot = float(np.sum((t - t.mean()) ** 2)) if len(t) else 0.0
    if ss_tot == 0.0:
        return None
    return 1.0 - float(np.sum((t - p) ** 2)) / ss_tot


def mean_absolute_error(predicted: Sequence[float] | np.ndarray, true: Sequence[float] | np.ndarray) -> float | None:
    """Mean |predicted − true|; None for no values."""
    p, t = _pairs(predicted, true)
    return float(np.mean(np.abs(p - t))) if len(p) else None


@dataclass(frozen=True)
class FuelAccuracy:
    n: int
    r2: float | None
    mae_lph: float | None


def fuel_accuracy(predicted_lph: Sequence[float] | np.ndarray, true_lph: Sequence[float] | np.ndarray
                  ) -> FuelAccuracy:
    """R² and MAE (L/h) of fuel-rate predictions against the truth."""
    p, t = _pairs(predicted_lph, true_lph)
    return FuelAccuracy(len(p), r_squared(p, t), mean_absolute_error(p, t))
