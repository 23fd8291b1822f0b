"""The Android DTG app, simulated at its interfaces: UART in (pyserial), EdgeAI logcat lines out.

What it does, as the real app must (docs/events.md is the contract):
- reads the STM32's UART through pyserial and decodes it with the rig's link codec;
- rebuilds 1 Hz samples of the ten signals: with dtg-link-v2 from the firmware's packed sample records
  (stamped with scenario time), with raw-can-v1 from the OBD-II responses themselves, one sample per poll cycle
  (a cycle starts with the request for the first PID; raw-can-v1 has no timestamps, so samples are numbered);
- slides 60-sample windows (stride configurable, default 1 s); a second with no sample is a row of NaN;
- runs the three models of the models manifest with onnxruntime (1 thread, as on the phone) and the rule-based
  event detector, and writes one logcat line per result with tag EdgeAI;
- logs a status heartbeat (samples received, windows scored, link decoder counters) every `status_every_s`;
- with `AppOptions.debug_features`, logs the 18 behaviour features and their window (`features` lines) for every
  `debug_every`-th window, as a test build of the real app does for the contract suite (docs/contract.md).

Broken variants (`AppOptions.variant`, `BROKEN_VARIANTS`) reproduce the reference system's app failures, so the
project's own tests can prove that each contract check (`harness.judge.contract`) fails for the right reason:

- ``stub-engine``: no ONNX model runs; hand-written heuristics give plausible outputs that follow the input;
- ``zipmap-misread``: the behaviour label is read as a ZipMap's first key, always class 0 (probabilities intact);
- ``crc-ccitt``: the link decoder checks CRC-16/CCITT-FALSE where raw-can-v1 has CRC-16/MODBUS (raw-can-v1 only);
- ``population-std``: the behaviour features use population standard deviations (ddof=0);
- ``feature-order``: the fuel and anomaly models get their window with vehicle_speed and engine_rpm swapped.

What it does not model: Android's scheduling and power management, the phone's own GNSS (with raw-can-v1
the position, brake and acceleration are not available), the app's UI, and logcat's ring buffer limits.
"""
from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, replace

import numpy as np

from firmware_sim.latest_values import LatestValues
from firmware_sim.phone.rules import RuleDetector, RuleLimits
from firmware_sim.uart import UartCapture
from harness.inference.features import CONTEXT_S, WINDOW_S, behaviour_features
from harness.inference.models import ModelSet
from harness.wire.behaviour import STYLES
from harness.wire.dbc import get_profile
from harness.wire.events import (
    AnomalyResult,
    AppStatus,
    BehaviourResult,
    FeatureDebug,
    FuelResult,
    ModelRef,
    RuleEvent,
    event_to_json,
    format_event_line,
)
from harness.wire.link import (
    CanFrame,
    DecoderStats,
    RawCanV1Decoder,
    Received,
    SampleRecord,
    crc16_ccitt_false,
    get_codec,
)
from harness.wire.signals import SIGNALS

N_SIGNALS = len(SIGNALS)
_OBD_REQUEST_ID = 0x7DF

#: The reference system's app failures the simulated app can reproduce (see the module docstring).
BROKEN_VARIANTS: tuple[str, ...] = ("stub-engine", "zipmap-misread", "crc-ccitt", "population-std", "feature-order")
#: The column order the ``feature-order`` variant builds its model inputs in: the first two signals swapped.
SWAPPED_ORDER: tuple[int, ...] = (1, 0) + tuple(range(2, N_SIGNALS))


@dataclass(frozen=True)
class AppOptions:
    """How a (simulated) app is started beyond the rig's settings: its debug lines and a broken variant.

    `debug_features` logs a `features` line for every `debug_every`-th window (what a test build of the real app
    logs for the contract suite); `variant` is None (the correct app) or one of `BROKEN_VARIANTS`.
    """

    debug_features: bool = False
    debug_every: int = 1
    variant: str | None = None

    def __post_init__(self) -> None:
        if self.variant is not None and self.variant not in BROKEN_VARIANTS:
            raise ValueError(f"unknown app variant {self.variant!r}; expected one of: {', '.join(BROKEN_VARIANTS)}")
        if isinstance(self.debug_every, bool) or not isinstance(self.debug_every, int) or self.debug_every < 1:
            raise ValueError(f"debug_every must be an int >= 1, got {self.debug_every!r}")


