"""What the simulated rig needs of python-can's virtual bus to run fast on virtual time.

python-can's `VirtualBus.send` deep-copies a frame once per receiver; `can.Message.__deepcopy__` copies its data
through `copy.deepcopy`, which costs more than the rest of the send. `Frame` is a `can.Message` that copies its
data bytes directly and sets the fields without `can.Message.__init__`: the same fields, the same values, a
fifth of the time. Every receiver still gets its own copy.

`has_frames(bus)` tells whether a bus has a frame waiting without a `recv`: on virtual time the stages look at
their buses every round of every instant, and most looks find nothing. For a bus that is not a python-can virtual
bus it answers True (only `recv` can tell).

What it does not change: the virtual bus itself (no arbitration, no bit timing, a queue per receiver), and any
frame python-can or a test builds as a plain `can.Message`.

>>> import copy
>>> frame = Frame(arbitration_id=0x7E8, is_extended_id=False, data=b"\\x04\\x41\\x0c", timestamp=1.5)
>>> twin = copy.deepcopy(frame)
>>> (type(twin).__name__, twin.arbitration_id, bytes(twin.data), twin.timestamp, twin.data is frame.data)
('Frame', 2024, b'\\x04A\\x0c', 1.5, False)
"""
from __future__ import annotations

from typing import Any

import can
from can.interfaces.virtual import VirtualBus


class Frame(can.Message):
    """A `can.Message` whose deep copy copies the data bytes directly (see the module docstring)."""

    __slots__ = ()

    def __deepcopy__(self, memo: dict[int, Any] | None) -> Frame:
        # Fields set directly, not through can.Message.__init__ (its keyword handling costs more than the copy).
        twin = Frame.__new__(Frame)
        twin.timestamp, twin.arbitration_id, twin.is_extended_id = self.timestamp, self.arbitration_id, \
            self.is_extended_id
        twin.is_remote_frame, twin.is_error_frame, twin.channel = self.is_remote_frame, self.is_error_frame, \
            self.channel
        twin.dlc, twin.data, twin.is_fd, twin.is_rx = self.dlc, bytearray(self.data), self.is_fd, self.is_rx
        twin.bitrate_switch, twin.error_state_indicator = self.bitrate_switch, self.error_state_indicator
        return twin


def has_frames(bus: can.BusABC) -> bool:
    """False only when `bus` is a python-can virtual bus with nothing queued for it."""
    queue = getattr(bus, "queue", None) if isinstance(bus, VirtualBus) else None
    return queue is None or not queue.empty()
