"""The rest-bus: plays a `Trace` on a python-can bus as the vehicle's ECUs would, on the scenario clock.

Profile `obd2`: an OBD-II engine ECU. It answers service 01 single-PID requests received on the
functional ID 0x7DF or its physical ID 0x7E0 with a single frame on 0x7E8, encoded through
`harness/wire/dbc/obd2.dbc` from the trace reading at the current scenario time. Like a real ECU it stays
silent for a PID it does not support, and (our choice for a sensor dropout) for a NaN reading.
It answers the "PIDs supported" PIDs 0x00, 0x20, 0x40 consistently with what it answers.

Profile `j1939`: the engine, brake, instrument-cluster and navigation ECUs broadcasting their
parameter groups at the periods of `harness/wire/dbc/j1939.dbc` (`GenMsgCycleTime`). A NaN reading goes
on the bus as J1939 "not available" (all bits 1); bytes the DBC does not describe are 0xFF too.

The pure functions (`obd_response`, `obd_request_pid`, `j1939_frames`, `BroadcastSchedule`) hold
all the protocol; `RestBus` only moves their frames between the clock, the trace and the bus in a
background thread. Frames are stamped with their scenario time in `can.Message.timestamp`; a python-can
virtual bus created with `preserve_timestamps=True` passes that stamp on, other interfaces replace it.

`answer_at_request_stamp` (simulated rigs): answer with the reading at the scenario time stamped on the request
(a virtual bus with `preserve_timestamps=True` carries it) instead of the time the answer is computed, so results
do not depend on thread scheduling. The OBD-II responder then answers every request stamped before `end_s`, until
`stop()`, even after the clock has passed `end_s` (a unit that fell behind still polls those ticks).

On virtual time (the simulated rig: `start_stepped()`, then `step(now_s)` / `next_due_s()` from
`harness.run.scheduler`) it answers every request on the bus at the instant it was sent and broadcasts each J1939 frame
at its own due time; nothing is ever skipped, and the batching below does not apply.

Bus faults (`harness.world.bus_faults`) are not the rest-bus's business: run.py puts a `BusFaultInjector` between the
rest-bus and the wire, and the rest-bus sends through it as through any bus (its `frames_sent` counts what it
handed over, before the faults).

What it does not model: bus load, arbitration or bit timing (the virtual bus has none either);
ECU response latency (answers go out as fast as Python gets there); OBD negative responses, multi-PID
requests, ISO-TP multi-frame, J1939 requests/transport protocol/address claim/DM1; phase offsets
between PGNs (all start together); and an engine-speed-dependent EEC1 rate (fixed 20 ms).
At a high time scale J1939 frames go out in batches, one batch per wake-up (at most every
`min_wall_sleep_s` of wall time), each frame with its own scheduled scenario time; if the sender falls
more than `max_lag_wall_s` of wall time behind (the host was busy) it skips that backlog and counts it
in `RestBusStats.frames_skipped` rather than bursting it. At `stop()` it sends what is already due (within that lag)
before it returns.
A frame that goes out a whole period or more after it was due, beyond one batch (`min_wall_sleep_s` at the
clock's scale), is counted in `RestBusStats.frames_late`. Skipped and late frames are the harness's own shortfall
(the rig fell behind), never the unit's: the run's accounting lists them as rig-side loss (`harness.run.chain`).
The OBD-II responder cannot time its own answers against the unit's timeout (a python-can interface other than
the virtual bus stamps a frame when the harness reads it, not when it was on the wire): the unit's count of
requests unanswered in time, less the requests it declined on purpose (`requests_ignored`) and the answers bus
faults took, is the harness's shortfall there.
"""
from __future__ import annotations

import math
import threading
from collections.abc import Mapping
from dataclasses import dataclass, replace
from functools import cache

import can
import cantools

from harness.core.clock import ScenarioClock, VirtualClock
from harness.core.worker import Worker, WorkerError
from harness.wire.dbc import get_profile, load_database
from harness.wire.signals import Trace
from harness.wire.virtual_bus import Frame, recv_now

