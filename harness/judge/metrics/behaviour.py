"""The behaviour model's results against the style the drive earns: confusion matrix, accuracy, macro-F1.

A run's behaviour labels are the driving style of each second (`Trace.style`: the style the true driving earns,
`harness.world.driving_style`, on generated routes and drive cycles alike). A 60-second window's true style is
the style of its last second (the class of that very window); the result is judged when at least
`MIN_STYLE_PURITY` of the window's seconds carry that style (a stable window, not one whose class flips at a
threshold: training keeps the same windows) and the window overlaps no labelled anomaly (an anomaly makes the
driving of its window, which is not what the scenario asks the unit to class).

- the confusion matrix counts judged windows by (true style, reported class), rows and columns in
  `harness.wire.behaviour.STYLES` order; a class index outside them is counted in one more column, "invalid";
- macro-F1 is the unweighted mean of the per-class F1 over the styles present in the labels or in the predictions
  (a style neither driven nor reported has no F1 and does not count; one reported but never driven counts with
  F1 0); an invalid class is a wrong answer (a miss of its true style), never a class of its own.

Pure functions; what this module does not do: know the rig (the caller says whether the labels are known, and
why not), or set a minimum (`expect.behaviour_macro_f1_min`, `expect.behaviour_accuracy_min` judge these figures).
"""
from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass

import numpy as np

from harness.wire.behaviour import STYLES
from harness.wire.events import BehaviourResult, Event
from harness.wire.link import get_codec
from harness.wire.signals import LabelledEvent, Trace
from harness.world.driving_style import window_labels

__all__ = ["INVALID_CLASS", "MIN_STYLE_PURITY", "NO_STYLE", "BehaviourScore", "behaviour_labels", "behaviour_score",
           "macro_f1"]

#: A window is judged for behaviour when at least this share of its seconds carry its own style (training's
#: `training.behaviour.MIN_PURITY`) and it overlaps no labelled anomaly.
MIN_STYLE_PURITY = 0.8
#: Why a run has no behaviour labels: a replayed recording (its driving is taken as recorded, not labelled).
NO_STYLE = "the route's driving style is not known (a recording is replayed)"
#: The confusion matrix's last column: results whose class is none of `STYLES`.
INVALID_CLASS = "invalid"


@dataclass(frozen=True)
class BehaviourScore:
    """The judged behaviour windows of a run: `confusion[i][j]` counts windows of true style `STYLES[i]` reported as
    `STYLES[j]` (j == len(STYLES): an invalid class)."""

    confusion: tuple[tuple[int, ...], ...]

    @property
    def n(self) -> int:
        return sum(map(sum, self.confusion))

    @property
    def correct(self) -> int:
        return sum(self.confusion[i][i] for i in range(len(STYLES)))

    @property
    def accuracy(self) -> float | None:
        return self.correct / self.n if self.n else None

    @property
    def f1_by_class(self) -> dict[str, float]:
        """F1 per style present in the labels or the predictions."""
        m = np.array(self.confusion, dtype=float)
        out = {}
        for i, name in enumerate(STYLES):
            true, said, hit = m[i].sum(), m[:, i].sum(), m[i, i]
            if true or said:
                out[name] = float(2 * hit / (true + said))
        return out

    @property
    def macro_f1(self) -> float | None:
        f1 = self.f1_by_class
        return sum(f1.values()) / len(f1) if f1 else None

    def to_json(self) -> dict:
        return {"windows": self.n, "accuracy": self.accuracy, "macro_f1": self.macro_f1,
                "f1_by_class": self.f1_by_class, "classes": list(STYLES),
                "predicted_classes": [*STYLES, INVALID_CLASS],
                "confusion": [list(row) for row in self.confusion]}

    def most_confused(self) -> tuple[str, str, int] | None:
        """(true style, reported class, windows) of the largest off-diagonal cell, or None when all are right."""
        cells = [(n, i, j) for i, row in enumerate(self.confusion) for j, n in enumerate(row) if i != j and n]
        if not cells:
            return None
        n, i, j = max(cells)
        return STYLES[i], ([*STYLES, INVALID_CLASS])[j], n

    @staticmethod
    def pooled(scores: Sequence[BehaviourScore]) -> BehaviourScore | None:
        """The scores' confusion matrices summed (None when there are none)."""
        if not scores:
            return None
        total = np.sum([np.array(s.confusion) for s in scores], axis=0)
        return BehaviourScore(tuple(tuple(int(x) for x in row) for row in total))


def macro_f1(confusion: Sequence[Sequence[int]]) -> float | None:
    """Macro-F1 of a confusion matrix in `BehaviourScore`'s layout.

    >>> macro_f1([[8, 2, 0, 0], [0, 0, 0, 0], [0, 0, 10, 0]])  # normal 8/10, 2 said eco, aggressive all right
    0.6296296296296297
    """
    return BehaviourScore(tuple(tuple(row) for row in confusion)).macro_f1


def behaviour_score(events: Sequence[Event], style_by_second: np.ndarray | None, labels: Sequence[LabelledEvent],
                    window_s: int = 60) -> BehaviourScore | None:
    """The confusion of the behaviour results over the windows whose style is known; None when `style_by_second`
    is None (the run has no behaviour labels). A score of 0 windows is a run with labels but no judged window."""
    if style_by_second is None:
        return None
    confusion = np.zeros((len(STYLES), len(STYLES) + 1), dtype=np.int64)
    truth, stability = window_labels(style_by_second, window_s)  # index k: the window ending at k + window_s - 1
    for result in events:
        if not isinstance(result, BehaviourResult):
            continue
        end = int(round(result.t_s)) + 1
        if end - window_s < 0 or end > len(style_by_second):
            continue
        if any(label.start_s < end and label.end_s >= end - window_s for label in labels):
            continue
        if stability[end - window_s] < MIN_STYLE_PURITY:
            continue
        said = result.label if 0 <= result.label < len(STYLES) else len(STYLES)
        confusion[int(truth[end - window_s]), said] += 1
    return BehaviourScore(tuple(tuple(int(x) for x in row) for row in confusion))


def behaviour_labels(codec: str, trace: Trace,
                     injectable_signals: Collection[str] = ("brake_pressure", "acceleration_x")
                     ) -> tuple[np.ndarray | None, str]:
    """(style index per second, "") where the run has behaviour labels, else (None, why not): the style is known
    where the plant drove the route (a generated trip or a drive cycle; not a replayed recording), and judged only on a
    link that carries samples (raw-can-v1 has no brake, acceleration or position: half the features are missing)
    and where the rig drives the unit's own brake and acceleration sensors (`injectable_signals`: on a bench
    without a sensor stimulator they read the bench, not the drive)."""
    if "sample" not in get_codec(codec).capabilities.record_types:
        return None, f"{codec} carries no samples: the behaviour features lack brake, acceleration and position"
    if not {"brake_pressure", "acceleration_x"} <= set(injectable_signals):
        return None, "the unit's own sensors read the bench, not the drive: brake and acceleration are not the drive's"
    style = trace.resample().style
    if style is None:
        return None, NO_STYLE
    return style, ""
