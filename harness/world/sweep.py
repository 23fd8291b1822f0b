"""Sweeps: one scenario file run over a list of parameter values, and the sensitivity curve that results.

A scenario's `sweep:` section lists values; the scenario is expanded into one variant per combination
(severity x seed x vehicle, in that order), each named `base[severity=0.5,seed=2]`::

    sweep:
      severity: [0.2, 0.35, 0.5, 0.7, 0.9]   # replaces the severity of the anomalies (all, or those listed)
      seed: [1, 2]                            # replaces the scenario seed (route, noise, fault randomness)
      vehicle: [passenger_car]                # replaces the vehicle
      anomalies: [0]                          # which anomalies `severity` applies to (default: all)
      expect:                                 # judged once every variant has run (optional)
        recall_at_max_severity_min: 1.0       # recall of each anomaly type at the highest severity
        recall_drop_events_max: 1             # a step up in severity may detect at most this many fewer events
        recall_from_severity_min: {severity: 0.5, recall: 1.0}   # per type, at every severity >= 0.5

Each variant is judged on the scenario's own `expect:`; the sweep's `expect:` judges the curve: per anomaly type,
recall and detection delay (p50, p90) against severity, pooled over seeds and vehicles. `sensitivity_table`
prints it, `render_sensitivity` draws it (PNG), `sweep_sections` gives both as HTML fragments for the report.

What a sweep does not do: sweep timing (onset, sustain) or route parameters, or run its variants in parallel.
"""
from __future__ import annotations

import itertools
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from harness.core.datafile import Checker, kind_of

if TYPE_CHECKING:
    from harness.world.scenario import Scenario

SWEEP_KEYS = ("severity", "seed", "vehicle", "anomalies", "expect")
SWEEP_EXPECT_KEYS = ("recall_at_max_severity_min", "recall_drop_events_max", "recall_from_severity_min")
#: The keys of `sweep.expect.recall_from_severity_min`: from which severity on, and the recall required there.
FROM_SEVERITY_KEYS = ("severity", "recall")
#: The most variants one sweep may expand to (each is a full scenario run).
MAX_VARIANTS = 200


@dataclass(frozen=True)
class SweepSpec:
    severity: tuple[float, ...] = ()
    seed: tuple[int, ...] = ()
    vehicle: tuple[str, ...] = ()
    anomalies: tuple[int, ...] | None = None  # indexes the severity applies to; None = all
    recall_at_max_severity_min: float | None = None
    recall_drop_events_max: float | None = None
    # (severity, recall): each anomaly type's recall at every swept severity from `severity` on
    recall_from_severity_min: tuple[float, float] | None = None

    def points(self) -> list[tuple[tuple[str, Any], ...]]:
        """Every combination, as ((parameter, value), ...), severity varying slowest."""
        axes = [(key, values) for key, values in (("severity", self.severity), ("seed", self.seed),
                                                  ("vehicle", self.vehicle)) if values]
        keys = [k for k, _ in axes]
        return [tuple(zip(keys, combo, strict=False)) for combo in itertools.product(*[v for _, v in axes])]


def _values(c: Checker, raw: dict, key: str, check) -> tuple:
    if key not in raw:
        return ()
    path = f"sweep.{key}"
    values = raw[key]
    if not isinstance(values, list) or not values:
        c.report(path, f"expected a non-empty list of values; got {kind_of(values)}")
        return ()
    out = []
    for i, value in enumerate(values):
        checked = check({key: value}, f"{path}[{i}]")
        if checked is not None:
            out.append(checked)
    if len(set(out)) != len(out):
        c.report(path, "lists a value twice")
    return tuple(out)


