"""The bus fault injector: a python-can bus between the rest-bus and the vehicle bus that plays a scenario's bus faults
(harness.world.bus_faults) on the frames passing through, and counts what each fault did. What it does not model is
said in harness.world.bus_faults."""
from __future__ import annotations

import heapq
import itertools
import math
import random
import threading
from collections.abc import Callable
from dataclasses import dataclass, field, replace

import can
from can.interfaces.virtual import VirtualBus

from harness.core.worker import Worker, WorkerError
from harness.world.bus_faults import MAX_STANDARD_ID, SILENCEABLE_SIGNALS, BusFault


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
