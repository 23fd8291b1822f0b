"""`check_liveness`: a metamorphic check over two runs that differ only in driving style (or a fault): each
model's outputs must change, or the app does not follow its input (a constant stub, a cached or frozen result).
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from harness.judge.contract.reference import ContractRun
from harness.judge.contract.verdict import FAIL, INCONCLUSIVE, PASS, Verdict, blocked_by_link, fmt
from harness.wire.events import AnomalyResult, BehaviourResult, Event, FuelResult

__all__ = ["LIVENESS_MIN_CHANGE", "check_liveness"]


def _series(events: Sequence[Event]) -> dict[str, dict[int, np.ndarray]]:
    out: dict[str, dict[int, np.ndarray]] = {"fuel": {}, "anomaly": {}, "behaviour": {}}
    for e in events:
        key = int(round(e.t_s * 1000)) if isinstance(e, (FuelResult, AnomalyResult, BehaviourResult)) else None
        if isinstance(e, FuelResult):
            out["fuel"][key] = np.array([e.fuel_rate_lph])
        elif isinstance(e, AnomalyResult):
            out["anomaly"][key] = np.array([e.score])
        elif isinstance(e, BehaviourResult):
            out["behaviour"][key] = np.array(e.probabilities)
    return out


#: The least mean change per window that counts as "the output changed", per model.
LIVENESS_MIN_CHANGE: dict[str, float] = {"fuel": 0.05, "anomaly": 1e-4, "behaviour": 0.01}


def check_liveness(run_a: ContractRun, run_b: ContractRun, change: str) -> Verdict:
    """Metamorphic: two runs whose inputs differ (`change` says how) must give different outputs, per model."""
    check = "liveness"
    for run in (run_a, run_b):
        blocked = blocked_by_link(check, run.events)
        if blocked:
            return Verdict(check, INCONCLUSIVE, f"{run.name}: {blocked.message}")
    if run_a.reference is not None and run_b.reference is not None:
        common = sorted(set(run_a.reference.contexts) & set(run_b.reference.contexts))
        if common and all(np.array_equal(run_a.reference.contexts[t], run_b.reference.contexts[t], equal_nan=True)
                          for t in common):
            return Verdict(check, INCONCLUSIVE, f"the two runs' inputs did not differ ({change}): nothing to compare")
    a, b = _series(run_a.events), _series(run_b.events)
    dead, live = [], []
    for name in ("fuel", "anomaly", "behaviour"):
        times = sorted(set(a[name]) & set(b[name]))
        if len(times) < 10:
            dead.append(f"{name}: only {len(times)} windows scored in both runs")
            continue
        change_per_window = np.array([np.max(np.abs(a[name][t] - b[name][t])) for t in times])
        mean_change = float(change_per_window.mean())
        if mean_change < LIVENESS_MIN_CHANGE[name]:
            dead.append(f"{name}: the app's output hardly changed (mean |change| {fmt(mean_change)} over "
                        f"{len(times)} windows, at least {LIVENESS_MIN_CHANGE[name]:g} expected) although the input "
                        f"did ({change}): it does not follow its input (a constant stub, a cached or frozen result)")
        else:
            live.append(f"{name} mean |change| {fmt(mean_change)} over {len(times)} windows")
    if dead:
        return Verdict(check, FAIL, "; ".join(dead), "frozen-output")
    return Verdict(check, PASS, f"the outputs follow the input ({change}): " + ", ".join(live))
