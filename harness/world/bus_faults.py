"""Bus faults: frame loss, a silent ID, flooding, delay and jitter, error frames and bus-off, on the CAN bus.

A scenario's `bus_faults:` list schedules them (docs/scenarios.md). Unlike the anomalies (`harness.world.anomalies`),
they change nothing in the vehicle or its sensors: they act on the frames between the rest-bus (the vehicle's
ECUs) and the wire. `BusFaultInjector` sits there: the rest-bus sends through it as through a bus, and it decides
frame by frame, so the harness knows exactly which frames it dropped, delayed or added, and the run's accounting
can tell intended loss from loss nobody asked for.

What each fault does, in its window [at_s, at_s + duration_s) of scenario time:

- `frame_loss`: each rest-bus frame (of `ids`, default all) is lost with `probability`, drawn from a random
  generator seeded by the scenario's seed and the fault's position in the list; or, with `burst_frames` and
  `every_s`, the first `burst_frames` frames of every `every_s` seconds are lost.
- `id_silent`: the frames of `ids`, or those carrying `signal`, are never sent. On OBD-II a signal is its PID's
  answers on 0x7E8; on J1939 it is its parameter group's frames, so the other signals of that group (latitude
  and longitude share VP) go silent with it.
- `flood`: a foreign node sends frame `id` (`data`, default eight zero bytes) at `rate_hz`.
- `delay`: each rest-bus frame (of `ids`) leaves `delay_ms` plus a uniform jitter in [-jitter_ms, +jitter_ms]
  (at least 0) later than the rest-bus sent it; frames may overtake each other.
- `error_frames`: error frames at `rate_hz` (python-can `is_error_frame`).
- `bus_off`: the rest-bus's controller is bus-off: none of its frames reach the wire (the unit's requests still
  do, and go unanswered).

A frame's time is the scenario time the rest-bus stamped on it (`can.Message.timestamp`): the time the frame
describes. With the simulated STM32's catch-up polls (a late poll carries its own tick) a fault then hits the
same frames at any time scale, so a run's counts are reproducible. Flood and error frames go out on the
scenario clock, stamped with their scheduled time. When several faults cover a frame the first that decides
wins, in this order: bus_off, id_silent, frame_loss, delay.

What it does not model: bit-level errors and the error counters they drive (an error frame here is a message
the receivers see, not a destroyed frame: no frame is lost to it), arbitration between the flood and the
rest-bus (the virtual bus has none), bus-off recovery timing (the rest-bus is simply silent for the window),
and faults on the unit's own transmissions. The injector is the harness: on a rig paced by the wall clock its
thread may fall behind, and a delayed, flood or error frame that leaves more than one wake-up (`MAX_WALL_WAIT_S`
at the clock's scale) after it was due is counted in `frames_late`, the rig's own loss in the run's accounting
(the injector did not do what the scenario asked, on time).

Error frames go on the python-can virtual bus only: a USB-CAN adapter's driver sends data frames, and some
(slcan) would send an error frame as a data frame with ID 0. On any other interface they are not sent and are
counted in `frames_refused`, never hidden; so is a flood frame the interface refuses.
"""
from __future__ import annotations

import heapq
import itertools
import math
import random
import threading
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

import can
from can.interfaces.virtual import VirtualBus

from harness.core.datafile import Checker, kind_of
from harness.core.worker import Worker, WorkerError

BUS_FAULT_TYPES = ("frame_loss", "id_silent", "flood", "delay", "error_frames", "bus_off")
#: Faults that silence data the unit reads: the app is expected to flag stale data during them.
SILENCING_TYPES = ("id_silent", "bus_off")
COMMON_KEYS = ("type", "at_s", "duration_s")
TYPE_KEYS: dict[str, tuple[str, ...]] = {
    "frame_loss": ("probability", "burst_frames", "every_s", "ids"),
    "id_silent": ("ids", "signal"),
    "flood": ("id", "rate_hz", "data"),
    "delay": ("delay_ms", "jitter_ms", "ids"),
    "error_frames": ("rate_hz",),
    "bus_off": (),
}
ALL_KEYS = COMMON_KEYS + tuple(dict.fromkeys(k for keys in TYPE_KEYS.values() for k in keys))
MAX_CAN_ID = 0x1FFFFFFF
MAX_STANDARD_ID = 0x7FF
#: Highest flood or error-frame rate: 1 kHz is a saturated 500 kbit/s bus, and at 100x as much as the simulated
#: chain's one Python interpreter can move.
MAX_RATE_HZ = 1000.0
MAX_DELAY_MS = 10_000.0
#: The signals a fault may silence: the ten plant signals a profile carries on the bus.
SILENCEABLE_SIGNALS = ("vehicle_speed", "engine_rpm", "throttle_position", "brake_pressure", "coolant_temp",
                       "fuel_level", "acceleration_x", "latitude", "longitude", "altitude")


