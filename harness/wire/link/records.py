"""What the link carries: a CAN frame, the unit's 1 Hz sample of the ten signals, the firmware's status.

Codec-independent records: a codec encodes them (`harness.wire.link.raw_can_v1` carries CAN frames with 11-bit
IDs only; `harness.wire.link.dtg_link_v2` all three) and its decoder yields them. Each validates itself on
construction and raises ValueError for what no link could carry (a 12-byte CAN payload, an ID wider than its
format). RTR, error and CAN FD frames are not modelled.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from harness.wire.signals import SIGNALS

__all__ = ["MAX_EXT_ID", "MAX_STD_ID", "UINT32_MAX", "CanFrame", "Record", "SampleRecord", "StatusRecord"]

MAX_STD_ID = 0x7FF
MAX_EXT_ID = 0x1FFFFFFF
UINT32_MAX = 0xFFFFFFFF


@dataclass(frozen=True)
class CanFrame:
    """One classic CAN data frame as the firmware saw it on the bus.

    `timestamp_s` is seconds since the start of the run (None when the link carries no time, as with
    raw-can-v1). RTR, error and CAN FD frames are not modelled.
    """

    can_id: int
    data: bytes
    is_extended: bool = False
    timestamp_s: float | None = None

    def __post_init__(self) -> None:
        data, can_id = self.data, self.can_id
        if type(data) is bytes and len(data) <= 8 and type(can_id) is int and (
                0 <= can_id <= (MAX_EXT_ID if self.is_extended else MAX_STD_ID)):
            return  # the common case, checked at once: nothing to convert, nothing to say
        if isinstance(self.data, (bytearray, memoryview)):
            object.__setattr__(self, "data", bytes(self.data))
        if not isinstance(self.data, bytes):
            raise ValueError(f"CAN data must be bytes, got {type(self.data).__name__}")
        if len(self.data) > 8:
            raise ValueError(f"CAN data is at most 8 bytes (classic CAN), got {len(self.data)}: {self.data.hex()}")
        if not isinstance(self.can_id, int) or isinstance(self.can_id, bool):
            raise ValueError(f"CAN id must be an int, got {self.can_id!r}")
        limit, width = (MAX_EXT_ID, 29) if self.is_extended else (MAX_STD_ID, 11)
        if not 0 <= self.can_id <= limit:
            kind = "extended" if self.is_extended else "standard"
            hint = "" if self.is_extended else " (set is_extended=True for a 29-bit ID)"
            raise ValueError(
                f"CAN id 0x{self.can_id:X} out of range for a {kind} frame: "
                f"{width}-bit IDs are 0x0..0x{limit:X}{hint}"
            )

    @property
    def dlc(self) -> int:
        return len(self.data)



@dataclass(frozen=True)
class SampleRecord:
    """The unit's 1 Hz sample of the ten signals, `values` in `SIGNALS` order; None means no reading.

    NaN is accepted and stored as None, so a record built from a NaN reading equals its decoded copy.
    """

    t_ms: int
    values: tuple[float | None, ...]

    def __post_init__(self) -> None:
        if not isinstance(self.t_ms, int) or isinstance(self.t_ms, bool) or self.t_ms < 0:
            raise ValueError(f"sample t_ms must be a non-negative int (ms since start of run), got {self.t_ms!r}")
        values = tuple(self.values)
        if len(values) != len(SIGNALS):
            raise ValueError(
                f"a sample carries {len(SIGNALS)} values ({', '.join(SIGNALS)}), got {len(values)}"
            )
        normalised: list[float | None] = []
        for name, value in zip(SIGNALS, values, strict=False):
            if value is None:
                normalised.append(None)
                continue
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                try:
                    value = float(value)  # numpy scalars
                except (TypeError, ValueError):
                    raise ValueError(f"sample value {name} must be a number or None, got {value!r}") from None
            normalised.append(None if math.isnan(value) else float(value))
        object.__setattr__(self, "values", tuple(normalised))

    @classmethod
    def from_signals(cls, t_ms: int, reading: dict[str, float]) -> SampleRecord:
        """Build from a name → value mapping (e.g. `Trace.reading_at`); extra keys are ignored."""
        missing = [name for name in SIGNALS if name not in reading]
        if missing:
            raise ValueError(f"reading lacks signals: {', '.join(missing)}")
        return cls(t_ms, tuple(reading[name] for name in SIGNALS))

    def to_signals(self) -> dict[str, float]:
        """Name → value, with NaN for no reading (the convention of `harness.wire.signals`)."""
        return {name: math.nan if v is None else v for name, v in zip(SIGNALS, self.values, strict=False)}


@dataclass(frozen=True)
class StatusRecord:
    """The firmware's heartbeat: its own counters, uint32 each (they wrap in the firmware, not here)."""

    t_ms: int
    requests_sent: int = 0
    requests_unanswered: int = 0
    can_frames_received: int = 0
    can_frames_dropped: int = 0  # lost in the firmware's receive queue, before the UART

    def __post_init__(self) -> None:
        for name in ("t_ms", "requests_sent", "requests_unanswered", "can_frames_received", "can_frames_dropped"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= UINT32_MAX:
                raise ValueError(f"status {name} must be an int in 0..{UINT32_MAX}, got {value!r}")


Record = CanFrame | SampleRecord | StatusRecord
