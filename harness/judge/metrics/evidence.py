"""Criteria judged on every run, whatever its `expect:` asks: the evidence a run gathers is never left unjudged.

- `coverage_criterion`: the share of the drive's seconds, from the first full window on, for which the app
  reported each model's result (an app that stops logging, or scores one window in ten, fails it);
- `timing_criterion`: every result and rule event arrives within a bound of the sample time it claims (an app
  that stamps its results with an older window's time, or holds them back, fails it);
- `behaviour_criterion`: the behaviour class against the driving style the drive earns (its accuracy;
  `harness.judge.metrics.behaviour` computes the confusion matrix and macro-F1);
- `model_identity_criterion`: each model's reported sha256 and the anomaly threshold against the installed
  models' manifest;
- `tap_criterion`: the UART tap's cross-check against the CAN log (frames missing, unexpected or altered).

The defaults (`DEFAULT_COVERAGE_MIN`, ...) are docs/scenarios.md's, set from the margins the bundled scenarios
measured on the correct unit; a scenario overrides each in `expect:`. Pure functions; what this module does not do:
collect events, know the rig (the caller passes the arrival times and the tap's report), or judge detection.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from harness.judge.metrics.behaviour import MIN_STYLE_PURITY, NO_STYLE, BehaviourScore, behaviour_score
from harness.judge.metrics.expect import NO_BEHAVIOUR_WINDOW, Criterion, criterion
from harness.wire.events import AnomalyResult, BehaviourResult, Event, FeatureDebug, FuelResult, RuleEvent
from harness.wire.signals import LabelledEvent

__all__ = [
    "DEFAULT_BEHAVIOUR_ACCURACY_MIN", "DEFAULT_COVERAGE_MIN", "DEFAULT_FUEL_MAE_LPH_MAX", "DEFAULT_FUEL_R2_MIN",
    "DEFAULT_RESULT_LATE_S_MAX", "FUEL_R2_MIN_WINDOWS", "MIN_STYLE_PURITY", "MODEL_KINDS",
    "behaviour_accuracy_criterion", "behaviour_criterion", "coverage_criterion", "model_identity_criterion",
    "model_identity_problems", "tap_criterion", "threshold_problems", "timing_criterion",
]

#: Share of the drive's seconds after the first full window with each model's result (`expect.coverage_min`).
DEFAULT_COVERAGE_MIN = 0.99
#: How late (scenario seconds) a result or rule event may arrive after the sample time it claims
#: (`expect.result_late_s_max`): raw-can-v1 closes a sample at the next poll cycle's request, 1 s later.
DEFAULT_RESULT_LATE_S_MAX = 1.5
#: Fuel accuracy judged on every run with a fuel truth (`expect.fuel_r2_min`, `expect.fuel_mae_lph_max`).
DEFAULT_FUEL_R2_MIN = 0.85
DEFAULT_FUEL_MAE_LPH_MAX = 0.6
#: The default R² is judged on drives of at least this many fuel results: over a short drive the truth varies
#: too little for R² to say much of the model (a 5-minute drive measured 0.55 with an MAE of 0.16 L/h).
FUEL_R2_MIN_WINDOWS = 1200
#: Share of judged windows whose behaviour class is the style driven (`expect.behaviour_accuracy_min`).
DEFAULT_BEHAVIOUR_ACCURACY_MIN = 0.85

#: The models' result kinds, each judged for coverage.
MODEL_KINDS: dict[str, type] = {"fuel": FuelResult, "anomaly": AnomalyResult, "behaviour": BehaviourResult}
_TIMED = (FuelResult, AnomalyResult, BehaviourResult, FeatureDebug, RuleEvent)


def coverage_criterion(events: Sequence[Event], first_window_s: float, end_s: float, required: float,
                       excluded: Sequence[tuple[float, float]] = ()) -> Criterion:
    """The least share, over the three models, of the whole seconds in [first_window_s, end_s) with a result,
    less the seconds of `excluded` intervals [start, end] (faults that cut the unit's data on purpose; on a paced rig,
    seconds the harness's own simulated STM32 sent no sample: the rig's loss, counted rig-side).

    Status heartbeats count for nothing: minutes with no model result are minutes the unit was not watching.

    >>> from harness.wire.events import ModelRef
    >>> ref = ModelRef("fuel", "ab", "1")
    >>> fuel = [FuelResult(float(t), 0.1, ref, 3.0) for t in range(59, 100)]
    >>> coverage_criterion(fuel, 59, 159, 0.99).describe()
    'coverage 0.00 < required 0.99 (fuel 0.41, anomaly 0.00, behaviour 0.00 of 100 s; no anomaly result at all)'
    """
    seconds = np.arange(int(np.ceil(first_window_s)), int(np.ceil(end_s)))
    for start, stop in excluded:
        seconds = seconds[(seconds < start) | (seconds > stop)]
    if len(seconds) == 0:
        return Criterion("coverage", None, required, ">=", "not applicable", "the drive is shorter than a window")
    shares, last_seen = {}, {}
    for name, cls in MODEL_KINDS.items():
        times = np.array([e.t_s for e in events if isinstance(e, cls)], dtype=float)
        got = set(np.round(times).astype(int).tolist())
        shares[name] = sum(1 for s in seconds.tolist() if s in got) / len(seconds)
        last_seen[name] = float(times.max()) if len(times) else None
    worst = min(shares, key=shares.get)
    note = ", ".join(f"{name} {share:.2f}" for name, share in shares.items()) + f" of {len(seconds)} s"
    if excluded:
        note += f" ({len(excluded)} window(s) excluded: faults, or seconds a paced rig's own STM32 sent no sample)"
    if shares[worst] < required:
        last = last_seen[worst]
        if last is None:
            note += f"; no {worst} result at all"
        elif last < seconds[-1] - 1:
            note += f"; no {worst} result after t={last:g} s"
        else:
            note += f"; {worst} results missing for {round((1 - shares[worst]) * len(seconds))} s"
    return criterion("coverage", shares[worst], required, ">=", note=note)


def timing_criterion(events: Sequence[Event], arrival_t_s: Sequence[float], bound_s: float) -> Criterion:
    """The latest arrival, over every result and rule event, after the sample time it claims (scenario seconds).

    `arrival_t_s[i]` is the scenario time `events[i]` reached the harness. An event stamped more than half a second
    after its own arrival claims a window that had not happened yet: measured as that much late too.
    """
    worst: dict[str, float] = {}
    early: dict[str, float] = {}
    for event, arrived in zip(events, arrival_t_s, strict=False):
        if isinstance(event, _TIMED):
            late = arrived - event.t_s
            worst[event.kind] = max(worst.get(event.kind, -np.inf), late)
            if -late > 0.5:
                early[event.kind] = max(early.get(event.kind, 0.0), -late)
    if not worst:
        return Criterion("result_late_s", None, bound_s, "<=", "not measured", "no result or rule event arrived")
    measured = max(max(worst.values()), max(early.values(), default=0.0))
    kind = max(worst, key=worst.get)
    note = f"latest: {kind} {worst[kind]:.2f} s after the sample time it claims"
    if early:
        first = max(early, key=early.get)
        note += f"; {first} stamped up to {early[first]:.2f} s after its own arrival (a time in the future)"
    return criterion("result_late_s", measured, bound_s, "<=", note=note)


def behaviour_criterion(events: Sequence[Event], style_by_second: np.ndarray | None,
                        labels: Sequence[LabelledEvent], required: float, window_s: int = 60,
                        not_judged: str = NO_STYLE) -> Criterion:
    """Accuracy of the behaviour class over the windows whose style is known (`MIN_STYLE_PURITY`, no anomaly).

    `style_by_second[s]` is the style index second s earns (`harness.world.driving_style`; None: the style is
    not known, e.g. a recorded drive, or a link without the signals the features need): then "not applicable",
    for the reason `not_judged`.
    """
    return behaviour_accuracy_criterion(behaviour_score(events, style_by_second, labels, window_s), required,
                                        not_judged)


def behaviour_accuracy_criterion(score: BehaviourScore | None, required: float, not_judged: str = NO_STYLE
                                 ) -> Criterion:
    """`behaviour_criterion` on a run's `BehaviourScore` (None: no behaviour labels, for the reason `not_judged`)."""
    name = "behaviour_accuracy"
    if score is None:
        return Criterion(name, None, required, ">=", "not applicable", not_judged)
    if score.n == 0:
        return Criterion(name, None, required, ">=", "not applicable", NO_BEHAVIOUR_WINDOW)
    note = f"{score.correct}/{score.n} windows"
    confused = score.most_confused()
    if confused:
        note += f"; most often {confused[0]} reported as {confused[1]} ({confused[2]})"
    return criterion(name, score.accuracy, required, ">=", note=note)