@dataclass(frozen=True)
class BusFault:
    """One scheduled bus fault. Times are scenario seconds; unused fields keep their defaults."""

    type: str
    at_s: float
    duration_s: float
    ids: tuple[int, ...] = ()  # frame_loss, delay: only these IDs (empty: every frame); id_silent: these IDs
    signal: str | None = None  # id_silent: the signal whose frames stop
    probability: float = 0.0  # frame_loss
    burst_frames: int = 0  # frame_loss in bursts: this many frames ...
    every_s: float = 0.0  # ... at the start of every this many seconds
    id: int | None = None  # flood
    data: bytes = bytes(8)  # flood
    rate_hz: float = 0.0  # flood, error_frames
    delay_ms: float = 0.0  # delay
    jitter_ms: float = 0.0  # delay

    @property
    def end_s(self) -> float:
        return self.at_s + self.duration_s

    def active(self, t_s: float) -> bool:
        return self.at_s <= t_s < self.end_s

    def describe(self) -> str:
        """E.g. "frame_loss 5 % at 60-180 s"."""
        what = {
            "frame_loss": f"{self.probability * 100:g} %" if self.burst_frames == 0
            else f"bursts of {self.burst_frames} frames every {self.every_s:g} s",
            "id_silent": self.signal or ", ".join(f"0x{i:X}" for i in self.ids),
            "flood": f"0x{self.id or 0:X} at {self.rate_hz:g} Hz",
            "delay": f"{self.delay_ms:g} ms ± {self.jitter_ms:g} ms",
            "error_frames": f"{self.rate_hz:g} Hz",
            "bus_off": "",
        }[self.type]
        return f"{self.type} {what} at {self.at_s:g}-{self.end_s:g} s".replace("  ", " ")


# --- scenario files --------------------------------------------------------------------------------------------

def _read_ids(c: Checker, item: dict, key: str, path: str) -> tuple[int, ...]:
    if key not in item:
        return ()
    raw = item[key]
    values = raw if isinstance(raw, list) else [raw]
    out = []
    for i, value in enumerate(values):
        where = f"{path}.{key}[{i}]" if isinstance(raw, list) else f"{path}.{key}"
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_CAN_ID:
            c.report(where, f"expected a CAN ID (an integer 0..0x{MAX_CAN_ID:X}, e.g. 0x7E8); got {kind_of(value)} "
                            f"{value!r}")
            continue
        out.append(value)
    if isinstance(raw, list) and not raw:
        c.report(f"{path}.{key}", "needs at least one CAN ID")
    return tuple(out)


def _read_data(c: Checker, item: dict, path: str) -> bytes:
    if "data" not in item:
        return bytes(8)
    raw = item["data"]
    try:
        data = bytes.fromhex(raw) if isinstance(raw, str) else None
    except ValueError:
        data = None
    if data is None or len(data) > 8:
        c.report(f"{path}.data", f"expected up to 8 bytes as hex text (e.g. '0102aabb'); got {kind_of(raw)} {raw!r}")
        return bytes(8)
    return data


