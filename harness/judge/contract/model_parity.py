"""`check_model_parity`: for every window the app scored, the harness rebuilds that window from the tap's bytes
and runs the installed ONNX files itself (same feature order, in-graph normalisation, the manifest's threshold);
the app's outputs must agree within `PARITY_TOLERANCES`.

The behaviour model is run on the features the app logged for that window (feature parity judges those). A
mismatch is diagnosed by trying the known mistakes (two signals swapped, inputs normalised twice, speed in m/s,
features in another order) and by the shape of the error (a small consistent drift: a quantised or float16
copy; no pattern: a stub). It cannot tell a stub from a model the harness has never seen: both are "not the
installed model".
"""
from __future__ import annotations

import itertools
from collections.abc import Callable

import numpy as np

from harness.inference.features import BEHAVIOUR_FEATURES, WINDOW_S, behaviour_features
from harness.inference.models import ModelSet
from harness.judge.contract.reference import (
    DIAGNOSIS_WINDOWS,
    MAX_UNMATCHED_FRACTION,
    ContractRun,
    lost_samples,
    pair_with_reference,
    swap,
)
from harness.judge.contract.verdict import (
    FAIL,
    INCONCLUSIVE,
    PASS,
    Tolerance,
    Verdict,
    blocked_by_link,
    blocked_by_tap,
    events_of,
    fmt,
)
from harness.judge.metrics.evidence import model_identity_problems, threshold_problems
from harness.wire.events import AnomalyResult, BehaviourResult, FeatureDebug, FuelResult
from harness.wire.signals import SIGNALS

__all__ = ["PARITY_TOLERANCES", "check_model_parity"]

#: Per model: how far the app's output may be from the harness's run of the same ONNX file on the same window.
#: The app runs float32 graphs with onnxruntime (or another runtime on the phone); different kernels change the
#: last bits, never 1 %. A float16 or int8 copy of the fuel model moves it by up to 1.2 L/h (manifest,
#: quantisation), far beyond these.
PARITY_TOLERANCES: dict[str, Tolerance] = {
    "fuel": Tolerance(atol=0.01, rtol=1e-3, unit="L/h"),
    "anomaly": Tolerance(atol=1e-4, rtol=1e-3, unit="score units"),
    "behaviour": Tolerance(atol=1e-3, rtol=0.0, unit="probability"),
}


def _standardised(context: np.ndarray) -> np.ndarray:
    with np.errstate(all="ignore"):
        mean, std = np.nanmean(context, axis=0), np.nanstd(context, axis=0)
    return ((context - mean) / np.where(std > 0, std, 1.0)).astype(np.float32)


def _window_mistakes() -> list[tuple[str, str, Callable[[np.ndarray], np.ndarray]]]:
    """(cause tag, description, transform of a [n, 10] input) for the known ways an app mangles its input."""
    out = []
    for i, j in itertools.combinations(range(len(SIGNALS)), 2):
        order = swap(len(SIGNALS), i, j)
        out.append(("feature-order", f"swapped feature order: the app feeds {SIGNALS[i]} where the model reads "
                                     f"{SIGNALS[j]} and vice versa (manifest feature_order: {', '.join(SIGNALS)})",
                    lambda c, order=order: c[:, order]))
    out.append(("normalisation", "wrong normalisation: the app standardises the window itself, but the graph "
                                 "normalises its raw input (manifest in_graph)", _standardised))
    speed = SIGNALS.index("vehicle_speed")

    def metres_per_second(c: np.ndarray) -> np.ndarray:
        c = c.copy()
        c[:, speed] /= 3.6
        return c

    out.append(("units", "wrong units: the app feeds vehicle_speed in m/s, the model reads km/h", metres_per_second))
    return out


#: Time shifts (s) the diagnosis tries: an app scoring the window of another second than the one it claims.
MAX_SHIFT_S = 30


