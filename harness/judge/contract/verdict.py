"""What every contract check returns and shares: the `Verdict`, a `Tolerance`, and the events it reads.

A check's verdict is pass, fail (with a message naming the cause, and a short `cause` tag) or inconclusive
(nothing to judge). `blocked_by_link` gives the common inconclusive case: the app rebuilt no samples from the
link, so nothing downstream of the link can be compared (the link check says why).
"""
from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from harness.wire.events import AnomalyResult, AppStatus, BehaviourResult, Event, FeatureDebug, FuelResult

__all__ = [
    "CHECKS", "FAIL", "INCONCLUSIVE", "PASS", "Tolerance", "Verdict", "blocked_by_link", "events_of", "fmt",
    "last_status",
]

CHECKS: tuple[str, ...] = ("link", "model-parity", "feature-parity", "readability", "liveness")
PASS, FAIL, INCONCLUSIVE = "pass", "fail", "inconclusive"


@dataclass(frozen=True)
class Verdict:
    """One contract check's finding. `cause` is a short tag of the diagnosed cause (None when it passed)."""

    check: str
    status: str  # PASS, FAIL or INCONCLUSIVE
    message: str
    cause: str | None = None

    @property
    def passed(self) -> bool:
        return self.status == PASS

    @property
    def failed(self) -> bool:
        return self.status == FAIL

    def __str__(self) -> str:
        return f"{self.check}: {self.status.upper()}: {self.message}"


@dataclass(frozen=True)
class Tolerance:
    """|reported - expected| <= atol + rtol * |expected|, in the output's unit."""

    atol: float
    rtol: float
    unit: str

    def close(self, reported: np.ndarray, expected: np.ndarray) -> np.ndarray:
        return np.abs(np.asarray(reported, float) - np.asarray(expected, float)) <= (
            self.atol + self.rtol * np.abs(np.asarray(expected, float)))


def events_of(events: Iterable[Event], cls: type) -> list:
    """The events of one class, in order."""
    return [e for e in events if isinstance(e, cls)]


def last_status(events: Sequence[Event]) -> AppStatus | None:
    """The app's last status line, if any."""
    return next((e for e in reversed(events) if isinstance(e, AppStatus)), None)


def _app_decoded_nothing(events: Sequence[Event]) -> bool:
    """True when the app rebuilt no sample from the link: nothing downstream of the link can be judged."""
    if any(isinstance(e, (FuelResult, AnomalyResult, BehaviourResult, FeatureDebug)) for e in events):
        return False
    status = last_status(events)
    return status is None or status.samples_received == 0


def blocked_by_link(check: str, events: Sequence[Event]) -> Verdict | None:
    """An inconclusive verdict when the app decoded nothing from the link; else None."""
    if _app_decoded_nothing(events):
        return Verdict(check, INCONCLUSIVE, "the app rebuilt no samples from the link, so it scored no windows: "
                                            "nothing to compare (the link check says why)")
    return None


def fmt(value: float) -> str:
    """A figure in a verdict's message: 4 significant digits."""
    return f"{value:.4g}"