def read_bus_faults(c: Checker, data: Any, duration_s: float | None) -> list[BusFault]:
    """Validate a scenario's `bus_faults:` list; every problem is reported to `c` with its field path."""
    if data is None:
        return []
    if not isinstance(data, list):
        c.report("bus_faults", f"expected a list of bus faults; got {kind_of(data)}")
        return []
    out: list[BusFault] = []
    for i, raw in enumerate(data):
        path = f"bus_faults[{i}]"
        kind = c.choice(raw, "type", path, BUS_FAULT_TYPES, None, "bus fault type") if isinstance(raw, dict) \
            else None
        allowed = COMMON_KEYS + TYPE_KEYS.get(kind, tuple(k for k in ALL_KEYS if k not in COMMON_KEYS))
        item = c.mapping(raw, path, allowed, required=("type", "at_s", "duration_s"))
        at_s = c.number(item, "at_s", path, None, lo=0.0)
        duration = c.number(item, "duration_s", path, None, lo=0.0, lo_open=True)
        fields: dict[str, Any] = {}
        if kind == "frame_loss":
            fields["ids"] = _read_ids(c, item, "ids", path)
            has_p, has_burst = "probability" in item, "burst_frames" in item or "every_s" in item
            if has_p == has_burst:
                c.report(path, "frame_loss needs either 'probability' (random loss) or 'burst_frames' and 'every_s' "
                               "(bursts)")
            elif has_p:
                fields["probability"] = c.number(item, "probability", path, 0.0, lo=0.0, hi=1.0, lo_open=True)
            else:
                for key in ("burst_frames", "every_s"):
                    if key not in item:
                        c.report(f"{path}.{key}", "is required with bursts")
                fields["burst_frames"] = int(c.number(item, "burst_frames", path, 0, lo=1, integer=True) or 0)
                fields["every_s"] = c.number(item, "every_s", path, 0.0, lo=0.0, lo_open=True) or 0.0
        elif kind == "id_silent":
            if ("ids" in item) == ("signal" in item):
                c.report(path, "id_silent needs either 'ids' (CAN IDs) or 'signal' (one of: "
                               f"{', '.join(SILENCEABLE_SIGNALS)})")
            fields["ids"] = _read_ids(c, item, "ids", path)
            fields["signal"] = c.choice(item, "signal", path, SILENCEABLE_SIGNALS, None, "signal")
        elif kind == "flood":
            if isinstance(item.get("id"), list):
                c.report(f"{path}.id", "expected one CAN ID (a flood sends one ID); got a list")
            ids = _read_ids(c, item, "id", path) if not isinstance(item.get("id"), list) else ()
            if "id" not in item:
                c.report(f"{path}.id", "is required: the CAN ID to flood")
            fields["id"] = ids[0] if ids else None
            fields["data"] = _read_data(c, item, path)
            if "rate_hz" not in item:
                c.report(f"{path}.rate_hz", "is required")
            fields["rate_hz"] = c.number(item, "rate_hz", path, 0.0, lo=0.0, hi=MAX_RATE_HZ, lo_open=True) or 0.0
        elif kind == "delay":
            fields["ids"] = _read_ids(c, item, "ids", path)
            if "delay_ms" not in item:
                c.report(f"{path}.delay_ms", "is required")
            fields["delay_ms"] = c.number(item, "delay_ms", path, 0.0, lo=0.0, hi=MAX_DELAY_MS) or 0.0
            fields["jitter_ms"] = c.number(item, "jitter_ms", path, 0.0, lo=0.0, hi=MAX_DELAY_MS) or 0.0
        elif kind == "error_frames":
            if "rate_hz" not in item:
                c.report(f"{path}.rate_hz", "is required")
            fields["rate_hz"] = c.number(item, "rate_hz", path, 0.0, lo=0.0, hi=MAX_RATE_HZ, lo_open=True) or 0.0
        if kind is None or at_s is None or duration is None:
            continue
        fault = BusFault(kind, float(at_s), float(duration), **fields)
        if duration_s is not None and fault.end_s > duration_s:
            c.report(f"{path}.{'at_s' if fault.at_s >= duration_s else 'duration_s'}",
                     f"window {fault.at_s:g}-{fault.end_s:g} s ends past the end of the route ({duration_s:g} s)")
            continue
        out.append(fault)
    return out


# --- deciding, frame by frame (pure) ------------------------------------------------------------------------------

@dataclass
class FaultCount:
    """What one fault did to the bus."""

    fault: str  # BusFault.describe()
    frames_dropped: int = 0  # rest-bus frames it kept off the wire
    frames_delayed: int = 0
    frames_added: int = 0  # flood frames on the wire
    error_frames: int = 0  # error frames on the wire
    frames_refused: int = 0  # flood or error frames the interface refused to send
    frames_late: int = 0  # delayed, flood or error frames sent more than one wake-up after due (the rig's lag)


