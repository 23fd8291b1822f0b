"""The Android DTG app, simulated at its interfaces: UART in (pyserial), EdgeAI logcat lines out.

What it does, as the real app must (docs/events.md is the contract):
- reads the STM32's UART through pyserial and decodes it with the rig's link codec;
- rebuilds 1 Hz samples of the ten signals: with dtg-link-v2 from the firmware's packed sample records
  (stamped with scenario time), with raw-can-v1 from the OBD-II responses themselves, one sample per poll cycle
  (a cycle starts with the request for the first PID; raw-can-v1 has no timestamps, so samples are numbered);
- slides 60-sample windows (stride configurable, default 1 s); a second with no sample is a row of NaN;
- runs the three models of the models manifest with onnxruntime (1 thread, as on the phone) and the rule-based
  event detector, and writes one logcat line per result with tag EdgeAI;
- logs a status heartbeat (samples received, windows scored, link decoder counters) every `status_every_s`.

What it does not model: Android's scheduling and power management, the phone's own GNSS (with raw-can-v1
the position, brake and acceleration are not available), the app's UI, and logcat's ring buffer limits.
"""
from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
import numpy as np

from firmware_sim.rules import RuleDetector, RuleLimits
from firmware_sim.stm32 import LatestValues
from harness.cycles import STYLES
from harness.dbc import get_profile
from harness.events import (AnomalyResult, AppStatus, BehaviourResult, FeatureDebug, FuelResult, ModelRef,
                            RuleEvent, event_to_json, format_event_line)
from harness.features import CONTEXT_S, WINDOW_S, behaviour_features
from firmware_sim.uart import UartCapture
from harness.link import CanFrame, DecoderStats, Received, SampleRecord, get_codec
from harness.models import ModelSet
from harness.signals import SIGNALS

N_SIGNALS = len(SIGNALS)
_OBD_REQUEST_ID = 0x7DF


@dataclass
class AppStats:
    samples_received: int = 0
    windows_scored: int = 0
    lines_written: int = 0
    rule_events: int = 0


class SampleAssembler:
    """Rebuilds 1 Hz samples from decoded link records. Pure: feed records, get (t_s, row) samples."""

    def __init__(self, codec: str, profile: str = "obd2", first_pid: int = 0x0D):
        self._raw = codec == "raw-can-v1"
        self._profile = get_profile(profile)
        self._first_pid = first_pid
        self._latest = LatestValues(self._profile)
        self._cycle = -1

    def feed(self, record: object) -> list[tuple[float, np.ndarray]]:
        if isinstance(record, SampleRecord):
            row = np.array([np.nan if v is None else v for v in record.values], dtype=float)
            return [(record.t_ms / 1000.0, row)]
        if not (self._raw and isinstance(record, CanFrame)):
            return []
        out = []
        data = record.data
        if record.can_id == _OBD_REQUEST_ID and len(data) >= 3 and data[2] == self._first_pid:
            if self._cycle >= 0:
                values = self._latest.values(float(self._cycle))
                out.append((float(self._cycle), np.array([np.nan if values.get(name) is None else values[name]
                                                          for name in SIGNALS])))
            self._cycle += 1
            self._latest = LatestValues(self._profile)  # a sample holds only this cycle's answers
        else:
            self._latest.note(record, float(self._cycle))
        return out


class WindowBuffer:
    """The last `context_s` seconds of samples; once `window_s` seconds are covered, every `stride_s` seconds it
    emits the anomaly model's input [context_s, 10] (NaN for seconds with no sample, before the first one
    included); the last `window_s` rows are the window the fuel and behaviour models take."""

    def __init__(self, window_s: int = WINDOW_S, stride_s: int = 1, context_s: int | None = None):
        self.window_s, self.stride_s = window_s, stride_s
        self.context_s = window_s if context_s is None else context_s
        if self.context_s < window_s:
            raise ValueError(f"context_s ({self.context_s}) must be at least window_s ({window_s})")
        self._rows: dict[int, np.ndarray] = {}
        self._first: int | None = None

    def add(self, t_s: float, row: np.ndarray) -> np.ndarray | None:
        second = int(round(t_s))
        if self._first is None:
            self._first = second
        self._rows[second] = row
        for old in [s for s in self._rows if s <= second - self.context_s]:
            del self._rows[old]
        since = second - self._first + 1
        if since < self.window_s or (since - self.window_s) % self.stride_s:
            return None
        context = np.full((self.context_s, N_SIGNALS), np.nan, dtype=np.float32)
        for i, s in enumerate(range(second - self.context_s + 1, second + 1)):
            if s in self._rows:
                context[i] = self._rows[s]
        return context


