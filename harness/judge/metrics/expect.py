"""The verdict on a scenario's `expect:`: each criterion measured against what it requires, and `judge`.

A criterion is "pass", "fail", "not measured" (fails: a required metric that could not be measured is never a
pass) or "not applicable" (passes; only recall in a scenario without events). Comparisons are exact. What
this module does not do: measure (`harness.judge.metrics.scenario`), or tune a threshold: thresholds come from
normal validation data, never from test labels.
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from harness.judge.metrics.detection import EventDetection
from harness.judge.metrics.scenario import ScenarioMetrics
from harness.wire.events import Event, RuleEvent
from harness.world.scenario import Expectations

__all__ = ["NO_BEHAVIOUR_WINDOW", "Criterion", "Judgement", "behaviour_f1_criterion", "criterion", "judge",
           "stale_data_criterion"]

#: Why a run with behaviour labels has no behaviour figure.
NO_BEHAVIOUR_WINDOW = "no behaviour window of one style without an anomaly"


@dataclass(frozen=True)
class Criterion:
    """One `expect:` criterion: measured vs required.

    `status` is "pass", "fail", "not measured" (fails: a required metric that could not be measured is never
    a pass) or "not applicable" (passes; only recall in a scenario without events).
    """

    name: str
    measured: float | None
    required: float
    comparison: str  # ">=" for *_min criteria, "<=" for *_max
    status: str
    note: str = ""

    @property
    def passed(self) -> bool:
        return self.status in ("pass", "not applicable")

    def describe(self) -> str:
        """E.g. "recall (overheating) 0.50 < required 1.00"."""
        note = f" ({self.note})" if self.note else ""
        if self.measured is None:
            return f"{self.name} {self.status}{note}; required {self.comparison} {_fmt(self.required)}"
        shown, required = _fmt_pair(self.measured, self.required)
        op = self.comparison if self.passed else {">=": "<", "<=": ">"}[self.comparison]
        return f"{self.name} {shown} {op} required {required}{note}"


def _fmt(x: float) -> str:
    return f"{x:.2f}"


def _fmt_pair(measured: float, required: float) -> tuple[str, str]:
    """Both at 2 decimals, or more when 2 would show a failing pair as equal (0.849 vs 0.85)."""
    for digits in range(2, 8):
        a, b = f"{measured:.{digits}f}", f"{required:.{digits}f}"
        if a != b or measured == required:
            return a, b
    return repr(measured), repr(required)


@dataclass(frozen=True)
class Judgement:
    """The verdict on a scenario's `expect:`: every criterion, passed overall only if each one passed."""

    criteria: tuple[Criterion, ...]

    @property
    def passed(self) -> bool:
        return all(c.passed for c in self.criteria)

    @property
    def failures(self) -> tuple[Criterion, ...]:
        return tuple(c for c in self.criteria if not c.passed)

    @property
    def message(self) -> str:
        """Every failing criterion, one per line; or a one-line pass summary."""
        if self.passed:
            return f"all {len(self.criteria)} criteria passed"
        return "\n".join(c.describe() for c in self.failures)

    def summary(self) -> str:
        """Every criterion, one per line, with its status."""
        return "\n".join(f"{'PASS' if c.passed else 'FAIL'}  {c.describe()}" for c in self.criteria)


def criterion(name: str, measured: float | None, required: float, comparison: str, missing_note: str = "",
               note: str = "") -> Criterion:
    if measured is None:
        return Criterion(name, None, required, comparison, "not measured", missing_note)
    ok = measured >= required if comparison == ">=" else measured <= required
    return Criterion(name, measured, required, comparison, "pass" if ok else "fail", note)


def _missed_note(detections: Iterable[EventDetection]) -> str:
    missed = [f"{d.event.type} at {d.event.start_s:g} s" for d in detections if not d.detected]
    return f"missed: {', '.join(missed)}" if missed else ""