class _CcittRawCanV1Decoder(RawCanV1Decoder):
    """The ``crc-ccitt`` variant's decoder: raw-can-v1 framing, but the reference app's CRC-16/CCITT-FALSE."""

    def _examine(self, buf, pos, end):
        if end - pos < 15:
            return None
        if buf[pos + 14] != 0x55:
            return (0, None)
        if crc16_ccitt_false(memoryview(buf)[pos + 1:pos + 12]) != (buf[pos + 12] << 8) | buf[pos + 13]:
            self.stats.crc_errors += 1
            return (0, None)
        frame = CanFrame((buf[pos + 1] << 8) | buf[pos + 2], bytes(buf[pos + 4:pos + 4 + min(buf[pos + 3], 8)]))
        return (15, Received(frame))


def _decoder(codec: str, variant: str | None):
    if variant == "crc-ccitt":
        if codec != "raw-can-v1":
            raise ValueError(f"the crc-ccitt variant reproduces the reference app's CRC-16 mismatch on raw-can-v1; "
                             f"this rig's codec is {codec} (use a raw-can-v1 rig)")
        return _CcittRawCanV1Decoder()
    return get_codec(codec).decoder()


def _stub_outputs(window: np.ndarray, context: np.ndarray, threshold: float) -> tuple[float, float, tuple, np.ndarray]:
    """The ``stub-engine`` variant: outputs a stub engine makes up from the window, without any model."""
    with np.errstate(all="ignore"):
        means = np.nan_to_num(np.nanmean(window, axis=0))
        spread = np.nan_to_num(np.nanstd(context, axis=0))
    fuel = 0.8 + means[1] / 1000.0 * 1.6 + means[2] * 0.08
    level = np.abs(np.nan_to_num(np.nanmean(context, axis=0)))
    signal_scores = tuple(round(float(v), 6) for v in spread / (level + 1.0))
    score = float(sum(signal_scores)) * threshold
    aggressive = min(max((means[2] - 15.0) / 20.0, 0.0), 1.0)
    eco = min(max((30.0 - means[0]) / 30.0, 0.0), 1.0) * (1.0 - aggressive)
    probabilities = np.array([max(1.0 - aggressive - eco, 0.0), eco, aggressive], dtype=np.float32)
    return float(fuel), score, signal_scores, probabilities / max(float(probabilities.sum()), 1e-6)


@dataclass
class AppStats:
    samples_received: int = 0
    windows_scored: int = 0
    lines_written: int = 0
    rule_events: int = 0
    sample_gaps: int = 0  # times a sample came more than a second after the one before (a link or firmware outage)
    seconds_without_sample: int = 0  # the whole seconds those gaps left without a sample


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
        # A ring of the last context_s seconds: slot second % context_s holds that second's row, `_held` which second
        # it is (a slot whose second is not the one asked for is a second with no sample: NaN).
        self._ring = np.full((self.context_s, N_SIGNALS), np.nan, dtype=np.float32)
        self._held = np.full(self.context_s, np.iinfo(np.int64).min, dtype=np.int64)
        self._offsets = np.arange(self.context_s, dtype=np.int64)
        self._first: int | None = None

    def add(self, t_s: float, row: np.ndarray) -> np.ndarray | None:
        second = int(round(t_s))
        if self._first is None:
            self._first = second
        slot = second % self.context_s
        self._ring[slot] = row
        self._held[slot] = second
        since = second - self._first + 1
        if since < self.window_s or (since - self.window_s) % self.stride_s:
            return None
        # The ring read from the slot after this second's, oldest first: the rows of seconds second-context_s+1 ..
        # second, as two slices (a copy, as indexing by slot gives, at a fraction of its cost).
        start = (second + 1) % self.context_s
        context = np.concatenate((self._ring[start:], self._ring[:start]))
        held = np.concatenate((self._held[start:], self._held[:start]))
        context[held != self._offsets + (second - self.context_s + 1)] = np.nan
        return context