OBD_FUNCTIONAL_REQUEST_ID = 0x7DF
OBD_PHYSICAL_REQUEST_ID = 0x7E0
OBD_RESPONSE_ID = 0x7E8
OBD_REQUEST_IDS = frozenset({OBD_FUNCTIONAL_REQUEST_ID, OBD_PHYSICAL_REQUEST_ID})
OBD_SERVICE_CURRENT_DATA = 0x01
OBD_POSITIVE_RESPONSE = OBD_SERVICE_CURRENT_DATA + 0x40
#: Filler after the last data byte of a response; the same filler the unit's requests use.
OBD_PAD_BYTE = 0xAA
#: PIDs 0x00, 0x20, 0x40, ... each report which of the next 0x20 PIDs are supported.
OBD_SUPPORT_PID_STEP = 0x20

_OBD_RESPONSE_MESSAGE = "OBD2_RESPONSE"


# ---------------------------------------------------------------------------------------------- OBD-II


def _reading_value(reading: Mapping[str, float], channel: str) -> float:
    """The reading of `channel`, NaN when the trace has no such channel (no reading either way)."""
    return float(reading.get(channel, math.nan))


def _clamp(value: float, signal: cantools.database.can.Signal) -> float:
    # A real ECU saturates at the ends of its encoding instead of wrapping around.
    return min(max(value, signal.minimum), signal.maximum)


@cache
def _obd_data_pids() -> dict[int, str]:
    """PID -> plant channel for every data PID the obd2 profile answers."""
    return {b.pid: b.channel for b in get_profile("obd2").signals if b.pid is not None}


@cache
def obd_supported_pids() -> frozenset[int]:
    """Every service 01 PID the ECU answers: its data PIDs and the "PIDs supported" PIDs they need."""
    data_pids = _obd_data_pids()
    support_pids = {
        base for base in range(0, 0x100, OBD_SUPPORT_PID_STEP) if base == 0 or any(pid > base for pid in data_pids)
    }
    return frozenset(data_pids) | frozenset(support_pids)


def obd_supported_mask(base_pid: int) -> int:
    """The 32-bit answer to "PIDs supported" PID `base_pid`: bit 31 is PID base+1, bit 0 is PID base+0x20.

    >>> hex(obd_supported_mask(0x00))
    '0x181b8001'
    """
    if base_pid % OBD_SUPPORT_PID_STEP:
        raise ValueError(f"PID 0x{base_pid:02X} is not a 'PIDs supported' PID (0x00, 0x20, 0x40, ...)")
    mask = 0
    for pid in obd_supported_pids():
        if base_pid < pid <= base_pid + OBD_SUPPORT_PID_STEP:
            mask |= 1 << (base_pid + OBD_SUPPORT_PID_STEP - pid)
    return mask


@cache
def _obd_response_signals() -> dict[int, cantools.database.can.Signal]:
    """PID -> the DBC signal multiplexed on it in the response message."""
    message = load_database("obd2").get_message_by_name(_OBD_RESPONSE_MESSAGE)
    return {pid: signal for signal in message.signals for pid in (signal.multiplexer_ids or ())}


def obd_request_pid(data: bytes | bytearray) -> int | None:
    """The PID of a single-frame, single-PID service 01 request `[0x02, 0x01, PID, ...]`, else None."""
    if len(data) < 3 or data[0] != 2 or data[1] != OBD_SERVICE_CURRENT_DATA:
        return None
    return int(data[2])


def obd_response(pid: int, reading: Mapping[str, float]) -> bytes | None:
    """The 8 data bytes the ECU answers service 01 `pid` with, given the trace `reading`; None = no answer.

    No answer for a PID the ECU does not support, nor for a NaN (or absent) reading.

    >>> obd_response(0x0C, {"engine_rpm": 1726.0}).hex(" ")
    '04 41 0c 1a f8 aa aa aa'
    """
    if pid not in obd_supported_pids():
        return None
    signal = _obd_response_signals()[pid]
    if pid % OBD_SUPPORT_PID_STEP == 0:
        value: float = obd_supported_mask(pid)
    else:
        value = _reading_value(reading, _obd_data_pids()[pid])
        if not math.isfinite(value):
            return None
        value = _clamp(value, signal)
    # The bytes depend on the value only through its raw integer (cantools' own conversion): encode each (PID, raw)
    # once. A few thousand pairs cover a drive; the cache is emptied should it ever grow past a bound.
    key = (pid, signal.conversion.numeric_scaled_to_raw(value))
    encoded = _RESPONSES.get(key)
    if encoded is None:
        if len(_RESPONSES) >= _MAX_CACHED_RESPONSES:
            _RESPONSES.clear()
        encoded = _RESPONSES[key] = _encode_response(pid, signal, value, key[1])
    return encoded


