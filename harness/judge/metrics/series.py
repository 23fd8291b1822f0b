"""Input checks the metrics share: finite result times, known anomaly types, types in their canonical order."""
from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np

from harness.world.anomalies import ANOMALY_TYPES

__all__ = ["as_times", "check_types", "in_type_order"]


def check_types(types: Iterable[str], where: str) -> list[str]:
    """The types as a list; ValueError naming `where` and the valid types for an unknown one."""
    out = list(types)
    for t in out:
        if t not in ANOMALY_TYPES:
            raise ValueError(f"unknown anomaly type {t!r} in {where}; expected one of: {', '.join(ANOMALY_TYPES)}")
    return out


def as_times(t_s: Sequence[float] | np.ndarray, what: str) -> np.ndarray:
    """Result times as a flat float array; ValueError naming `what` if any is not finite."""
    times = np.asarray(t_s, dtype=float).reshape(-1)
    if not np.all(np.isfinite(times)):
        raise ValueError(f"{what}: times must be finite")
    return times


def in_type_order(types: Iterable[str]) -> list[str]:
    """Distinct types in ANOMALY_TYPES order, unknown ones last (alphabetically)."""
    order = {t: i for i, t in enumerate(ANOMALY_TYPES)}
    return sorted(set(types), key=lambda t: (order.get(t, len(order)), t))
