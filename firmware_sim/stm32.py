"""The STM32 firmware, simulated at its interfaces: CAN in (python-can bus), UART out (any byte sink).

What it does, as the reference firmware does:

- Profile ``obd2``: once per second of scenario time (a *poll cycle*, on whole scenario seconds) it asks the engine
  ECU for each PID in `OBD_POLL_PIDS`, one at a time: a service 01 request on the functional ID 0x7DF,
  ``[0x02, 0x01, PID, 0xAA, 0xAA, 0xAA, 0xAA, 0xAA]``, then up to `OBD_RESPONSE_TIMEOUT_S` (500 ms of
  scenario time) for the ECU's answer on 0x7E8 with the same PID. No answer in time counts as
  *unanswered* and the next PID is asked. The pad byte is 0xAA: DESIGN.md writes the request that way and
  the reference firmware pads its responses with 0xAA too (`shared/vectors/raw_can_v1_reference_firmware.txt`).
  An answer that comes later is still forwarded and its value used, and is counted in `answers_late`: at a
  high time scale the 500 ms are a few wall milliseconds, and a thread-scheduling delay (Python switches
  threads every 5 ms) can make a simulated ECU's answer late; `answers_late` tells that apart from silence.
  A cycle that overruns the next tick (e.g. several PIDs unanswered: 9 × 0.5 s) makes the firmware skip the
  ticks it missed; `FirmwareStats.poll_ticks_missed` counts them. With `catch_up_polls` (simulated rigs, where
  an overrun comes from the host's thread scheduling, not the vehicle) it polls a missed tick late instead,
  stamped with that tick, and counts it in `poll_cycles_late`.
- Profile ``j1939``: it only listens; the vehicle broadcasts.
- It forwards EVERY CAN frame it receives to the UART in the configured codec, in arrival order, and its
  own OBD requests too (`forward_own_requests`, on by default): the app and the harness then see each
  request next to its answer, and an end-to-end check can account for every frame on the bus. A frame the
  codec cannot carry (a 29-bit ID on ``raw-can-v1``) is never truncated: it is counted in
  `FirmwareStats.frames_unforwardable` and not sent. ``dtg-link-v2`` carries every classic CAN frame.
- With ``dtg-link-v2`` it also sends a `SampleRecord` of the latest value it has decoded for each of the ten
  signals, followed by a `StatusRecord` of its counters, once per second: on OBD-II as soon as a poll cycle is
  complete (every PID answered or timed out), stamped with that cycle's tick, so a sample's values and its
  time describe the same instant; on J1939 on every whole second of scenario time. A J1939 simulator that falls
  behind still sends one sample per second (counted in `samples_late`), because the app's 60-sample windows
  count on 1 Hz. Values come
  from the bus through the profile's DBC (`harness.wire.dbc`); J1939 "not available" / "error" codes (SAE
  J1939-71 transmitted ranges: above 0xFA, 0xFAFF, 0xFAFFFFFF for 1, 2, 4 bytes) give no value. Signals the
  bus does not carry (on OBD-II: brake pressure, acceleration, position) come from `local_sensors`, a
  callable modelling the unit's own sensors, or are None. A value, once decoded, is held until a newer one
  arrives (see `max_value_age_s` to let old values lapse).

Frames are stamped (dtg-link-v2) with the scenario time at which the firmware read them off the bus.

It runs in its own thread on a wall-clock `ScenarioClock` (`start()`: paced rigs), or without a thread on virtual
time (`start_stepped()`, then `step(now_s)` / `next_due_s()` from `harness.run.scheduler`): both drive the same state
machine (`_advance`, `_take`, `_wake_s`). On virtual time nothing below about host scheduling applies: the
firmware reads a frame at the instant it was sent, and no tick is ever late.

What it does NOT model: the STM32's CAN filter banks and hardware receive FIFOs (every frame on the bus is
received; no FIFO overrun), bus-off recovery and error counters (an error frame on the bus is only counted, in
`error_frames`), CAN arbitration or bit timing, the UART's
baud rate and DMA (bytes go out as fast as the byte sink takes them; a sink that times out drops the batch
being written, counted in `frames_dropped_uart`), interrupt latency (the reception stamp lags the bus by
the simulator's scheduling: normally a few wall milliseconds, i.e. a few hundred scenario milliseconds at
100x; when the process is CPU-bound it can be seconds of scenario time — J1939's 200 frames/s at 100x is
about the limit of rest-bus + firmware + reader sharing one Python interpreter), flash/EEPROM, the GNSS
input, power modes and the watchdog.
"""
from __future__ import annotations

