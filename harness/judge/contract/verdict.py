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
    "CHECKS", "ERROR", "FAIL", "INCONCLUSIVE", "PASS", "Tolerance", "Verdict", "blocked_by_link", "blocked_by_tap",
    "events_of", "fmt", "last_status", "tap_noise",
]

CHECKS: tuple[str, ...] = ("link", "model-parity", "feature-parity", "readability", "reporting", "liveness")
#: ERROR: the harness's own evidence is at fault (e.g. a noisy UART tap): no verdict on the unit.
PASS, FAIL, INCONCLUSIVE, ERROR = "pass", "fail", "inconclusive", "error"


@dataclass(frozen=True)
class Verdict:
    """One contract check's finding. `cause` is a short tag of the diagnosed cause (None when it passed)."""

    check: str
    status: str  # PASS, FAIL, INCONCLUSIVE or ERROR
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



def _damaged(crc_errors: int, bytes_skipped: int, frames_decoded: int) -> bool:
    """A decoder's counters show a damaged byte stream: CRC errors or bytes in no valid frame beyond a trace."""
    return crc_errors > max(2, 0.001 * frames_decoded) or bytes_skipped > max(64, 0.01 * frames_decoded)


def tap_noise(events: Sequence[Event], tap_stats) -> str | None:
    """Why the UART tap's bytes, not the link, are at fault, or None: the tap's decoder found a damaged stream where
    the app's own decoder (its last status line's counters decide) read the same link clean."""
    if tap_stats is None or not _damaged(tap_stats.crc_errors, tap_stats.bytes_skipped, tap_stats.frames_decoded):
        return None
    status = last_status(events)
    if status is None or "crc_errors" not in status.link or "frames_decoded" not in status.link:
        return None
    link = status.link
    app_errors, app_decoded = link["crc_errors"], link["frames_decoded"]
    if app_decoded == 0 or _damaged(app_errors, link.get("bytes_skipped", 0), app_decoded):
        return None
    return (f"the UART tap's bytes have {tap_stats.crc_errors} CRC errors and {tap_stats.bytes_skipped} bytes in no "
            f"valid frame where the app's own decoder counted {app_errors} CRC errors in {app_decoded} frames: the "
            f"tap (the harness's capture) is noisy, not the link; not a verdict on the unit (check the tap's wiring, "
            f"ground and baud rate)")


def blocked_by_tap(check: str, run) -> Verdict | None:
    """An ERROR verdict when the tap's bytes, which the check would judge the unit by, are at fault; else None."""
    reference = getattr(run, "reference", None)
    noise = tap_noise(run.events, reference.tap_stats if reference is not None else None)
    return Verdict(check, ERROR, noise, "tap-noise") if noise else None