class AppSim:
    """The simulated app: reads `port` (a pyserial Serial) in a thread and writes EdgeAI lines to `log`.

    `log` receives each logcat line (no newline); or, with `log_payload`, only each line's JSON payload (what a
    real app hands to `android.util.Log`, which adds the prefix: `firmware_sim.phone.dtg_package` runs it that way).
    Start it with `start()` (or as a context manager); `stop()` reads what is left, scores it and logs a last
    status line. A stopped app cannot be restarted.
    """

    def __init__(self, port, models: ModelSet, *, log: Callable[[str], None], codec: str = "dtg-link-v2",
                 profile: str = "obd2", limits: RuleLimits = RuleLimits(), stride_s: int = 1,
                 debug_features: bool = False, status_every_s: float = 60.0, pid: int = 4321,
                 log_payload: Callable[[str], None] | None = None, options: AppOptions | None = None):
        options = options or AppOptions(debug_features=debug_features)
        self.options = options
        self.codec = codec
        self._variant = options.variant
        self._models = models
        manifest = models.manifest
        self._refs = {name: ModelRef(name, entry.sha256[:16], manifest.version)
                      for name, entry in manifest.models.items()}
        self._log = log
        # On a (simulated) phone the system's logger adds the logcat prefix: the app hands it the payload only.
        self._log_payload = log_payload
        self._capture = UartCapture(port, _decoder(codec, options.variant), keep_records=False,
                                    on_received=self._on_records)
        self._samples = SampleAssembler(codec, profile)
        self._windows = WindowBuffer(WINDOW_S, stride_s, CONTEXT_S)
        self._rules = RuleDetector(limits)
        self._debug = options.debug_features or debug_features
        self._debug_every = options.debug_every
        self._status_every_s = status_every_s
        self._next_status_s = status_every_s
        self._pid = pid
        self._seq = 0
        self._last_t: float | None = None
        self._killed = False
        self.stats = AppStats()
        self.features_cpu_s = 0.0  # thread CPU seconds spent on the behaviour features (`dtg-hil bench sim`)

    @property
    def link_stats(self) -> DecoderStats:
        """The UART decoder's counters (frames decoded, CRC errors, frames lost by sequence number, ...)."""
        return self._capture.decoder_stats

    @property
    def decode_cpu_s(self) -> float:
        return self._capture.decode_cpu_s

    @property
    def read_cpu_s(self) -> float:
        return self._capture.read_cpu_s

    @property
    def bytes_read(self) -> int:
        return self._capture.stats.bytes_read

    @property
    def bytes_handled(self) -> int:
        """Bytes read whose samples the app has finished with (scored, logged): what the end of a run waits for."""
        return self._capture.stats.bytes_handled

    @property
    def pid(self) -> int:
        """The process id the app's logcat lines carry."""
        return self._pid

    @property
    def running(self) -> bool:
        """True while the reading thread runs (False before start, after stop, or when it died)."""
        return self._capture.running

    @property
    def error(self) -> BaseException | None:
        return self._capture.error

    def start(self) -> AppSim:
        self._capture.start()
        return self

    def start_stepped(self) -> AppSim:
        """Start without a reading thread: on virtual time the scheduler hands it its bytes (`read_owed`)."""
        self._capture.start_stepped()
        return self

    def read_owed(self, n_bytes: int) -> None:
        """On virtual time: read, decode and score the `n_bytes` the firmware's writer has put in the pty."""
        self._capture.read_owed(n_bytes)

    def stop(self, timeout_s: float = 5.0) -> None:
        """Read what is left on the port (the port is drained: `UartCapture`), score it, log a last status line and
        stop; `timeout_s` bounds the wait for the reading thread."""
        if self._capture.running:
            self._capture.stop(timeout_s)
            self._write(self._status())

    def kill(self, timeout_s: float = 5.0) -> None:
        """The process dies (a crash, the low-memory killer): it reads, scores and logs nothing more, and writes
        no last status line. `running` is then False; `stop()` does nothing."""
        self._killed = True
        if self._capture.running:
            self._capture.stop(timeout_s)

    def __enter__(self) -> AppSim:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def _on_records(self, received: list[Received]) -> None:
        if self._killed:
            return
        for item in received:
            for t_s, row in self._samples.feed(item.record):
                self._on_sample(t_s, row)

    def _on_sample(self, t_s: float, row: np.ndarray) -> None:
        self.stats.samples_received += 1
        if self._last_t is not None and t_s - self._last_t > 1.5:
            self.stats.sample_gaps += 1
            self.stats.seconds_without_sample += round(t_s - self._last_t) - 1
        self._last_t = t_s
        for hit in self._rules.feed(t_s, row.tolist()):
            self.stats.rule_events += 1
            self._write(RuleEvent(t_s, hit.type, float(hit.value), float(hit.limit), hit.signal))
        context = self._windows.add(t_s, row)
        if context is not None:
            self._score(t_s, context)
        if t_s >= self._next_status_s:
            self._next_status_s = (math.floor(t_s / self._status_every_s) + 1) * self._status_every_s
            self._write(self._status())

    def _score(self, t_s: float, context: np.ndarray) -> None:
        self.stats.windows_scored += 1
        window = context[-WINDOW_S:]
        variant = self._variant
        # The models' inputs: the feature-order variant builds them in its own (wrong) column order.
        model_context = context[:, SWAPPED_ORDER] if variant == "feature-order" else context
        model_window = model_context[-WINDOW_S:]
        stub = _stub_outputs(window, context, self._models.threshold) if variant == "stub-engine" else None
        # Each call's figure is this thread's CPU time (onnxruntime runs 1 thread, the caller's): the host's own cost
        # of the call, not wall time that a busy shared machine would stretch. It says nothing of a phone's budget.
        started = time.thread_time()
        fuel = stub[0] if stub else self._models.fuel(model_window)
        fuel_ms = (time.thread_time() - started) * 1000.0
        self._write(FuelResult(t_s, round(fuel_ms, 4), self._refs["fuel"], float(fuel)))
        started = time.thread_time()
        if stub:
            score, signal_scores = stub[1], stub[2]
            alarm = score > self._models.threshold
        else:
            anomaly = self._models.anomaly(model_context)
            score, alarm = anomaly.score, anomaly.alarm
            signal_scores = tuple(round(anomaly.signal_scores[name], 6) for name in SIGNALS)
        anomaly_ms = (time.thread_time() - started) * 1000.0
        self._write(AnomalyResult(t_s, round(anomaly_ms, 4), self._refs["anomaly"], score,
                                  self._models.threshold, alarm, signal_scores))
        started = time.thread_time()
        features = behaviour_features(window, ddof=0 if variant == "population-std" else 1)
        features_ms = (time.thread_time() - started) * 1000.0
        self.features_cpu_s += features_ms / 1000.0
        if self._debug and (self.stats.windows_scored - 1) % self._debug_every == 0:
            self._write(FeatureDebug(t_s, round(features_ms, 4), t_s - WINDOW_S + 1,
                                     tuple(float(f) for f in features), int(np.sum(~np.isnan(window).all(axis=1)))))
        started = time.thread_time()
        if stub:
            probabilities = stub[3]
            label = int(np.argmax(probabilities))
        else:
            label, probabilities = self._models.behaviour(features)
        behaviour_ms = (time.thread_time() - started) * 1000.0
        if variant == "zipmap-misread":
            label = 0  # the first key of the ZipMap's {class: probability} map, read as the class
        self._write(BehaviourResult(t_s, round(behaviour_ms, 4), self._refs["behaviour"], int(label), STYLES[label],
                                    tuple(float(p) for p in probabilities)))

    def _status(self) -> AppStatus:
        link = {name: int(value) for name, value in vars(self.link_stats).items() if isinstance(value, int)}
        return AppStatus(self._last_t, self.stats.samples_received, self.stats.windows_scored, link)

    def _write(self, event) -> None:
        if self._killed:
            return  # a dead process logs nothing
        self._seq += 1
        event = replace(event, seq=self._seq)
        # Not read back through the harness's parser: the app writes what it computed, the harness judges it.
        if self._log_payload is not None:
            self._log_payload(event_to_json(event, validate=False))
        else:
            self._log(format_event_line(event, pid=self._pid, tid=self._pid + 29, validate=False))
        self.stats.lines_written += 1