import bisect
import math
import threading
import time
from array import array
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from typing import Protocol

import can
import serial

from firmware_sim.firmware_stats import FirmwareStats
from firmware_sim.latest_values import LatestValues
from harness.core.worker import Worker, WorkerError
from harness.wire.dbc import get_profile, load_database
from harness.wire.link import CanFrame, LinkCodec, SampleRecord, StatusRecord, get_codec
from harness.wire.signals import SIGNALS
from harness.wire.virtual_bus import Frame, recv_now

__all__ = [
    "OBD_POLL_PIDS",
    "OBD_REQUEST_PAD_BYTE",
    "OBD_RESPONSE_TIMEOUT_S",
    "POLL_PERIOD_S",
    "SAMPLE_PERIOD_S",
    "Clock",
    "LocalSensors",
    "Stm32Sim",
    "Stm32SimError",
    "UartSink",
    "obd_request_data",
]

#: The PIDs the unit needs, in the order each poll cycle asks them: the five of the ten signals OBD-II carries
#: first (speed, rpm, throttle, coolant, fuel level), then load, intake air temperature, MAF, module voltage.
OBD_POLL_PIDS: tuple[int, ...] = (0x0D, 0x0C, 0x11, 0x05, 0x2F, 0x04, 0x0F, 0x10, 0x42)
OBD_REQUEST_PAD_BYTE = 0xAA
OBD_RESPONSE_TIMEOUT_S = 0.5
POLL_PERIOD_S = 1.0
SAMPLE_PERIOD_S = 1.0
_OBD_SERVICE_CURRENT_DATA = 0x01
_UINT32_MASK = 0xFFFFFFFF


class Clock(Protocol):
    """What the firmware needs of a clock (`harness.core.clock.ScenarioClock` is one)."""

    def now_s(self) -> float: ...

    def wall_s_until(self, t_s: float) -> float: ...


class UartSink(Protocol):
    """Where the firmware writes its UART bytes: a pyserial `Serial`, `PtyDeviceWriter`, or any such object."""

    def write(self, data: bytes) -> int | None: ...


#: The unit's own sensors: scenario time (s) -> readings by signal name (missing or NaN = no reading).
LocalSensors = Callable[[float], Mapping[str, float]]


class Stm32SimError(WorkerError):
    """The simulated firmware was misused (started twice, used after stop) or its worker failed."""


def obd_request_data(pid: int) -> bytes:
    """The 8 data bytes of the firmware's service 01 request for `pid`.

    >>> obd_request_data(0x0D).hex(" ")
    '02 01 0d aa aa aa aa aa'
    """
    if not 0 <= pid <= 0xFF:
        raise ValueError(f"an OBD-II PID is one byte (0x00..0xFF), got {pid!r}")
    return bytes((0x02, _OBD_SERVICE_CURRENT_DATA, pid)) + bytes((OBD_REQUEST_PAD_BYTE,)) * 5