def model_identity_problems(events: Sequence[Event], sha256_by_model: Mapping[str, str], version: str | None,
                            threshold: float | None = None) -> list[str]:
    """What the app reports of its models that is not the installed models: another sha256 or manifest version,
    or an anomaly threshold other than the manifest's."""
    problems = []
    for name, cls in MODEL_KINDS.items():
        installed = sha256_by_model.get(name, "")
        for ref in {e.model for e in events if isinstance(e, cls)}:
            if ref.name != name or not ref.sha256 or not installed.startswith(ref.sha256):
                problems.append(f"{name}: the app reports model '{ref.name}' sha256 {ref.sha256}, the harness "
                                f"installed {installed[:16]}: a stale or different model file")
            elif ref.version is not None and version is not None and ref.version != version:
                problems.append(f"{name}: the app reports models version {ref.version}, the manifest's is "
                                f"{version}: a stale manifest")
    if threshold is not None:
        problems += threshold_problems(events, threshold)
    return problems


def threshold_problems(events: Sequence[Event], threshold: float) -> list[str]:
    """The anomaly thresholds the app reports applying that are not the manifest's `threshold`."""
    applied = sorted({e.threshold for e in events if isinstance(e, AnomalyResult)})
    wrong = [t for t in applied if abs(t - threshold) > 1e-6 * max(abs(threshold), 1.0)]
    if not wrong:
        return []
    return [f"anomaly: the app applies threshold(s) {', '.join(f'{t:.4g}' for t in wrong)}, the manifest's is "
            f"{threshold:.4g}: a wrong or stale threshold"]


def model_identity_criterion(events: Sequence[Event], sha256_by_model: Mapping[str, str], version: str | None,
                             threshold: float | None) -> Criterion:
    """`model_identity_problems` as a criterion: measured is how many there are, required 0."""
    problems = model_identity_problems(events, sha256_by_model, version, threshold)
    return criterion("models_as_installed", float(len(problems)), 0.0, "<=", note="; ".join(problems))


def tap_criterion(problems: Sequence[str], judged: bool, why_not: str = "") -> Criterion:
    """The UART tap's cross-check against the CAN log (`harness.rig.uart_tap.TapReport.problems`): required none.
    `judged` False (device faults cut the link on purpose) makes it "not applicable" with `why_not`."""
    if not judged:
        return Criterion("uart_tap_vs_can_log", None, 0.0, "<=", "not applicable", why_not)
    return criterion("uart_tap_vs_can_log", float(len(problems)), 0.0, "<=", note="; ".join(problems))