@dataclass
class InjectorStats:
    """What the bus fault injector did, per fault (in the scenario's order) and in total."""

    faults: list[FaultCount] = field(default_factory=list)

    def _total(self, name: str) -> int:
        return sum(getattr(f, name) for f in self.faults)

    @property
    def frames_dropped(self) -> int:
        return self._total("frames_dropped")

    @property
    def frames_delayed(self) -> int:
        return self._total("frames_delayed")

    @property
    def frames_added(self) -> int:
        return self._total("frames_added")

    @property
    def error_frames(self) -> int:
        return self._total("error_frames")

    @property
    def frames_refused(self) -> int:
        return self._total("frames_refused")

    @property
    def frames_late(self) -> int:
        return self._total("frames_late")


def signal_matcher(profile: str, signal: str) -> Callable[[can.Message], bool]:
    """Which rest-bus frames carry `signal` on profile `profile`; ValueError if the profile does not carry it.

    >>> matches = signal_matcher("obd2", "coolant_temp")
    >>> matches(can.Message(arbitration_id=0x7E8, is_extended_id=False, data=[3, 0x41, 0x05, 130, 0xAA]))
    True
    """
    from harness.wire.dbc import get_profile, load_database

    bindings = [b for b in get_profile(profile).signals if b.channel == signal]
    if not bindings:
        carried = [b.channel for b in get_profile(profile).signals if b.channel in SILENCEABLE_SIGNALS]
        raise ValueError(f"the {profile} profile does not carry {signal} on the bus (it carries: "
                         f"{', '.join(carried)}); the unit reads it from its own sensors")
    binding = bindings[0]
    if profile == "obd2":
        response_id = load_database("obd2").get_message_by_name("OBD2_RESPONSE").frame_id
        pid = binding.pid
        return lambda m: (m.arbitration_id == response_id and not m.is_extended_id and len(m.data) >= 3
                          and m.data[1] == 0x41 and m.data[2] == pid)
    import cantools.j1939

    pgn = cantools.j1939.pgn_from_frame_id(load_database(profile).get_message_by_name(binding.message).frame_id)
    return lambda m: m.is_extended_id and cantools.j1939.pgn_from_frame_id(m.arbitration_id) == pgn


