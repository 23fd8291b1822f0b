"""Latency: the app-reported inference times, and end-to-end wall time from a window's last sample on the bus to
its event at the harness. Summarised as p50/p99 ms by `harness.core.stats.percentiles`."""
from __future__ import annotations

from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from harness.core.stats import Percentiles, percentiles
from harness.judge.metrics.series import as_times
from harness.wire.events import MODEL_KINDS, Event

__all__ = ["EndToEndLatency", "end_to_end_latency", "inference_times_ms"]


def inference_times_ms(events: Iterable[Event], kinds: Collection[str] = MODEL_KINDS) -> list[float]:
    """The app's own reported inference times (``infer_ms``) of the results of the given kinds."""
    return [e.infer_ms for e in events if e.kind in kinds and getattr(e, "infer_ms", None) is not None]


@dataclass(frozen=True)
class EndToEndLatency:
    """Per event: wall ms from its window's last sample on the bus to its line at the harness."""

    latencies_ms: tuple[float, ...]
    n_unmatched: int  # events whose t matched no sent sample within the tolerance

    def stats(self) -> Percentiles:
        """The latencies' count and percentiles (ms)."""
        return percentiles(self.latencies_ms)


def end_to_end_latency(sent_t_s: Sequence[float] | np.ndarray, sent_wall_s: Sequence[float] | np.ndarray,
                       event_t_s: Sequence[float] | np.ndarray, received_wall_s: Sequence[float] | np.ndarray,
                       *, tolerance_s: float = 0.5) -> EndToEndLatency:
    """Pair each event with the sample it names and return received − sent wall time, in ms.

    `sent_t_s`/`sent_wall_s`: each sample's scenario time and the wall time (the collector's clock,
    time.monotonic) its last CAN frame went on the bus. `event_t_s`/`received_wall_s`: each event's ``t`` and
    `ReceivedEvent.received_wall_s`. An event pairs with the sample nearest its ``t`` if within `tolerance_s`.
    Negative latencies (clock or pairing trouble) are kept, not hidden. Latency is wall time whatever the
    rig's time scale.
    """
    sent_t = as_times(sent_t_s, "end_to_end_latency")
    sent_wall = np.asarray(sent_wall_s, dtype=float).reshape(-1)
    event_t = as_times(event_t_s, "end_to_end_latency")
    received_wall = np.asarray(received_wall_s, dtype=float).reshape(-1)
    if len(sent_t) != len(sent_wall) or len(event_t) != len(received_wall):
        raise ValueError("end_to_end_latency: each time series needs its wall times, one for one")
    if len(sent_t) == 0:
        return EndToEndLatency((), len(event_t))
    order = np.argsort(sent_t, kind="stable")
    sent_t, sent_wall = sent_t[order], sent_wall[order]
    if len(sent_t) > 1:
        right = np.clip(np.searchsorted(sent_t, event_t), 1, len(sent_t) - 1)
    else:
        right = np.zeros(len(event_t), dtype=int)
    left = np.maximum(right - 1, 0)
    nearest = np.where(np.abs(sent_t[left] - event_t) <= np.abs(sent_t[right] - event_t), left, right)
    matched = np.abs(sent_t[nearest] - event_t) <= tolerance_s
    latencies = (received_wall[matched] - sent_wall[nearest[matched]]) * 1000.0
    return EndToEndLatency(tuple(latencies.tolist()), int((~matched).sum()))