def _diagnose_outputs(reported: np.ndarray, expected: np.ndarray, inputs: list[np.ndarray],
                      run_model: Callable[[np.ndarray], float], tolerance: Tolerance,
                      mistakes: list[tuple[str, str, Callable[[np.ndarray], np.ndarray]]],
                      shifted: Callable[[int, int], np.ndarray | None] | None = None) -> tuple[str, str]:
    """Why the app's outputs differ from the model's on the same inputs: (cause tag, explanation).

    Tried in order: a known input mistake; one scale factor or offset on every output; the model's output on the
    window of another second (`shifted(k, d)`: result k's input d seconds later, None where there is none); then
    the shape of the error (a small drift, or no pattern: a stub).
    """
    bad = np.flatnonzero(~tolerance.close(reported, expected))
    picks = bad[np.linspace(0, len(bad) - 1, min(DIAGNOSIS_WINDOWS, len(bad))).astype(int)]
    for cause, text, transform in mistakes:
        if all(tolerance.close(reported[k], run_model(transform(inputs[k]))) for k in picks):
            return cause, f"consistent with {text} (matches on {len(picks)}/{len(picks)} windows tried)"
    usable = np.abs(expected) > 1e-6
    if usable.sum() >= 3:
        factor = float(np.median(reported[usable] / expected[usable]))
        if abs(factor - 1.0) > 1e-3 and tolerance.close(reported, factor * expected).mean() >= 0.95:
            return "scale-factor", (f"the app's outputs are the model's scaled by {factor:.4g} (a scale factor on "
                                    f"the output, e.g. a unit conversion: matches on "
                                    f"{int(tolerance.close(reported, factor * expected).sum())}/{len(reported)} "
                                    f"windows)")
    offset = float(np.median(reported - expected))
    if abs(offset) > tolerance.atol and tolerance.close(reported, expected + offset).mean() >= 0.95:
        return "offset", f"the app's outputs are the model's plus {offset:.4g} (a constant offset on the output)"
    if shifted is not None:
        for d in sorted(range(-MAX_SHIFT_S, MAX_SHIFT_S + 1), key=abs):
            if d == 0:
                continue
            # the windows that have a window d seconds away (none before the first or after the last)
            have = [(int(k), x) for k in bad if (x := shifted(int(k), d)) is not None]
            if len(have) < min(3, len(bad)):
                continue
            tried = [have[i] for i in np.linspace(0, len(have) - 1, min(DIAGNOSIS_WINDOWS, len(have))).astype(int)]
            if all(tolerance.close(reported[k], run_model(x)) for k, x in tried):
                return "time-shift", (f"a time shift of {d:+d} s: the app's output for the window it stamps t is "
                                      f"the model's output on the window ending at t{d:+d} s (matches on "
                                      f"{len(tried)}/{len(tried)} windows tried)")
    error = reported - expected
    # "small": a few per cent of the output's typical size (a quantised copy moves it that much, a stub far more)
    scale = max(float(np.median(np.abs(expected))), float(np.std(expected)), 1e-9)
    if len(reported) >= 3 and np.std(reported) > 0 and np.std(expected) > 0:
        correlation = float(np.corrcoef(reported, expected)[0, 1])
    else:
        correlation = float("nan")
    if correlation > 0.98 and float(np.median(np.abs(error))) < 0.05 * scale:
        return "drift", (f"the outputs follow the model closely (correlation {correlation:.4f}) but drift beyond "
                         f"the tolerance: consistent with a float16/int8 (quantised) or otherwise altered copy of "
                         f"the model, or a different runtime's numerics")
    return "stub", (f"no known input mistake explains them and they do not follow the model (correlation "
                    f"{fmt(correlation)}): the app does not run this model on this window (a stub engine, "
                    f"a heuristic, or another model)")