class Stm32Sim(Worker):
    """The simulated STM32: reads `bus`, polls (profile obd2), writes `codec` frames to `uart`, on `clock`.

    Runs in a background thread from `start()` until `stop()`. `end_s` (scenario time; default never) ends
    polling and the 1 Hz records: no poll cycle or sample starts at or after it, a cycle under way finishes,
    and `wait()` returns once that is done; frames are still forwarded until `stop()`. `stop()` ends any
    wait for an answer (that request counts as neither answered nor unanswered), forwards every frame
    already queued on the bus, sends a last status record (dtg-link-v2) and returns. A stopped simulator
    cannot be restarted. The caller owns `bus` and `uart` and must not receive from `bus` meanwhile.

    Use as a context manager::

        with Stm32Sim(bus, uart, clock, profile="obd2", codec="dtg-link-v2") as firmware:
            ...
        print(firmware.stats)
    """

    #: Longest the worker blocks at a time (wall seconds), so stop() is prompt at any time scale.
    MAX_WALL_WAIT_S = 0.02
    #: Most frames handled between two UART writes (bounds a batch's bytes and its latency).
    MAX_BATCH_FRAMES = 256
    error_type = Stm32SimError
    #: Most frames `stop()` drains from the bus after the worker stops (bounds the drain).
    MAX_DRAIN_FRAMES = 1_000_000

    def __init__(
        self,
        bus: can.BusABC,
        uart: UartSink,
        clock: Clock,
        *,
        profile: str = "obd2",
        codec: str = "dtg-link-v2",
        local_sensors: LocalSensors | None = None,
        end_s: float = math.inf,
        poll_pids: tuple[int, ...] = OBD_POLL_PIDS,
        forward_own_requests: bool = True,
        max_value_age_s: float | None = None,
        first_seq: int = 0,
        catch_up_polls: bool = False,
    ) -> None:
        self._catch_up_polls = catch_up_polls
        self._profile = get_profile(profile)
        super().__init__(f"stm32-sim-{self._profile.name}")
        self._codec: LinkCodec = get_codec(codec)
        self._encoder = self._codec.encoder(first_seq)
        self._first_seq = first_seq
        self._bus = bus
        self._uart = uart
        self._clock = clock
        self._local_sensors = local_sensors
        self._end_s = end_s
        self._poll_pids = tuple(poll_pids)
        for pid in self._poll_pids:
            obd_request_data(pid)  # validates
        self._forward_own_requests = forward_own_requests
        self._latest = LatestValues(self._profile, max_value_age_s)
        self._request_id = load_database("obd2").get_message_by_name("OBD2_REQUEST_FUNCTIONAL").frame_id
        self._max_id_bits = self._codec.capabilities.max_id_bits
        self._sends_records = "sample" in self._codec.capabilities.record_types

        self._stats = FirmwareStats()
        self._sample_times_s = array("d")  # scenario time of every sample record sent (8 bytes a second)
        self._stats_lock = threading.Lock()
        self._polling_done = threading.Event()
        self._out = bytearray()
        self._out_frames = 0
        self._max_value_age_s = max_value_age_s
        self._restarts: list[tuple[float, float]] = []  # (at_s, down_s) of restart()s not carried out yet, in order
        self._begun = False
        self.encode_cpu_s = 0.0  # thread CPU seconds spent in the link encoder (`dtg-hil bench sim`)
        #: Whether to meter `encode_cpu_s` (a clock read either side of each frame's encoding): for `dtg-hil bench
        #: sim` only, the meter costs about as much as the encoding.
        self.meter_encoding = False

    # -- public API ---------------------------------------------------------------------------------

    @property
    def profile(self) -> str:
        return self._profile.name

    @property
    def codec(self) -> LinkCodec:
        return self._codec

    @property
    def first_seq(self) -> int:
        """The sequence number of the first frame (give it to ``decoder(first_seq=...)`` to count early loss)."""
        return self._first_seq

    @property
    def stats(self) -> FirmwareStats:
        """A snapshot of the counters (safe to read while running)."""
        with self._stats_lock:
            return replace(self._stats)

    def wait(self, timeout_s: float | None = None) -> bool:
        """Block until polling and sampling are over (`end_s` passed, last cycle done); False on timeout."""
        if self._state == "new":
            raise Stm32SimError(f"{self._describe()} was never started")
        return self._polling_done.wait(timeout_s)

    def restart(self, down_s: float = 2.0, at_s: float | None = None) -> None:
        """Reset the firmware at scenario time `at_s` (default now), as its watchdog or a brown-out does: the
        decoded values are lost; until `at_s + down_s` it reads nothing off the bus (counted in
        `frames_missed_down`) and sends nothing; then it boots, starts the link's sequence number again at
        `first_seq` and polls (samples) from the next whole second. Ticks before `at_s` that a simulator running
        behind the clock has not polled yet are polled first, so a restart costs the same seconds at any speed.
        `stats` count on across restarts (`restarts`). A restart may be scheduled before `start()`: it then falls
        on the same tick whatever the host's thread timing."""
        if not (math.isfinite(down_s) and down_s >= 0):
            raise ValueError(f"down_s must be a finite number >= 0, got {down_s!r}")
        if self._state == "stopped":
            raise Stm32SimError(f"{self._describe()} is stopped: nothing to restart")
        with self._stats_lock:
            bisect.insort(self._restarts, (self._clock.now_s() if at_s is None else float(at_s), float(down_s)))

    def __repr__(self) -> str:
        return f"<Stm32Sim {self._describe()} state={self._state} {self.stats}>"

    # -- worker -------------------------------------------------------------------------------------

    def _describe(self) -> str:
        channel = getattr(self._bus, "channel_info", self._bus)
        return f"STM32 sim '{self._profile.name}'/{self._codec.name} on {channel!s}"

    def _work(self) -> None:
        try:
            self._loop()
            self._end()
        finally:
            self._polling_done.set()

    def _end(self) -> None:
        """What stop() does last: forward what is still queued on the bus, a last status record, flush."""
        if not self._begun:
            self._begin(self._clock.now_s())
        self._drain()
        if self._sends_records:
            with self._stats_lock:
                self._queue_record(self._status(self._clock.now_s()))
        self._flush()

    # The firmware's main loop is a state machine (`_advance`, `_take`, `_wake_s`) so that a thread on the wall
    # clock (`_loop`) and a scheduler on virtual time (`step`, `next_due_s`) drive the same code.

    def _begin(self, t0_s: float) -> None:
        self._polling = self._profile.name == "obd2" and bool(self._poll_pids)
        # Poll cycles and samples fall on whole scenario seconds
        # (tick k at k * period), so sample times are the same whenever the firmware was started.
        self._next_poll_s = math.ceil(t0_s / POLL_PERIOD_S - 1e-9) * POLL_PERIOD_S
        self._next_sample_s = (_tick_at(t0_s, SAMPLE_PERIOD_S) + 1) * SAMPLE_PERIOD_S
        self._queue: list[int] = []
        self._pending_pid: int | None = None
        self._pending_deadline_s = math.inf
        self._cycle_s = t0_s
        self._cycle_open = False
        self._timed_out: set[int] = set()  # PIDs of this cycle whose answer did not come in time
        self._down_until_s: float | None = None  # while restarting: when it boots again
        self._begun = True

    def _more_polls(self) -> bool:
        return self._polling and self._next_poll_s < self._end_s

    def _more_samples(self) -> bool:
        return self._sends_records and not self._polling and self._next_sample_s < self._end_s

    def _advance(self, now_s: float) -> None:
        """Everything due at scenario time `now_s` but reading the bus: a restart, an answer's timeout, the end of
        a cycle (its sample), the next poll cycle or request, a J1939 sample."""
        stats = self._stats
        while True:
            if self._down_until_s is not None:
                if now_s < self._down_until_s:
                    return  # off: nothing is due but booting
                self._down_until_s = None
                self._encoder = self._codec.encoder(self._first_seq)
            restart = self._restarts[0] if self._restarts else None
            if restart is None or self._pending_pid is not None or self._queue or self._cycle_open or (
                    self._next_poll_s if self._polling else self._next_sample_s if self._sends_records
                    else math.inf) < restart[0] or now_s < restart[0]:
                break
            # between two cycles, once the next tick due is at or after the restart (a backlog polled first)
            with self._stats_lock:
                self._restarts.pop(0)
            up_s = self._reset(*restart)
            self._timed_out.clear()
            self._next_poll_s = max(self._next_poll_s, math.ceil(up_s / POLL_PERIOD_S - 1e-9) * POLL_PERIOD_S)
            self._next_sample_s = max(self._next_sample_s, math.ceil(up_s / SAMPLE_PERIOD_S - 1e-9) * SAMPLE_PERIOD_S)
        with self._stats_lock:
            # OBD-II: give up on an overdue answer, then ask the next PID of the cycle
            if self._pending_pid is not None and now_s >= self._pending_deadline_s:
                stats.requests_unanswered += 1
                self._timed_out.add(self._pending_pid)
                self._pending_pid = None
            if self._cycle_open and self._pending_pid is None and not self._queue:
                # OBD-II with dtg-link-v2: a poll cycle's sample goes out as soon as the cycle is complete
                # (before the next cycle can start), stamped with the cycle's tick, the instant its values
                # describe.
                self._cycle_open = False
                if self._sends_records:
                    self._queue_record(self._sample(self._cycle_s))
                    self._queue_record(self._status(self._cycle_s))
            # a restart due at or before the next tick comes first (the top of the loop carries it out)
            restart_s = self._restarts[0][0] if self._restarts else math.inf
            if (self._polling and self._pending_pid is None and not self._queue and self._next_poll_s <= now_s
                    and self._next_poll_s < self._end_s and self._next_poll_s < restart_s):
                due_tick = _tick_at(now_s, POLL_PERIOD_S)
                if self._catch_up_polls:
                    # Simulated rigs: a tick the host was too slow for is polled late, stamped with its own
                    # tick; the simulated ECU answers for that instant, so the run is the same at any speed.
                    due_tick = round(self._next_poll_s / POLL_PERIOD_S)
                    stats.poll_cycles_late += now_s - self._next_poll_s >= POLL_PERIOD_S
                else:
                    stats.poll_ticks_missed += max(0, due_tick - math.ceil(self._next_poll_s / POLL_PERIOD_S - 1e-9))
                self._cycle_s = due_tick * POLL_PERIOD_S
                self._next_poll_s = (due_tick + 1) * POLL_PERIOD_S
                stats.poll_cycles += 1
                self._queue = list(self._poll_pids)
                self._timed_out.clear()
            while self._pending_pid is None and self._queue:
                pid = self._queue.pop(0)
                if self._request(pid, now_s, self._cycle_s):
                    self._pending_pid, self._pending_deadline_s = pid, now_s + OBD_RESPONSE_TIMEOUT_S
                    self._cycle_open = True

            # J1939 with dtg-link-v2: the 1 Hz sample and status on each tick, even when late (the app counts
            # on 1 Hz)
            while (self._sends_records and not self._polling and self._next_sample_s <= now_s
                   and self._next_sample_s < self._end_s and self._next_sample_s < restart_s):
                if now_s - self._next_sample_s >= SAMPLE_PERIOD_S:
                    stats.samples_late += 1
                self._queue_record(self._sample(self._next_sample_s))
                self._queue_record(self._status(self._next_sample_s))
                self._next_sample_s = (_tick_at(self._next_sample_s, SAMPLE_PERIOD_S) + 1) * SAMPLE_PERIOD_S

            if self._pending_pid is None and not self._queue and not self._more_polls() and not self._more_samples():
                self._polling_done.set()

    def _wake_s(self) -> float:
        """The next scenario time at which `_advance` has work without a frame coming in (math.inf: none)."""
        if self._down_until_s is not None:
            return self._down_until_s
        idle = self._pending_pid is None and not self._queue
        return min(
            self._pending_deadline_s if self._pending_pid is not None else math.inf,
            self._next_poll_s if self._more_polls() and idle else math.inf,
            self._next_sample_s if self._more_samples() else math.inf,
            self._restarts[0][0] if self._restarts else math.inf,
        )

    def _take(self, message: can.Message, now_s: float) -> None:
        """One frame read off the bus at `now_s` (the caller holds the stats lock)."""
        stats = self._stats
        if self._down_until_s is not None:
            stats.frames_missed_down += 1  # a powered-down controller acknowledges nothing
            return
        # Catch-up polls (simulated rigs): an answer's value dates from its cycle's tick, not from when
        # the busy host got to it, so a value ages (max_value_age_s) the same at any time scale.
        pid = self._receive(message, now_s, self._cycle_s if self._catch_up_polls and self._polling else None)
        if pid is not None and pid == self._pending_pid:
            stats.requests_answered += 1
            self._pending_pid = None
        elif pid in self._timed_out:
            stats.answers_late += 1
            self._timed_out.discard(pid)

    def _loop(self) -> None:
        """The firmware on a wall-clock `ScenarioClock`: its own thread, sleeping on the bus until the next thing
        is due (bounded, so stop() is prompt)."""
        clock = self._clock
        self._begin(clock.now_s())
        while not self._stop_requested.is_set():
            self._advance(clock.now_s())
            self._flush()
            wake_s = self._wake_s()
            timeout_wall_s = min(self.MAX_WALL_WAIT_S, clock.wall_s_until(wake_s)) if wake_s < math.inf else (
                self.MAX_WALL_WAIT_S
            )
            message = self._bus.recv(timeout=timeout_wall_s)
            if message is None:
                continue
            with self._stats_lock:
                handled = 0
                while message is not None:
                    self._take(message, clock.now_s())
                    handled += 1
                    if handled >= self.MAX_BATCH_FRAMES or (self._pending_pid is None and self._queue):
                        break  # answer in: ask the next PID before reading on
                    message = self._bus.recv(timeout=0.0)
            self._flush()

    def step(self, now_s: float) -> bool:
        """On virtual time (`start_stepped`): do everything due at `now_s`, reading every frame already on the bus
        (without waiting for more); True when it did anything (read a frame, sent or wrote something)."""
        if not self._begun:
            self._begin(now_s)
        stats = self._stats  # one thread on virtual time: no other reader to lock out
        before = (stats.requests_sent, stats.restarts, stats.poll_cycles, len(self._out))
        if self._wake_s() <= now_s or self._restarts:
            self._advance(now_s)
        took = 0
        message = recv_now(self._bus)
        while message is not None:
            with self._stats_lock:
                self._take(message, now_s)
            took += 1
            if self._pending_pid is None and (self._queue or self._cycle_open):
                self._advance(now_s)  # answer in: end the cycle or ask the next PID before reading on
            message = recv_now(self._bus)
        did = took > 0 or before != (stats.requests_sent, stats.restarts, stats.poll_cycles, len(self._out))
        self._flush()
        return did

    def next_due_s(self) -> float:
        """On virtual time: the next scenario time this firmware has work at, without a frame coming in."""
        return self._wake_s() if self._begun else self._clock.now_s()

    def _finish(self) -> None:
        if self.stepped:  # the thread's _work ends with this; a stepped firmware ends at stop()
            try:
                self._end()
            finally:
                self._polling_done.set()

    def _reset(self, at_s: float, down_s: float) -> float:
        """restart(): lose what RAM held, stay off the bus until `at_s + down_s` (frames read meanwhile count as
        missed), then boot afresh (`_advance`); returns that time."""
        with self._stats_lock:
            self._stats.restarts += 1
            self._out.clear()  # nothing is queued between loop turns; a reset loses it all the same
            self._out_frames = 0
        self._latest = LatestValues(self._profile, self._max_value_age_s)
        self._down_until_s = at_s + down_s
        return self._down_until_s

    def _drain(self) -> None:
        """Forward the frames still queued on the bus when stop() was called."""
        for _ in range(self.MAX_DRAIN_FRAMES):
            message = self._bus.recv(timeout=0.0)
            if message is None:
                return
            with self._stats_lock:
                self._take(message, self._clock.now_s())
            if self._out_frames >= self.MAX_BATCH_FRAMES:
                self._flush()

    def _request(self, pid: int, now_s: float, cycle_s: float) -> bool:
        """Send the request for `pid` (and forward it); False if the CAN controller refused it.

        The frame is stamped with its poll cycle's tick (scenario time); a simulated ECU that honours the stamp
        answers with the value at that instant, which makes simulated runs independent of thread timing.
        """
        message = Frame(arbitration_id=self._request_id, is_extended_id=False, data=obd_request_data(pid),
                        timestamp=cycle_s)
        try:
            self._bus.send(message, timeout=self.MAX_WALL_WAIT_S)
        except can.CanError:
            self._stats.request_send_errors += 1  # e.g. bus-off: this PID is skipped for this cycle
            return False
        self._stats.requests_sent += 1
        if self._forward_own_requests:
            self._forward(CanFrame(self._request_id, bytes(message.data), False, max(now_s, 0.0)))
        return True

    def _receive(self, message: can.Message, now_s: float, value_t_s: float | None = None) -> int | None:
        """Count and forward one frame off the bus; returns the PID if it is an OBD-II answer. Its values date from
        `value_t_s` (default `now_s`, when it was read)."""
        if message.is_error_frame:
            # An error frame carries no data: a controller counts it (its receive error counter) and receives nothing.
            self._stats.error_frames += 1
            return None
        self._stats.frames_received += 1
        if message.is_remote_frame or message.is_fd or len(message.data) > 8:
            self._stats.frames_unforwardable += 1  # no codec carries these
            return None
        frame = CanFrame(message.arbitration_id, bytes(message.data), message.is_extended_id, max(now_s, 0.0))
        self._forward(frame)
        return self._latest.note(frame, now_s if value_t_s is None else value_t_s)

    def _forward(self, frame: CanFrame) -> None:
        if frame.is_extended and self._max_id_bits < 29:
            self._stats.frames_unforwardable += 1  # never truncate: a truncated ID is another, valid ID
            return
        self._encode(frame)
        self._out_frames += 1

    def _sample(self, t_s: float) -> SampleRecord:
        bus_values = self._latest.values(t_s)
        local: Mapping[str, float] = self._local_sensors(t_s) if self._local_sensors is not None else {}
        values: list[float | None] = []
        for name in SIGNALS:
            if name in bus_values:
                values.append(bus_values[name])
            else:
                reading = local.get(name)
                values.append(None if reading is None or math.isnan(reading) else float(reading))
        self._stats.samples_sent += 1
        self._sample_times_s.append(t_s)
        return SampleRecord(_time_ms(t_s), tuple(values))

    @property
    def sample_times_s(self) -> Sequence[float]:
        """The scenario time of every sample record sent, in order."""
        return self._sample_times_s

    def samples_sent_until(self, t_s: float) -> int:
        """How many sample records this firmware sent stamped at or before scenario time `t_s` (an app that
        reports its counters in status lines is compared with the firmware at the time of its last one)."""
        return bisect.bisect_right(self._sample_times_s, t_s + 1e-3)  # sample records carry whole ms

    def _status(self, t_s: float) -> StatusRecord:
        stats = self._stats
        self._stats.status_sent += 1
        return StatusRecord(
            _time_ms(t_s),
            requests_sent=stats.requests_sent & _UINT32_MASK,
            requests_unanswered=stats.requests_unanswered & _UINT32_MASK,
            can_frames_received=stats.frames_received & _UINT32_MASK,
            can_frames_dropped=(stats.frames_unforwardable + stats.frames_dropped_uart) & _UINT32_MASK,
        )

    def _queue_record(self, record: SampleRecord | StatusRecord) -> None:
        self._encode(record)

    def _encode(self, record: CanFrame | SampleRecord | StatusRecord) -> None:
        if not self.meter_encoding:
            self._out += self._encoder.encode(record)
            return
        started = time.thread_time()
        self._out += self._encoder.encode(record)
        self.encode_cpu_s += time.thread_time() - started

    def _flush(self) -> None:
        """Write the queued bytes to the UART; a timed-out write loses them (counted), others are fatal."""
        if not self._out:
            return
        data, frames = bytes(self._out), self._out_frames
        self._out.clear()
        self._out_frames = 0
        try:
            self._uart.write(data)
        except serial.SerialTimeoutException:
            with self._stats_lock:
                self._stats.uart_write_timeouts += 1
                self._stats.frames_dropped_uart += frames
            return
        with self._stats_lock:
            self._stats.bytes_written += len(data)
            self._stats.frames_forwarded += frames


def _tick_at(t_s: float, period_s: float) -> int:
    """The index of the latest tick (k * period_s) at or before `t_s`."""
    return math.floor(t_s / period_s + 1e-9)


def _time_ms(t_s: float) -> int:
    return max(0, round(t_s * 1000.0))