#: (PID, raw value) -> the response's 8 bytes (`obd_response`).
_RESPONSES: dict[tuple[int, int | float], bytes] = {}
_MAX_CACHED_RESPONSES = 65536


def _encode_response(pid: int, signal: cantools.database.can.Signal, value: float, raw: int | float) -> bytes:
    """The response's 8 bytes for `value` (raw integer `raw`). The DBC's fields are whole big-endian unsigned bytes
    right after the PID byte: those are packed directly, the bytes cantools writes (tests/test_restbus.py compares
    the two); any other layout goes through cantools."""
    data_length = signal.length // 8
    pci_length = 2 + data_length  # service byte + PID byte + data
    if (type(raw) is int and signal.byte_order == "big_endian" and not signal.is_signed and not signal.is_float
            and signal.start == 31 and signal.length % 8 == 0 and 0 <= raw < 1 << signal.length):
        return bytes((pci_length, OBD_POSITIVE_RESPONSE, pid)) + raw.to_bytes(data_length, "big") \
            + bytes([OBD_PAD_BYTE]) * (5 - data_length)
    return _encode_response_dbc(pid, signal, value)


def _encode_response_dbc(pid: int, signal: cantools.database.can.Signal, value: float) -> bytes:
    """`_encode_response` through cantools, for any layout."""
    data_length = signal.length // 8
    pci_length = 2 + data_length  # service byte + PID byte + data
    message = load_database("obd2").get_message_by_name(_OBD_RESPONSE_MESSAGE)
    encoded = bytearray(
        message.encode({"Length": pci_length, "Service": OBD_POSITIVE_RESPONSE, "PID": pid, signal.name: value})
    )
    encoded[1 + pci_length :] = bytes([OBD_PAD_BYTE]) * (len(encoded) - 1 - pci_length)
    return bytes(encoded)


# ----------------------------------------------------------------------------------------------- J1939


@cache
def _j1939_channels() -> dict[str, list[tuple[cantools.database.can.Signal, str, float]]]:
    """Message name -> [(DBC signal, plant channel, bus units per plant unit)]."""
    database = load_database("j1939")
    out: dict[str, list[tuple[cantools.database.can.Signal, str, float]]] = {m.name: [] for m in database.messages}
    for binding in get_profile("j1939").signals:
        signal = database.get_message_by_name(binding.message).get_signal_by_name(binding.signal)
        out[binding.message].append((signal, binding.channel, binding.bus_per_plant_unit))
    return out


def j1939_periods_s() -> dict[str, float]:
    """Broadcast period (s) of every J1939 message, from the DBC's GenMsgCycleTime."""
    return {m.name: m.cycle_time / 1000.0 for m in load_database("j1939").messages}


def j1939_not_available(signal: cantools.database.can.Signal) -> int:
    """The raw "not available" value of a J1939 signal: all bits 1."""
    return (1 << signal.length) - 1


def j1939_frame_data(message_name: str, reading: Mapping[str, float]) -> bytes:
    """The 8 data bytes of J1939 message `message_name` for `reading` (NaN -> not available)."""
    message = load_database("j1939").get_message_by_name(message_name)
    raw: dict[str, int] = {}
    for signal, channel, bus_per_plant_unit in _j1939_channels()[message_name]:
        value = _reading_value(reading, channel) * bus_per_plant_unit
        if math.isfinite(value):
            raw[signal.name] = int(signal.conversion.numeric_scaled_to_raw(_clamp(value, signal)))
        else:
            raw[signal.name] = j1939_not_available(signal)
    # padding=True: bytes the DBC does not describe go out as 0xFF, "not available" in J1939.
    return bytes(message.encode(raw, scaling=False, padding=True, strict=False))


def j1939_frame(message_name: str, reading: Mapping[str, float], t_s: float = 0.0) -> can.Message:
    """J1939 message `message_name` as a python-can frame, stamped with scenario time `t_s`."""
    message = load_database("j1939").get_message_by_name(message_name)
    return can.Message(
        arbitration_id=message.frame_id,
        is_extended_id=True,
        data=j1939_frame_data(message_name, reading),
        timestamp=t_s,
    )