def judge(expect: Expectations, metrics: ScenarioMetrics) -> Judgement:
    """Evaluate each criterion `expect` sets against what was measured.

    recall_min: a number judges recall over all events pooled; a mapping judges each listed type. A scenario
    with no events makes recall "not applicable" (nothing to detect); a listed type with no events in a
    scenario that has others is "not measured" and fails. Every other criterion that could not be measured
    (no detections for a delay, no normal driving for false alarms, no fuel results or truth, no latencies)
    fails as "not measured". Comparisons are exact: a min is met by measured >= required, a max by <=.
    """
    d = metrics.detection
    out: list[Criterion] = []
    if expect.recall_min is not None:
        if d.n_events == 0:
            required_by_name = {f"recall ({t})": r for t, r in expect.recall_min.items()} \
                if isinstance(expect.recall_min, Mapping) else {"recall (all types)": expect.recall_min}
            out += [Criterion(name, None, float(required), ">=", "not applicable", "the scenario injects no events")
                    for name, required in required_by_name.items()]
        elif isinstance(expect.recall_min, Mapping):
            by_type = d.recall_by_type
            for anomaly_type, required in expect.recall_min.items():
                got = by_type.get(anomaly_type)
                detections = [x for x in d.detections if x.event.type == anomaly_type]
                out.append(criterion(f"recall ({anomaly_type})", got.recall if got else None, float(required),
                                      ">=", f"no {anomaly_type} events in the scenario",
                                      f"{got.n_detected}/{got.n_events}; {_missed_note(detections)}".rstrip("; ")
                                      if got else ""))
        else:
            overall = d.overall
            out.append(criterion("recall (all types)", overall.recall, float(expect.recall_min), ">=",
                                  note=f"{overall.n_detected}/{overall.n_events}; {_missed_note(d.detections)}"
                                  .rstrip("; ")))
    if expect.false_alarms_per_h_max is not None:
        fa = d.false_alarms
        out.append(criterion("false_alarms_per_h", fa.per_h, expect.false_alarms_per_h_max, "<=",
                              "no normal driving observed: no results outside event windows",
                              f"{fa.n_false_alarms} in {fa.normal_driving_h:.2f} h"))
    no_delay = "the scenario injects no events" if d.n_events == 0 else "no event was detected"
    if expect.detection_delay_s_p50_max is not None:
        out.append(criterion("detection_delay_s_p50", d.delay.p50, expect.detection_delay_s_p50_max, "<=",
                              no_delay, f"n={d.delay.n}"))
    if expect.detection_delay_s_p90_max is not None:
        out.append(criterion("detection_delay_s_p90", d.delay.p90, expect.detection_delay_s_p90_max, "<=",
                              no_delay, f"n={d.delay.n}"))
    fuel = metrics.fuel
    no_fuel = "no fuel results or no ground truth" if fuel is None or fuel.n == 0 else \
        "the true fuel rate is constant, R² undefined"
    if expect.fuel_r2_min is not None:
        out.append(criterion("fuel_r2", fuel.r2 if fuel else None, expect.fuel_r2_min, ">=", no_fuel,
                              f"n={fuel.n}" if fuel else ""))
    if expect.fuel_mae_lph_max is not None:
        out.append(criterion("fuel_mae_lph", fuel.mae_lph if fuel else None, expect.fuel_mae_lph_max, "<=",
                              "no fuel results or no ground truth", f"n={fuel.n}" if fuel else ""))
    latency = metrics.latency
    for key, attr, label in (("latency_ms_p50_max", "p50", "latency_ms_p50"),
                             ("latency_ms_p99_max", "p99", "latency_ms_p99")):
        required = getattr(expect, key)
        if required is not None:
            out.append(criterion(f"{label} ({metrics.latency_label})",
                                  getattr(latency, attr) if latency else None, required, "<=",
                                  "no latencies reported", f"n={latency.n}" if latency else ""))
    if expect.behaviour_macro_f1_min is not None:
        out.append(behaviour_f1_criterion(metrics, expect.behaviour_macro_f1_min))
    return Judgement(tuple(out))


def behaviour_f1_criterion(metrics: ScenarioMetrics, required: float) -> Criterion:
    """`expect: behaviour_macro_f1_min` on the run's behaviour windows (`harness.judge.metrics.behaviour`): "not
    applicable" (passes) on a run without behaviour labels (a drive cycle, a recording, raw-can-v1) or without a
    window of one style outside the anomalies, never a 0."""
    name = "behaviour_macro_f1"
    score = metrics.behaviour
    if score is None or score.n == 0:
        return Criterion(name, None, required, ">=", "not applicable",
                         metrics.behaviour_not_judged if score is None else NO_BEHAVIOUR_WINDOW)
    f1 = ", ".join(f"{k} {v:.2f}" for k, v in score.f1_by_class.items())
    confused = score.most_confused()
    note = f"{score.n} windows; F1 {f1}" + (f"; most often {confused[0]} reported as {confused[1]} ({confused[2]})"
                                            if confused else "")
    return criterion(name, score.macro_f1, required, ">=", note=note)


def stale_data_criterion(flagged: bool, events: Iterable[Event], windows: Sequence[tuple[float, float]], *,
                         max_delay_s: float) -> Criterion:
    """`expect: stale_data_flagged`, judged on the app's `stale_data` rule events.

    True: every window of `windows` ([start_s, end_s] of a bus fault that silences data) must see a stale_data
    event in [start_s, end_s + max_delay_s]; measured is the fraction of windows flagged, required 1. A scenario
    that silences nothing is "not measured" (fails: nothing could show the flag works). False: the app must
    report no stale_data at all; measured is how many it reported, required 0.

    >>> stale_data_criterion(True, [RuleEvent(107.0, "stale_data", 6.0, 5.0, "coolant_temp")], [(100.0, 160.0)],
    ...                      max_delay_s=60).describe()
    'stale_data_flagged 1.00 >= required 1.00 (1/1 faults flagged)'
    """
    stale = sorted(e.t_s for e in events if isinstance(e, RuleEvent) and e.type == "stale_data")
    if not flagged:
        first = f"first at {stale[0]:g} s" if stale else ""
        return criterion("stale_data_flagged (none expected)", float(len(stale)), 0.0, "<=", note=first)
    if not windows:
        return Criterion("stale_data_flagged", None, 1.0, ">=", "not measured",
                         "the scenario silences no data: no id_silent or bus_off fault")
    flagged_windows = [any(lo <= t <= hi + max_delay_s for t in stale) for lo, hi in windows]
    missed = [f"{lo:g}-{hi:g} s" for (lo, hi), hit in zip(windows, flagged_windows, strict=False) if not hit]
    note = f"{sum(flagged_windows)}/{len(windows)} faults flagged" + (f"; missed: {', '.join(missed)}" if missed
                                                                      else "")
    return criterion("stale_data_flagged", sum(flagged_windows) / len(windows), 1.0, ">=", note=note)
