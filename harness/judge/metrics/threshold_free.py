"""Threshold-free quality of the anomaly score: AUROC and AUPRC per anomaly type.

Positives are results whose time lies in an event of that type ([start_s, end_s), as `LabelledEvent.active`);
negatives are results in no event at all (and outside `exclude_after_s` after any event's end; 0 by default);
results in events of other types are left out. AUROC is the Mann-Whitney statistic with tied scores counted one
half; AUPRC is average precision (the step-wise sum over distinct thresholds, tied scores forming one
threshold, no interpolation). Neither chooses a threshold; point-adjusted F1 is not reported at all.
"""
from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from harness.judge.metrics.series import as_times, in_type_order
from harness.wire.signals import LabelledEvent

__all__ = ["ThresholdFree", "auprc", "auroc", "score_labels", "threshold_free_by_type"]


def _scores_labels(scores: Sequence[float] | np.ndarray, labels: Sequence[bool] | np.ndarray
                   ) -> tuple[np.ndarray, np.ndarray]:
    s = np.asarray(scores, dtype=float).reshape(-1)
    y = np.asarray(labels, dtype=bool).reshape(-1)
    if len(s) != len(y):
        raise ValueError(f"{len(s)} scores but {len(y)} labels")
    if not np.all(np.isfinite(s)):
        raise ValueError("scores must be finite")
    return s, y


def _midranks(values: np.ndarray) -> np.ndarray:
    """1-based ranks, tied values sharing the mean of their ranks."""
    order = np.argsort(values, kind="stable")
    _, first, counts = np.unique(values[order], return_index=True, return_counts=True)
    ranks = np.empty(len(values))
    ranks[order] = np.repeat(first + (counts + 1) / 2.0, counts)
    return ranks


def auroc(scores: Sequence[float] | np.ndarray, labels: Sequence[bool] | np.ndarray) -> float | None:
    """Area under the ROC curve: P(score of a positive > score of a negative), ties counting one half.

    None when there are no positives or no negatives (undefined).

    >>> auroc([0.1, 0.4, 0.35, 0.8], [0, 0, 1, 1])
    0.75
    >>> auroc([1, 1, 1, 1], [0, 1, 0, 1])
    0.5
    """
    s, y = _scores_labels(scores, labels)
    n_pos, n_neg = int(y.sum()), int((~y).sum())
    if n_pos == 0 or n_neg == 0:
        return None
    rank_sum = float(_midranks(s)[y].sum())
    return (rank_sum - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg)


def auprc(scores: Sequence[float] | np.ndarray, labels: Sequence[bool] | np.ndarray) -> float | None:
    """Area under the precision-recall curve as average precision: Σ (R_k − R_{k−1}) · P_k over distinct
    thresholds, highest first, tied scores forming one threshold. None when there are no positives.

    Its chance level is the share of positives (a constant score gets exactly that), not 0.5.

    >>> auprc([0.1, 0.4, 0.35, 0.8], [0, 0, 1, 1])
    0.8333333333333333
    """
    s, y = _scores_labels(scores, labels)
    n_pos = int(y.sum())
    if n_pos == 0:
        return None
    order = np.argsort(-s, kind="stable")
    s_sorted, y_sorted = s[order], y[order]
    tp = np.cumsum(y_sorted)
    seen = np.arange(1, len(s) + 1)
    # The last index of each group of tied scores is where that threshold's counts are complete.
    last_of_group = np.r_[np.nonzero(np.diff(s_sorted))[0], len(s) - 1]
    tp_at, seen_at = tp[last_of_group], seen[last_of_group]
    recall_steps = np.diff(np.r_[0, tp_at]) / n_pos
    return float(np.sum(recall_steps * tp_at / seen_at))


def score_labels(t_s: Sequence[float] | np.ndarray, labels: Iterable[LabelledEvent], anomaly_type: str, *,
                 exclude_after_s: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """(included, positive) masks over result times for one anomaly type.

    Positive: inside an event of `anomaly_type`. Negative (included, not positive): inside no event at all and
    not within `exclude_after_s` after any event's end (pass the window length to keep windows that still hold
    anomalous samples out of the negatives). Everything else is excluded.
    """
    times = as_times(t_s, "score_labels")
    positive = np.zeros(len(times), dtype=bool)
    in_any = np.zeros(len(times), dtype=bool)
    for event in labels:
        inside = event.active(times)
        if event.type == anomaly_type:
            positive |= inside
        in_any |= inside | ((times >= event.end_s) & (times < event.end_s + exclude_after_s))
    included = positive | ~in_any
    return included, positive


@dataclass(frozen=True)
class ThresholdFree:
    anomaly_type: str
    n_positive: int
    n_negative: int
    auroc: float | None
    auprc: float | None


def threshold_free_by_type(t_s: Sequence[float] | np.ndarray, scores: Sequence[float] | np.ndarray,
                           labels: Sequence[LabelledEvent], *, exclude_after_s: float = 0.0
                           ) -> dict[str, ThresholdFree]:
    """AUROC and AUPRC of a score series per anomaly type that has events (see `score_labels`)."""
    times = as_times(t_s, "threshold_free_by_type")
    s = np.asarray(scores, dtype=float).reshape(-1)
    if len(s) != len(times):
        raise ValueError(f"threshold_free_by_type: {len(times)} times but {len(s)} scores")
    out = {}
    for anomaly_type in in_type_order(e.type for e in labels):
        included, positive = score_labels(times, labels, anomaly_type, exclude_after_s=exclude_after_s)
        y = positive[included]
        out[anomaly_type] = ThresholdFree(anomaly_type, int(y.sum()), int((~y).sum()),
                                          auroc(s[included], y), auprc(s[included], y))
    return out