def check_model_parity(run: ContractRun, models: ModelSet,
                       tolerances: dict[str, Tolerance] = PARITY_TOLERANCES) -> Verdict:
    """Every window the app scored, rerun by the harness on the installed ONNX files: the outputs must agree."""
    check = "model-parity"
    blocked = blocked_by_link(check, run.events) or blocked_by_tap(check, run)
    if blocked:
        return blocked
    if run.reference is None:
        return Verdict(check, INCONCLUSIVE, "no UART tap on this rig: the harness cannot rebuild the windows the app "
                                            "scored (add a tap: rig file stm32.uart_tap)")
    problems, causes, summary = [], [], []
    manifest = models.manifest
    for problem in model_identity_problems(run.events, {n: e.sha256 for n, e in manifest.models.items()},
                                           manifest.version):
        problems.append(problem)
        causes.append("stale-model")
    fuel_events = events_of(run.events, FuelResult)
    anomaly_events = events_of(run.events, AnomalyResult)
    behaviour_events = events_of(run.events, BehaviourResult)
    if not (fuel_events and anomaly_events and behaviour_events):
        missing = [k for k, v in (("fuel", fuel_events), ("anomaly", anomaly_events),
                                  ("behaviour", behaviour_events)) if not v]
        return Verdict(check, FAIL, f"the app logged no {', '.join(missing)} results although it decoded the link",
                       "no-results")

    def judge(name: str, results: list, get_reported: Callable, get_expected: Callable, get_input: Callable,
              run_model: Callable, mistakes: list) -> None:
        tolerance = tolerances[name]
        kept, contexts, unmatched = pair_with_reference(results, run.reference)
        if unmatched > MAX_UNMATCHED_FRACTION * len(results) or not kept:
            problems.append(f"{name}: {unmatched} of {len(results)} windows the app scored are not among the "
                            f"{len(run.reference)} the harness rebuilt from the tap (sample times disagree)")
            causes.append("window-alignment")
            return
        inputs = [get_input(r, c) for r, c in zip(kept, contexts, strict=False)]
        reported = np.array([get_reported(r) for r in kept], dtype=float)
        expected = np.array([get_expected(x) for x in inputs], dtype=float)
        ok = tolerance.close(reported, expected)
        if ok.all():
            summary.append(f"{name} {len(kept)} windows (max |error| {fmt(np.max(np.abs(reported - expected)))} "
                           f"{tolerance.unit})")
            return
        k = int(np.flatnonzero(~ok)[0])
        lost = lost_samples(run)
        if lost:
            cause, why = "lost-samples", f"the app's windows miss data: {lost}"
        else:
            def shifted(i: int, d: int) -> np.ndarray | None:
                context = run.reference.context(kept[i].t_s + d)
                return None if context is None else get_input(kept[i], context)

            cause, why = _diagnose_outputs(reported, expected, inputs, run_model, tolerance, mistakes, shifted)
        problems.append(f"{name}: {int((~ok).sum())}/{len(kept)} windows outside the tolerance "
                        f"({tolerance.atol:g} + {tolerance.rtol:g} x |expected| {tolerance.unit}); e.g. at "
                        f"t={kept[k].t_s:g} s the app reported {fmt(reported[k])}, the model gives "
                        f"{fmt(expected[k])} on the same window; {why}")
        causes.append(cause)

    window_mistakes = _window_mistakes()
    judge("fuel", fuel_events, lambda r: r.fuel_rate_lph, lambda w: models.fuel(w),
          lambda r, c: c[-WINDOW_S:], lambda w: models.fuel(w), window_mistakes)
    judge("anomaly", anomaly_events, lambda r: r.score, lambda c: models.anomaly(c).score,
          lambda r, c: c, lambda c: models.anomaly(c).score, window_mistakes)
    threshold = models.threshold
    for problem in threshold_problems(anomaly_events, threshold):
        problems.append(problem)
        causes.append("threshold")
    wrong_alarm = [e for e in anomaly_events if e.alarm != (e.score > threshold)]
    if wrong_alarm:
        problems.append(f"anomaly: on {len(wrong_alarm)}/{len(anomaly_events)} windows the app's alarm disagrees "
                        f"with the manifest's rule score > threshold ({fmt(threshold)}), e.g. t={wrong_alarm[0].t_s:g} "
                        f"s: score {fmt(wrong_alarm[0].score)}, alarm {wrong_alarm[0].alarm}")
        causes.append("threshold")

    # The behaviour model reads the app's own features where it logged them (feature parity judges those).
    app_features = {int(round(e.t_s * 1000)): np.array(e.features, dtype=np.float32)
                    for e in events_of(run.events, FeatureDebug)}

    def behaviour_input(result: BehaviourResult, context: np.ndarray) -> np.ndarray:
        logged = app_features.get(int(round(result.t_s * 1000)))
        return logged if logged is not None else behaviour_features(context[-WINDOW_S:])

    feature_mistakes = [("feature-order", f"swapped feature order: the app feeds the model {BEHAVIOUR_FEATURES[i]} "
                                          f"and {BEHAVIOUR_FEATURES[j]} in each other's place",
                         lambda f, order=swap(len(BEHAVIOUR_FEATURES), i, j): f[order])  # noqa: B008 (bound per pair)
                        for i, j in itertools.combinations(range(len(BEHAVIOUR_FEATURES)), 2)]
    # one probability per class: judge each window by its largest difference
    tolerance = tolerances["behaviour"]
    kept, contexts, unmatched = pair_with_reference(behaviour_events, run.reference)
    if unmatched > MAX_UNMATCHED_FRACTION * len(behaviour_events) or not kept:
        problems.append(f"behaviour: {unmatched} of {len(behaviour_events)} windows the app scored are not among "
                        f"those the harness rebuilt from the tap")
        causes.append("window-alignment")
    else:
        inputs = [behaviour_input(r, c) for r, c in zip(kept, contexts, strict=False)]
        reported = np.array([r.probabilities for r in kept], dtype=float)
        expected = np.array([models.behaviour(x)[1] for x in inputs], dtype=float)
        worst = np.max(np.abs(reported - expected), axis=1)
        if (worst <= tolerance.atol).all():
            source = "the app's logged features" if app_features else "the harness's features"
            summary.append(f"behaviour {len(kept)} windows on {source} (max |error| {fmt(worst.max())})")
        else:
            bad = np.flatnonzero(worst > tolerance.atol)
            picks = bad[np.linspace(0, len(bad) - 1, min(DIAGNOSIS_WINDOWS, len(bad))).astype(int)]
            why = None
            for cause, text, transform in feature_mistakes:
                if all(np.max(np.abs(reported[k] - models.behaviour(transform(inputs[k]))[1])) <= tolerance.atol
                       for k in picks):
                    why = (cause, f"consistent with {text}")
                    break
            if why is None:
                flat_r, flat_e = reported[:, 2] - reported[:, 1], expected[:, 2] - expected[:, 1]
                why = _diagnose_outputs(flat_r, flat_e, inputs, lambda f: 0.0,
                                        Tolerance(tolerance.atol, 0.0, tolerance.unit), [])
            k = int(bad[0])
            problems.append(f"behaviour: {len(bad)}/{len(kept)} windows' probabilities differ by more than "
                            f"{tolerance.atol:g}; e.g. at t={kept[k].t_s:g} s the app reported "
                            f"[{', '.join(map(fmt, reported[k]))}], the model gives "
                            f"[{', '.join(map(fmt, expected[k]))}] on the same features; {why[1]}")
            causes.append(why[0])
    if problems:
        return Verdict(check, FAIL, "; ".join(problems), causes[0])
    return Verdict(check, PASS, "the app's outputs match the installed models on " + ", ".join(summary))