def j1939_frames(t_s: float, reading: Mapping[str, float]) -> list[can.Message]:
    """One frame of every J1939 message the rest-bus broadcasts, for `reading` at scenario time `t_s`."""
    return [j1939_frame(message.name, reading, t_s) for message in load_database("j1939").messages]


class BroadcastSchedule:
    """When each periodic message is due, in scenario time. Pure: no clock, no bus, no threads.

    Every message is first due at `start_s` and then every period after it (computed from the count,
    so rounding never drifts). `due(now_s)` returns the (due time, name) of every transmission due up
    to `now_s`, in time order, and moves the schedule on. A message more than `max_lag_s` behind
    `now_s` skips its older transmissions; `skipped` counts them.

    >>> schedule = BroadcastSchedule({"fast": 0.1, "slow": 1.0})
    >>> [name for _, name in schedule.due(0.25)]
    ['fast', 'slow', 'fast', 'fast']
    >>> round(schedule.next_due_s(), 9)
    0.3
    """

    def __init__(self, periods_s: Mapping[str, float], start_s: float = 0.0, max_lag_s: float = math.inf) -> None:
        bad = {name: period for name, period in periods_s.items() if not period > 0.0}
        if bad:
            raise ValueError(f"broadcast periods must be > 0 s, got {bad}")
        self._periods_s = dict(periods_s)
        self._start_s = start_s
        self._max_lag_s = max_lag_s
        self._sent = {name: 0 for name in periods_s}
        self.skipped = 0

    def _due_time(self, name: str, count: int) -> float:
        return self._start_s + count * self._periods_s[name]

    def due(self, now_s: float) -> list[tuple[float, str]]:
        out: list[tuple[float, str]] = []
        for name, period in self._periods_s.items():
            count = self._sent[name]
            oldest_allowed_s = now_s - self._max_lag_s
            if self._due_time(name, count) < oldest_allowed_s:
                caught_up = math.ceil((oldest_allowed_s - self._start_s) / period - 1e-9)
                self.skipped += caught_up - count
                count = caught_up
            while self._due_time(name, count) <= now_s + 1e-9:
                out.append((self._due_time(name, count), name))
                count += 1
            self._sent[name] = count
        out.sort()
        return out

    def next_due_s(self) -> float:
        return min(self._due_time(name, count) for name, count in self._sent.items())


def frame_is_late(due_s: float, sent_s: float, period_s: float, batch_s: float = 0.0) -> bool:
    """Whether a periodic frame due at `due_s` and sent at `sent_s` went out late: a whole `period_s` or more
    after it was due, beyond the `batch_s` a batching sender may hold it back by (all scenario seconds).

    >>> frame_is_late(10.0, 10.03, period_s=0.1), frame_is_late(10.0, 10.1, period_s=0.1)
    (False, True)
    >>> frame_is_late(10.0, 10.1, period_s=0.1, batch_s=0.04)
    False
    """
    return sent_s - due_s >= period_s + batch_s - 1e-9


# --------------------------------------------------------------------------------------------- threads


@dataclass
class RestBusStats:
    """What the rest-bus did.

    `requests_ignored` counts OBD-II requests addressed to this ECU that got no answer (unsupported
    PID or service, NaN reading); `frames_skipped` counts J1939 transmissions dropped because the
    sender fell behind; `frames_late` J1939 frames sent a whole period or more after they were due, beyond one
    batch (sent, and counted in `frames_sent` too); `send_errors` counts sends the interface refused.
    """

    frames_sent: int = 0
    requests_answered: int = 0
    requests_ignored: int = 0
    frames_skipped: int = 0
    frames_late: int = 0
    send_errors: int = 0


class RestBusError(WorkerError):
    """The rest-bus was misused (started twice, used after stop) or its worker thread failed."""


