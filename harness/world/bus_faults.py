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

from dataclasses import dataclass
from typing import Any

from harness.core.datafile import Checker, kind_of

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
#: The ranges of the numeric fields, as `Checker.number` takes them: the validator reads them, and so does the
#: scenario format's JSON Schema (`harness.world.scenario_schema`).
BUS_FAULT_NUMBERS: dict[str, dict[str, Any]] = {
    "at_s": {"lo": 0.0}, "duration_s": {"lo": 0.0, "lo_open": True},
    "probability": {"lo": 0.0, "hi": 1.0, "lo_open": True}, "burst_frames": {"lo": 1, "integer": True},
    "every_s": {"lo": 0.0, "lo_open": True}, "rate_hz": {"lo": 0.0, "hi": MAX_RATE_HZ, "lo_open": True},
    "delay_ms": {"lo": 0.0, "hi": MAX_DELAY_MS}, "jitter_ms": {"lo": 0.0, "hi": MAX_DELAY_MS},
}
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
        at_s = c.number(item, "at_s", path, None, **BUS_FAULT_NUMBERS["at_s"])
        duration = c.number(item, "duration_s", path, None, **BUS_FAULT_NUMBERS["duration_s"])
        fields: dict[str, Any] = {}
        if kind == "frame_loss":
            fields["ids"] = _read_ids(c, item, "ids", path)
            has_p, has_burst = "probability" in item, "burst_frames" in item or "every_s" in item
            if has_p == has_burst:
                c.report(path, "frame_loss needs either 'probability' (random loss) or 'burst_frames' and 'every_s' "
                               "(bursts)")
            elif has_p:
                fields["probability"] = c.number(item, "probability", path, 0.0, **BUS_FAULT_NUMBERS["probability"])
            else:
                for key in ("burst_frames", "every_s"):
                    if key not in item:
                        c.report(f"{path}.{key}", "is required with bursts")
                fields["burst_frames"] = int(c.number(item, "burst_frames", path, 0,
                                                      **BUS_FAULT_NUMBERS["burst_frames"]) or 0)
                fields["every_s"] = c.number(item, "every_s", path, 0.0, **BUS_FAULT_NUMBERS["every_s"]) or 0.0
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
            fields["rate_hz"] = c.number(item, "rate_hz", path, 0.0, **BUS_FAULT_NUMBERS["rate_hz"]) or 0.0
        elif kind == "delay":
            fields["ids"] = _read_ids(c, item, "ids", path)
            if "delay_ms" not in item:
                c.report(f"{path}.delay_ms", "is required")
            fields["delay_ms"] = c.number(item, "delay_ms", path, 0.0, **BUS_FAULT_NUMBERS["delay_ms"]) or 0.0
            fields["jitter_ms"] = c.number(item, "jitter_ms", path, 0.0, **BUS_FAULT_NUMBERS["jitter_ms"]) or 0.0
        elif kind == "error_frames":
            if "rate_hz" not in item:
                c.report(f"{path}.rate_hz", "is required")
            fields["rate_hz"] = c.number(item, "rate_hz", path, 0.0, **BUS_FAULT_NUMBERS["rate_hz"]) or 0.0
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


# --- the injector on the bus (a thread) ----------------------------------------------------------------------------