class FaultPlan:
    """Decides, frame by frame, what the scheduled faults do to the rest-bus's frames. Pure: no bus, no clock.

    `decide(message)` returns ("send", None, 0.0), ("drop", fault index, 0.0) or ("delay", fault index,
    delay in s), and counts it. Random draws come from one generator per fault, seeded by `seed` and the
    fault's index, and are made only for frames in that fault's window and IDs: the same frames in the same
    order give the same decisions.

    >>> plan = FaultPlan([BusFault("bus_off", 10.0, 5.0)], profile="obd2")
    >>> [plan.decide(can.Message(arbitration_id=0x7E8, timestamp=t))[0] for t in (9.9, 10.0, 14.9, 15.0)]
    ['send', 'drop', 'drop', 'send']
    >>> plan.stats.frames_dropped
    2
    """

    _ORDER = ("bus_off", "id_silent", "frame_loss", "delay")

    def __init__(self, faults: tuple[BusFault, ...] | list[BusFault], *, profile: str = "obd2", seed: int = 0):
        self.faults = tuple(faults)
        self.stats = InjectorStats([FaultCount(f.describe()) for f in self.faults])
        self._rngs = [random.Random(f"dtg-hil bus fault {seed} {i}") for i in range(len(self.faults))]
        self._matchers: list[Callable[[can.Message], bool] | None] = []
        for fault in self.faults:
            if fault.signal is not None:
                self._matchers.append(signal_matcher(profile, fault.signal))
            elif fault.ids:
                ids = frozenset(fault.ids)
                self._matchers.append(lambda m, ids=ids: m.arbitration_id in ids)
            else:
                self._matchers.append(None)
        self._deciders = [(i, f) for kind in self._ORDER for i, f in enumerate(self.faults) if f.type == kind]
        self._bursts: dict[tuple[int, int], int] = {}  # (fault, burst number) -> frames dropped in it

    def decide(self, message: can.Message) -> tuple[str, int | None, float]:
        t_s = message.timestamp
        for i, fault in self._deciders:
            if not fault.active(t_s):
                continue
            matcher = self._matchers[i]
            if matcher is not None and not matcher(message):
                continue
            if fault.type in ("bus_off", "id_silent"):
                return self._drop(i)
            if fault.type == "frame_loss":
                if fault.burst_frames:
                    burst = (i, math.floor((t_s - fault.at_s) / fault.every_s))
                    if self._bursts.get(burst, 0) < fault.burst_frames:
                        self._bursts[burst] = self._bursts.get(burst, 0) + 1
                        return self._drop(i)
                elif self._rngs[i].random() < fault.probability:
                    return self._drop(i)
                continue
            # delay
            jitter_ms = self._rngs[i].uniform(-fault.jitter_ms, fault.jitter_ms) if fault.jitter_ms else 0.0
            self.stats.faults[i].frames_delayed += 1
            return "delay", i, max(0.0, fault.delay_ms + jitter_ms) / 1000.0
        return "send", None, 0.0

    def _drop(self, i: int) -> tuple[str, int, float]:
        self.stats.faults[i].frames_dropped += 1
        return "drop", i, 0.0

    def generated(self, end_s: float = math.inf) -> itertools.chain[tuple[float, int, can.Message]]:
        """Every flood and error frame, as (scenario time, fault index, message), in time order, before `end_s`."""
        def frames(i: int, fault: BusFault):
            for k in itertools.count():
                t_s = fault.at_s + k / fault.rate_hz
                if t_s >= min(fault.end_s, end_s):
                    return
                if fault.type == "flood":
                    yield t_s, i, can.Message(arbitration_id=fault.id, is_extended_id=fault.id > MAX_STANDARD_ID,
                                              data=fault.data, timestamp=t_s)
                else:
                    yield t_s, i, can.Message(is_error_frame=True, timestamp=t_s)
        streams = [frames(i, f) for i, f in enumerate(self.faults) if f.type in ("flood", "error_frames")]
        return heapq.merge(*streams, key=lambda item: (item[0], item[1]))


# --- the injector on the bus (a thread) ----------------------------------------------------------------------------

class BusFaultInjectorError(WorkerError):
    """The bus fault injector was misused or its worker failed."""