class RestBus(Worker):
    """Plays `trace` on `bus` as profile `profile`'s ECUs, in a background thread, on `clock`.

    Runs from `start()` until `stop()`, or until scenario time reaches `end_s` (default: the end of the
    trace), after which `wait()` returns (OBD-II with `answer_at_request_stamp`: only at `stop()`). A stopped
    rest-bus cannot be restarted. The caller owns `bus`
    (the rest-bus never shuts it down) and must not receive from it while the rest-bus runs.

    Tuning, all in wall seconds: `min_wall_sleep_s` is the shortest pause between two J1939 batches,
    `max_lag_wall_s` how far behind the J1939 sender may fall before it skips its backlog, and
    `recv_timeout_wall_s` how often the OBD-II responder looks up from the bus to check for stop/end.

    Use as a context manager::

        with RestBus(bus, trace, "obd2", clock) as rest_bus:
            ...
        print(rest_bus.stats)
    """

    #: Consecutive failed sends after which the worker gives up (a closed or bus-off interface).
    MAX_CONSECUTIVE_SEND_ERRORS = 50
    error_type = RestBusError

    def __init__(
        self,
        bus: can.BusABC,
        trace: Trace,
        profile: str,
        clock: ScenarioClock,
        *,
        end_s: float | None = None,
        min_wall_sleep_s: float = 0.002,
        max_lag_wall_s: float = 0.25,
        recv_timeout_wall_s: float = 0.01,
        answer_at_request_stamp: bool = False,
    ) -> None:
        self._profile = get_profile(profile)
        super().__init__(f"restbus-{self._profile.name}")
        self._answer_at_request_stamp = answer_at_request_stamp
        self._bus = bus
        self._trace = trace
        self._clock = clock
        self._end_s = trace.duration_s if end_s is None else end_s
        self._min_wall_sleep_s = min_wall_sleep_s
        # On virtual time nothing falls behind: no lag to skip (time_scale is math.inf or a pacing, not a rate).
        self._max_lag_s = max_lag_wall_s * clock.time_scale if not isinstance(clock, VirtualClock) else math.inf
        self._recv_timeout_wall_s = recv_timeout_wall_s
        self._stats = RestBusStats()
        self._stats_lock = threading.Lock()
        self._consecutive_send_errors = 0
        self._j1939 = None  # on virtual time: (schedule, send_due), from the first step
        self._last_reading: tuple[float, dict[str, float]] | None = None  # (t_s, the trace's reading at t_s)

    # -- public API ---------------------------------------------------------------------------------

    @property
    def profile(self) -> str:
        return self._profile.name

    @property
    def stats(self) -> RestBusStats:
        """A snapshot of the counters (safe to read while running)."""
        with self._stats_lock:
            return replace(self._stats)

    def __repr__(self) -> str:
        return f"<RestBus {self._describe()} state={self._state} {self.stats}>"

    # -- worker -------------------------------------------------------------------------------------

    def _describe(self) -> str:
        return f"rest-bus '{self._profile.name}' on {getattr(self._bus, 'channel_info', self._bus)!s}"

    def _count(self, **increments: int) -> None:
        with self._stats_lock:
            for name, amount in increments.items():
                setattr(self._stats, name, getattr(self._stats, name) + amount)

    def _work(self) -> None:
        if self._profile.name == "obd2":
            self._run_obd2()
        else:
            self._run_j1939()

    def _send(self, message: can.Message) -> None:
        try:
            self._bus.send(message)
        except can.CanError:
            self._count(send_errors=1)
            self._consecutive_send_errors += 1
            if self._consecutive_send_errors >= self.MAX_CONSECUTIVE_SEND_ERRORS:
                raise
        else:
            self._consecutive_send_errors = 0
            with self._stats_lock:  # the counter of every frame: not through _count's keyword loop
                self._stats.frames_sent += 1

    def _answer(self, request: can.Message) -> bool:
        """Answer one frame off the bus if it is an OBD-II request for this ECU; False for other traffic."""
        if request.is_extended_id or request.arbitration_id not in OBD_REQUEST_IDS:
            return False  # other traffic on the bus is not for this ECU
        by_stamp = self._answer_at_request_stamp
        # With `answer_at_request_stamp` the ECU reads its sensor at the scenario time stamped on the request
        # (a simulated unit stamps its poll tick), so what it answers does not depend on how fast the host
        # threads ran: a run gives the same values at 1x and at 100x.
        t_s = request.timestamp if by_stamp else self._clock.now_s()
        pid = obd_request_pid(request.data)
        data = None if pid is None or (by_stamp and t_s >= self._end_s) else obd_response(pid, self._reading_at(t_s))
        if data is None:
            self._count(requests_ignored=1)
            return True
        self._send(Frame(arbitration_id=OBD_RESPONSE_ID, is_extended_id=False, data=data, timestamp=t_s))
        with self._stats_lock:
            self._stats.requests_answered += 1
        return True

    def _reading_at(self, t_s: float) -> dict[str, float]:
        # A poll cycle's requests carry the same stamp: read the trace once for all of them (it never changes).
        if self._last_reading is None or self._last_reading[0] != t_s:
            self._last_reading = (t_s, self._trace.reading_at(t_s))
        return self._last_reading[1]

    def _run_obd2(self) -> None:
        # With `answer_at_request_stamp` a request carries the poll time it stands for: a simulated unit that fell
        # behind the clock still polls ticks before end_s after the clock has passed it, so the ECU answers until
        # stop() (and ignores requests stamped at or after end_s) instead of going quiet on the clock.
        by_stamp = self._answer_at_request_stamp
        while not self._stop_requested.is_set() and (by_stamp or self._clock.now_s() < self._end_s):
            request = self._bus.recv(timeout=self._recv_timeout_wall_s)
            if request is not None:
                self._answer(request)

    def _j1939_sender(self, start_s: float):
        """The J1939 broadcaster's schedule from `start_s`, and its `send_due(now_s)`: sends every frame due by then."""
        ids = {m.name: m.frame_id for m in load_database("j1939").messages}
        periods_s = j1939_periods_s()
        schedule = BroadcastSchedule(periods_s, start_s=start_s, max_lag_s=self._max_lag_s)
        # One batch may hold a frame back by a wake-up; later than a period beyond that, it is late.
        batch_s = self._clock.scenario_span_s(self._min_wall_sleep_s)
        # The trace changes every 1/PLANT_RATE_HZ; re-encode a message only when its sample changes.
        cache: dict[str, tuple[int, bytes]] = {}

        def send_due(now_s: float) -> int:
            skipped_before = schedule.skipped
            late = sent = 0
            for t_due, name in schedule.due(min(now_s, self._end_s)):
                if t_due >= self._end_s:
                    continue
                late += frame_is_late(t_due, now_s, periods_s[name], batch_s)
                index = self._trace.index_at(t_due)
                cached = cache.get(name)
                if cached is None or cached[0] != index:
                    cached = (index, j1939_frame_data(name, self._trace.reading_at(t_due)))
                    cache[name] = cached
                self._send(Frame(arbitration_id=ids[name], is_extended_id=True, data=cached[1], timestamp=t_due))
                sent += 1
            if schedule.skipped != skipped_before or late:
                self._count(frames_skipped=schedule.skipped - skipped_before, frames_late=late)
            return sent

        return schedule, send_due

    def _run_j1939(self) -> None:
        schedule, send_due = self._j1939_sender(self._clock.now_s())
        while not self._stop_requested.is_set():
            now_s = self._clock.now_s()
            send_due(now_s)
            if now_s >= self._end_s:
                return
            wait_wall_s = max(self._min_wall_sleep_s, self._clock.wall_s_until(schedule.next_due_s()))
            self._stop_requested.wait(wait_wall_s)
        # Stopped while a little behind the clock: what is already due still goes out, late, rather than vanish.
        send_due(self._clock.now_s())

    # -- on virtual time (harness.run.scheduler) --------------------------------------------------------------------

    def step(self, now_s: float) -> bool:
        """On virtual time (`start_stepped`): answer every request already on the bus, or broadcast every J1939
        frame due by `now_s` (each stamped with its own due time, exactly on its period); True if it did anything."""
        if self._profile.name == "obd2":
            did = False
            request = recv_now(self._bus)
            while request is not None:
                did = True
                self._answer(request)
                request = recv_now(self._bus)
            return did
        if self._j1939 is None:
            self._j1939 = self._j1939_sender(now_s)
        return self._j1939[1](now_s) > 0

    def next_due_s(self) -> float:
        """On virtual time: when the next J1939 frame is due (math.inf for the OBD-II responder: it only answers)."""
        if self._profile.name == "obd2":
            return math.inf
        if self._j1939 is None:
            return self._clock.now_s()
        next_s = self._j1939[0].next_due_s()
        return next_s if next_s < self._end_s else math.inf
