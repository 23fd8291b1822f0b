"""`check_feature_parity`: the 18 behaviour features the app logged (`features` lines) against
`harness.inference.features.behaviour_features` on the harness's window.

Names population std, swapped features or a window off by one second when one of them explains the difference.
"""
from __future__ import annotations

import itertools
from collections.abc import Callable

import numpy as np

from harness.inference.features import BEHAVIOUR_FEATURES, WINDOW_S, behaviour_features
from harness.judge.contract.reference import (
    DIAGNOSIS_WINDOWS,
    MAX_UNMATCHED_FRACTION,
    ContractRun,
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
from harness.wire.events import FeatureDebug

__all__ = ["FEATURE_TOLERANCE", "check_feature_parity"]

#: Features are float32 statistics of the same window: only the last bits may differ.
FEATURE_TOLERANCE = Tolerance(atol=1e-4, rtol=1e-4, unit="feature units")


def check_feature_parity(run: ContractRun, tolerance: Tolerance = FEATURE_TOLERANCE) -> Verdict:
    """The 18 features the app logged, against the harness's extractor on the harness's window."""
    check = "feature-parity"
    blocked = blocked_by_link(check, run.events) or blocked_by_tap(check, run)
    if blocked:
        return blocked
    if run.reference is None:
        return Verdict(check, INCONCLUSIVE, "no UART tap on this rig: the harness cannot rebuild the windows")
    logged = events_of(run.events, FeatureDebug)
    if not logged:
        return Verdict(check, FAIL, "the app logged no `features` lines: a testable build logs the 18 behaviour "
                                    "features and their window (docs/contract.md)", "no-features")
    kept, contexts, unmatched = pair_with_reference(logged, run.reference)
    if unmatched > MAX_UNMATCHED_FRACTION * len(logged) or not kept:
        return Verdict(check, FAIL, f"{unmatched} of {len(logged)} `features` windows are not among those the "
                                    f"harness rebuilt from the tap", "window-alignment")
    wrong_start = [e for e in kept if abs(e.window_start_t_s - (e.t_s - WINDOW_S + 1)) > 0.5]
    if wrong_start:
        e = wrong_start[0]
        return Verdict(check, FAIL, f"{len(wrong_start)} `features` lines give a window of other than {WINDOW_S} "
                                    f"samples, e.g. {e.window_start_t_s:g}..{e.t_s:g} s", "window-length")
    reported = np.array([e.features for e in kept], dtype=float)
    expected = np.array([behaviour_features(c[-WINDOW_S:]) for c in contexts], dtype=float)
    both_nan = np.isnan(reported) & np.isnan(expected)
    close = tolerance.close(reported, expected) | both_nan
    if close.all():
        return Verdict(check, PASS, f"{len(kept)} windows' 18 features match the harness's extractor (sample std, "
                                    f"training order)")
    bad_rows = np.flatnonzero(~close.all(axis=1))
    per_feature = (~close).sum(axis=0)
    worst = [BEHAVIOUR_FEATURES[i] for i in np.argsort(-per_feature) if per_feature[i]][:6]
    picks = bad_rows[np.linspace(0, len(bad_rows) - 1, min(DIAGNOSIS_WINDOWS, len(bad_rows))).astype(int)]

    def explained(alternative: Callable[[int], np.ndarray]) -> bool:
        return all((tolerance.close(reported[k], alternative(k)) | np.isnan(reported[k])).all() for k in picks)

    cause, why = "features", "no known mistake (population std, swapped features, a shifted window) explains it"
    if explained(lambda k: behaviour_features(contexts[k][-WINDOW_S:], ddof=0)):
        cause, why = "population-std", ("the app uses the population standard deviation (ddof=0) where training "
                                        "uses the sample standard deviation (ddof=1)")
    else:
        for i, j in itertools.combinations(range(len(BEHAVIOUR_FEATURES)), 2):
            order = swap(len(BEHAVIOUR_FEATURES), i, j)
            if explained(lambda k: expected[k][order]):  # noqa: B023 (called at once, inside the loop)
                cause, why = "feature-order", (f"the app logs {BEHAVIOUR_FEATURES[i]} and {BEHAVIOUR_FEATURES[j]} in "
                                               f"each other's place (training feature order differs)")
                break
        else:
            for shift in (-1, 1):
                shifted = [run.reference.window(e.t_s + shift) for e in kept]
                have = [int(k) for k in bad_rows if shifted[k] is not None]  # none before the first window
                tried = [have[i] for i in np.linspace(0, len(have) - 1, min(DIAGNOSIS_WINDOWS, len(have))).astype(int)]
                if len(have) >= min(3, len(bad_rows)) and all(
                        (tolerance.close(reported[k], behaviour_features(shifted[k])) | np.isnan(reported[k])).all()
                        for k in tried):
                    cause, why = "window-offset", f"the app's window is shifted by {shift:+d} s"
                    break
    k = int(bad_rows[0])
    i = int(np.flatnonzero(~close[k])[0])
    return Verdict(check, FAIL, f"{len(bad_rows)}/{len(kept)} windows' features differ from the harness's extractor "
                                f"(mostly {', '.join(worst)}); e.g. at t={kept[k].t_s:g} s "
                                f"{BEHAVIOUR_FEATURES[i]} is {fmt(reported[k, i])}, the extractor gives "
                                f"{fmt(expected[k, i])}: {why}", cause)