def read_sweep(c: Checker, data: Any, n_anomalies: int, vehicles: tuple[str, ...]) -> SweepSpec | None:
    """Validate a scenario's `sweep:` section; problems go to `c`, naming the field and the valid choices."""
    if data is None:
        return None
    raw = c.mapping(data, "sweep", SWEEP_KEYS)
    if not isinstance(data, dict):
        return None

    def one(d: dict, path: str, key: str, **kw):
        parent, _, leaf = path.rpartition(".")
        return c.number({leaf: d[key]}, leaf, parent, None, **kw)

    severity = _values(c, raw, "severity", lambda d, p: one(d, p, "severity", lo=0.0, hi=1.0, lo_open=True))
    seed = _values(c, raw, "seed", lambda d, p: (lambda v: None if v is None else int(v))(
        one(d, p, "seed", lo=0, integer=True)))
    vehicle = _values(c, raw, "vehicle", lambda d, p: c.choice({p.rpartition(".")[2]: d["vehicle"]},
                                                               p.rpartition(".")[2], "sweep", vehicles, None,
                                                               "vehicle"))
    indexes = None
    if "anomalies" in raw:
        picked = _values(c, raw, "anomalies", lambda d, p: (lambda v: None if v is None else int(v))(
            one(d, p, "anomalies", lo=0, hi=max(n_anomalies - 1, 0), integer=True)))
        indexes = picked or None
    if severity and n_anomalies == 0:
        c.report("sweep.severity", "sweeps the severity of the scenario's anomalies, and it has none")
    expect = c.mapping(raw.get("expect", {}), "sweep.expect", SWEEP_EXPECT_KEYS)
    recall_min = c.number(expect, "recall_at_max_severity_min", "sweep.expect", None, lo=0.0, hi=1.0)
    drop_max = c.number(expect, "recall_drop_events_max", "sweep.expect", None, lo=0.0)
    from_severity = _from_severity(c, expect.get("recall_from_severity_min"), severity)
    if expect and not severity:
        c.report("sweep.expect", "judges a curve against severity; sweep.severity lists no values")
    spec = SweepSpec(severity, seed, vehicle, indexes, recall_min, drop_max, from_severity)
    if not (severity or seed or vehicle):
        c.report("sweep", "lists no values to sweep; expected at least one of: severity, seed, vehicle")
    elif len(spec.points()) > MAX_VARIANTS:
        c.report("sweep", f"expands to {len(spec.points())} variants; at most {MAX_VARIANTS}")
    return spec


def _from_severity(c: Checker, data: Any, severities: tuple[float, ...]) -> tuple[float, float] | None:
    """`sweep.expect.recall_from_severity_min`: {severity, recall}, the severity one the sweep reaches."""
    if data is None:
        return None
    path = "sweep.expect.recall_from_severity_min"
    raw = c.mapping(data, path, FROM_SEVERITY_KEYS, FROM_SEVERITY_KEYS)
    if not isinstance(data, dict):
        return None
    severity = c.number(raw, "severity", path, None, lo=0.0, hi=1.0, lo_open=True)
    recall = c.number(raw, "recall", path, None, lo=0.0, hi=1.0)
    if severity is None or recall is None:
        return None
    if severities and severity > max(severities):
        c.report(f"{path}.severity", f"{severity:g} is above every swept severity (the highest is "
                                     f"{max(severities):g}): nothing to judge")
    return severity, recall


def variant_name(base: str, point: tuple[tuple[str, Any], ...]) -> str:
    """>>> variant_name("drift", (("severity", 0.5), ("seed", 2)))
    'drift[severity=0.5,seed=2]'
    """
    return f"{base}[{','.join(f'{k}={v:g}' if isinstance(v, float) else f'{k}={v}' for k, v in point)}]"


def expand(scenario: Scenario) -> list[Scenario]:
    """The variants of a scenario with a sweep (itself alone when it has none)."""
    spec = scenario.sweep
    if spec is None:
        return [scenario]
    out = []
    for point in spec.points():
        values = dict(point)
        anomalies = tuple(replace(a, severity=values["severity"]) if "severity" in values and
                          (spec.anomalies is None or i in spec.anomalies) else a
                          for i, a in enumerate(scenario.anomalies))
        reseeded = "seed" in values and scenario.route.cycle is None and scenario.route.generated_seed is None \
            and getattr(scenario.route, "recording", None) is None
        out.append(replace(scenario, name=variant_name(scenario.name, point), anomalies=anomalies,
                           seed=values.get("seed", scenario.seed), vehicle=values.get("vehicle", scenario.vehicle),
                           sweep=None, sweep_base=scenario.name, sweep_point=point,
                           profile_=None if reseeded else scenario.profile_))
    return out


# --- the sensitivity curve --------------------------------------------------------------------------------


