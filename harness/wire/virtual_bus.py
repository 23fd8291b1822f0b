"""What the simulated rig needs of python-can's virtual bus to run fast on virtual time.

python-can's `VirtualBus.send` deep-copies a frame once per receiver; `can.Message.__deepcopy__` copies its data
through `copy.deepcopy`, which costs more than the rest of the send. `Frame` is a `can.Message` that copies its
data bytes directly and sets the fields without `can.Message.__init__`: the same fields, the same values, a
fifth of the time. Every receiver still gets its own copy.

`SimBus` is python-can's virtual bus whose `send` copies a `Frame` with its own copy, not through
`copy.deepcopy` (whose bookkeeping costs as much as the copy); anything else it sends as `VirtualBus.send` does.
It shares python-can's channels, so it talks to any other virtual bus on the same channel.

`recv_now(bus)` is `bus.recv(timeout=0.0)` for the stages on virtual time, which look at their buses every round
of every instant (most looks find nothing): on a python-can virtual bus it takes the frame from the bus's own
queue and applies the bus's filters as `recv` does, without `recv`'s timeout loop and logging (most of its cost);
from an unbounded queue (python-can's default) it pops the deque under the `queue.Queue` directly, and `SimBus.send`
appends to it under the queue's lock and wakes a waiting reader, as `Queue.put` does without its `not_full` bookkeeping
(nobody waits for room in an unbounded queue). Any other bus is read with `recv`.

`SimBlfWriter` is python-can's BLF writer that works out a frame's BLF channel number once per channel name instead
of with a regular expression per frame (python-can's `channel2int`): the same bytes in the file.

What it does not change: the virtual bus itself (no arbitration, no bit timing, a queue per receiver), and any
frame python-can or a test builds as a plain `can.Message`.

>>> import copy
>>> frame = Frame(arbitration_id=0x7E8, is_extended_id=False, data=b"\\x04\\x41\\x0c", timestamp=1.5)
>>> twin = copy.deepcopy(frame)
>>> (type(twin).__name__, twin.arbitration_id, bytes(twin.data), twin.timestamp, twin.data is frame.data)
('Frame', 2024, b'\\x04A\\x0c', 1.5, False)
"""
from __future__ import annotations

import queue
import time
from typing import Any

import can
from can.interfaces.virtual import VirtualBus
from can.io import blf
from can.util import channel2int


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


class SimBus(VirtualBus):
    """A python-can virtual bus that sends a `Frame` without `copy.deepcopy` (see the module docstring).

    >>> a, b = SimBus(channel="doc-simbus", preserve_timestamps=True), SimBus(channel="doc-simbus")
    >>> a.send(Frame(arbitration_id=0x7DF, is_extended_id=False, data=b"\\x02\\x01\\x0c", timestamp=2.0))
    >>> got = b.recv(timeout=0)
    >>> (type(got).__name__, hex(got.arbitration_id), got.timestamp, got.channel, got.is_rx)
    ('Frame', '0x7df', 2.0, 'doc-simbus', True)
    >>> a.shutdown(); b.shutdown()
    """

    def send(self, msg: can.Message, timeout: float | None = None) -> None:
        if type(msg) is not Frame:
            return super().send(msg, timeout)
        self._check_if_open()
        timestamp = msg.timestamp if self.preserve_timestamps else time.time()
        own = self.queue
        all_sent = True
        for bus_queue in self.channel:  # python-can's VirtualBus.send, but for the copy
            if bus_queue is own and not self.receive_own_messages:
                continue
            copy = msg.__deepcopy__(None)
            copy.timestamp, copy.channel, copy.is_rx = timestamp, self.channel_id, bus_queue is not own
            if bus_queue.maxsize > 0:
                try:
                    bus_queue.put(copy, block=True, timeout=timeout)
                except queue.Full:
                    all_sent = False
                continue
            with bus_queue.mutex:  # Queue.put of an unbounded queue, without its not_full condition
                bus_queue.queue.append(copy)
                bus_queue.unfinished_tasks += 1
                if bus_queue.not_empty._waiters:  # a reader waits in recv (a waiter registers under this lock)
                    bus_queue.not_empty.notify()
        if not all_sent:
            raise can.CanOperationError("Could not send message to one or more recipients")
        return None


def recv_now(bus: can.BusABC) -> can.Message | None:
    """The next frame `bus` has received, or None when it has none; never waits (see the module docstring)."""
    if not (type(bus) is SimBus or isinstance(bus, VirtualBus)) or not bus._open:  # (an ABC's isinstance is slow)
        return bus.recv(timeout=0.0)  # a closed virtual bus raises there, as on any read
    frames = bus.queue
    pending = frames.queue  # the deque under the Queue (only this bus's reader takes from it): no lock to look
    if frames.maxsize > 0:  # a bounded queue: a sender may wait for room (Queue.get tells it)
        while pending:
            message = frames.get_nowait()
            if bus._matches_filters(message):
                return message
        return None
    while pending:  # unbounded: nobody waits for room, and deque.popleft is atomic against a sender's append
        message = pending.popleft()
        if bus._filters is None or bus._matches_filters(message):
            return message
    return None


class SimBlfWriter(can.BLFWriter):
    """python-can's `BLFWriter`, the channel number of a classic CAN frame looked up by channel name (see the module
    docstring); error and CAN FD frames are written by `BLFWriter` itself."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._channel_numbers: dict[Any, int] = {}

    def on_message_received(self, msg: can.Message) -> None:
        if msg.is_error_frame or msg.is_fd:
            return super().on_message_received(msg)
        try:
            channel = self._channel_numbers[msg.channel]
        except (KeyError, TypeError):  # a new name, or an unhashable channel
            number = channel2int(msg.channel)
            channel = self.channel if number is None else number + 1  # BLF channels start at 1
            try:
                self._channel_numbers[msg.channel] = channel
            except TypeError:
                pass
        arb_id = msg.arbitration_id | blf.CAN_MSG_EXT if msg.is_extended_id else msg.arbitration_id
        flags = blf.REMOTE_FLAG if msg.is_remote_frame else 0
        if not msg.is_rx:
            flags |= blf.DIR
        data = blf.CAN_MSG_STRUCT.pack(channel, flags, msg.dlc, arb_id, bytes(msg.data))
        self._add_object(blf.CAN_MESSAGE, data, msg.timestamp)
        return None