class AppSim:
    """The simulated app: reads `port` (a pyserial Serial) in a thread and writes EdgeAI lines to `log`.

    `log` receives each logcat line (no newline); or, with `log_payload`, only each line's JSON payload (what a
    real app hands to `android.util.Log`, which adds the prefix: `firmware_sim.phone` runs it that way).
    Start it with `start()` (or as a context manager); `stop()` reads what is left, scores it and logs a last
    status line. A stopped app cannot be restarted.
    """

    def __init__(self, port, models: ModelSet, *, log: Callable[[str], None], codec: str = "dtg-link-v2",
                 profile: str = "obd2", limits: RuleLimits = RuleLimits(), stride_s: int = 1,
                 debug_features: bool = False, status_every_s: float = 60.0, pid: int = 4321,
                 log_payload: Callable[[str], None] | None = None):
        self._models = models
        manifest = models.manifest
        self._refs = {name: ModelRef(name, entry.sha256[:16], manifest.version)
                      for name, entry in manifest.models.items()}
        self._log = log
        # On a (simulated) phone the system's logger adds the logcat prefix: the app hands it the payload only.
        self._log_payload = log_payload
        self._capture = UartCapture(port, get_codec(codec).decoder(), keep_records=False,
                                    on_received=self._on_records)
        self._samples = SampleAssembler(codec, profile)
        self._windows = WindowBuffer(WINDOW_S, stride_s, CONTEXT_S)
        self._rules = RuleDetector(limits)
        self._debug = debug_features
        self._status_every_s = status_every_s
        self._next_status_s = status_every_s
        self._pid = pid
        self._seq = 0
        self._last_t: float | None = None
        self.stats = AppStats()

    @property
    def link_stats(self) -> DecoderStats:
        """The UART decoder's counters (frames decoded, CRC errors, frames lost by sequence number, ...)."""
        return self._capture.decoder_stats

    @property
    def bytes_read(self) -> int:
        return self._capture.stats.bytes_read

    @property
    def running(self) -> bool:
        """True while the reading thread runs (False before start, after stop, or when it died)."""
        return self._capture.running

    @property
    def error(self) -> BaseException | None:
        return self._capture.error

    def start(self) -> "AppSim":
        self._capture.start()
        return self

    def stop(self, timeout_s: float = 5.0) -> None:
        """Read what is left on the port, score it, log a last status line and stop."""
        if self._capture.running:
            self._capture.stop(timeout_s)
            self._write(self._status())

    def __enter__(self) -> "AppSim":
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def _on_records(self, received: list[Received]) -> None:
        for item in received:
            for t_s, row in self._samples.feed(item.record):
                self._on_sample(t_s, row)

    def _on_sample(self, t_s: float, row: np.ndarray) -> None:
        self.stats.samples_received += 1
        self._last_t = t_s
        for hit in self._rules.feed(t_s, row.tolist()):
            self.stats.rule_events += 1
            self._write(RuleEvent(t_s, hit.type, float(hit.value), float(hit.limit)))
        context = self._windows.add(t_s, row)
        if context is not None:
            self._score(t_s, context)
        if t_s >= self._next_status_s:
            self._next_status_s = (math.floor(t_s / self._status_every_s) + 1) * self._status_every_s
            self._write(self._status())

    def _score(self, t_s: float, context: np.ndarray) -> None:
        self.stats.windows_scored += 1
        window = context[-WINDOW_S:]
        started = time.perf_counter()
        fuel = self._models.fuel(window)
        fuel_ms = (time.perf_counter() - started) * 1000.0
        self._write(FuelResult(t_s, round(fuel_ms, 4), self._refs["fuel"], float(fuel)))
        started = time.perf_counter()
        anomaly = self._models.anomaly(context)
        anomaly_ms = (time.perf_counter() - started) * 1000.0
        self._write(AnomalyResult(t_s, round(anomaly_ms, 4), self._refs["anomaly"], anomaly.score,
                                  self._models.threshold, anomaly.alarm,
                                  tuple(round(anomaly.signal_scores[name], 6) for name in SIGNALS)))
        started = time.perf_counter()
        features = behaviour_features(window)
        features_ms = (time.perf_counter() - started) * 1000.0
        if self._debug:
            self._write(FeatureDebug(t_s, round(features_ms, 4), t_s - WINDOW_S + 1,
                                     tuple(float(f) for f in features), int(np.sum(~np.isnan(window).all(axis=1)))))
        started = time.perf_counter()
        label, probabilities = self._models.behaviour(features)
        behaviour_ms = (time.perf_counter() - started) * 1000.0
        self._write(BehaviourResult(t_s, round(behaviour_ms, 4), self._refs["behaviour"], int(label), STYLES[label],
                                    tuple(float(p) for p in probabilities)))

    def _status(self) -> AppStatus:
        link = {name: int(value) for name, value in vars(self.link_stats).items() if isinstance(value, int)}
        return AppStatus(self._last_t, self.stats.samples_received, self.stats.windows_scored, link)

    def _write(self, event) -> None:
        self._seq += 1
        event = replace(event, seq=self._seq)
        if self._log_payload is not None:
            self._log_payload(event_to_json(event))
        else:
            self._log(format_event_line(event, pid=self._pid, tid=self._pid + 29))
        self.stats.lines_written += 1