class BusFaultInjector(Worker):
    """Stands between the rest-bus and `bus`: the rest-bus sends and receives through it as through a bus.

    `send` applies `faults` to each frame (drop, delay or pass; `FaultPlan`); the worker thread sends the delayed
    frames when they are due and the flood and error frames on `clock`, until `end_s`. `stop()` sends the delayed
    frames still held at once (none is lost at the end of a run); flood and error frames not yet due are not
    sent. `stats` counts everything per fault. The caller owns `bus`.
    """

    MAX_WALL_WAIT_S = 0.02
    error_type = BusFaultInjectorError

    def __init__(self, bus: can.BusABC, faults: tuple[BusFault, ...] | list[BusFault], clock, *,
                 profile: str = "obd2", seed: int = 0, end_s: float = math.inf) -> None:
        super().__init__("bus-fault-injector")
        self._bus = bus
        self._clock = clock
        self._plan = FaultPlan(faults, profile=profile, seed=seed)
        self._end_s = end_s
        self._lock = threading.Lock()
        self._held: list[tuple[float, int, can.Message, int]] = []  # (due, order, message, fault index): a heap
        # Scenario seconds a frame may leave after it was due before it counts late: one wake-up of the worker.
        self._late_after_s = clock.scenario_span_s(self.MAX_WALL_WAIT_S)
        self._order = itertools.count()
        self._wake = threading.Event()
        self._generated = self._plan.generated(end_s)
        self._upcoming = _NOT_READ  # on virtual time: the next flood or error frame

    # -- the bus the rest-bus sees ------------------------------------------------------------------------------

    @property
    def channel_info(self) -> str:
        return f"{getattr(self._bus, 'channel_info', self._bus)!s} behind the bus fault injector"

    @property
    def stats(self) -> InjectorStats:
        """A snapshot of the counters."""
        with self._lock:
            return InjectorStats([replace(f) for f in self._plan.stats.faults])

    def recv(self, timeout: float | None = None) -> can.Message | None:
        return self._bus.recv(timeout)

    def send(self, msg: can.Message, timeout: float | None = None) -> None:
        with self._lock:
            action, fault_index, delay_s = self._plan.decide(msg)
            if action == "drop":
                return
            if action == "delay" and self._state == "running":
                due_s = max(msg.timestamp, self._clock.now_s()) + delay_s
                delayed = can.Message(arbitration_id=msg.arbitration_id, is_extended_id=msg.is_extended_id,
                                      data=msg.data, dlc=msg.dlc, timestamp=msg.timestamp + delay_s)
                heapq.heappush(self._held, (due_s, next(self._order), delayed, fault_index))
                self._wake.set()
                return
        self._bus.send(msg, timeout)  # a refusal is the rest-bus's to count, as without faults

    # -- worker -------------------------------------------------------------------------------------------------

    def _describe(self) -> str:
        return f"bus fault injector on {getattr(self._bus, 'channel_info', self._bus)!s}"

    def _count_late(self, i: int, due_s: float) -> None:
        """Count a frame of fault `i` that left more than one wake-up after `due_s` (call with the lock held)."""
        if self._clock.now_s() - due_s > self._late_after_s:
            self._plan.stats.faults[i].frames_late += 1

    def _send_generated(self, i: int, message: can.Message) -> None:
        ok = not message.is_error_frame or isinstance(self._bus, VirtualBus)
        if ok:
            try:
                self._bus.send(message, timeout=self.MAX_WALL_WAIT_S)
            except can.CanError:
                ok = False
        with self._lock:
            count = self._plan.stats.faults[i]
            if not ok:
                count.frames_refused += 1
                return
            self._count_late(i, message.timestamp)  # generated frames are stamped with their scheduled time
            if message.is_error_frame:
                count.error_frames += 1
            else:
                count.frames_added += 1

    def _release_held(self, now_s: float) -> None:
        while True:
            with self._lock:
                if not self._held or self._held[0][0] > now_s:
                    return
                due_s, _, message, fault_index = heapq.heappop(self._held)
                self._count_late(fault_index, due_s)
            self._bus.send(message, timeout=self.MAX_WALL_WAIT_S)

    def _work(self) -> None:
        upcoming = next(self._generated, None)
        while not self._stop_requested.is_set():
            now_s = self._clock.now_s()
            self._release_held(now_s)
            while upcoming is not None and upcoming[0] <= now_s:
                self._send_generated(upcoming[1], upcoming[2])
                upcoming = next(self._generated, None)
            with self._lock:
                next_held_s = self._held[0][0] if self._held else math.inf
            wake_s = min(next_held_s, upcoming[0] if upcoming is not None else math.inf)
            wait_s = self.MAX_WALL_WAIT_S if wake_s == math.inf else \
                min(self.MAX_WALL_WAIT_S, max(0.0, self._clock.wall_s_until(wake_s)))
            if self._wake.wait(wait_s):
                self._wake.clear()

    def _finish(self) -> None:
        self._release_held(math.inf)

    # -- on virtual time (harness.run.scheduler) --------------------------------------------------------------------

    def step(self, now_s: float) -> bool:
        """On virtual time (`start_stepped`): send the delayed frames and the flood and error frames due by
        `now_s`; True if it sent any."""
        if self._upcoming is _NOT_READ:
            self._upcoming = next(self._generated, None)
        held_before = len(self._held)
        self._release_held(now_s)
        did = len(self._held) != held_before
        while self._upcoming is not None and self._upcoming[0] <= now_s:
            self._send_generated(self._upcoming[1], self._upcoming[2])
            self._upcoming = next(self._generated, None)
            did = True
        return did

    def next_due_s(self) -> float:
        """On virtual time: when the next delayed, flood or error frame is due (math.inf: none)."""
        if self._upcoming is _NOT_READ:
            self._upcoming = next(self._generated, None)
        return min(self._held[0][0] if self._held else math.inf,
                   self._upcoming[0] if self._upcoming is not None else math.inf)


_NOT_READ = object()  # the generated frames' first item, before the injector has looked
