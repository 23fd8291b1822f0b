"""The simulated firmware's counters: what it polled, received, forwarded and dropped, per cause; the run's accounting
reads them."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass
class FirmwareStats:
    """The firmware's counters.

    Accounting: every frame read off the bus is counted in `frames_received`; every frame the firmware
    handles (received ones, and its own requests when it forwards them) ends up in exactly one of
    `frames_forwarded`, `frames_unforwardable` or `frames_dropped_uart`.
    """

    requests_sent: int = 0
    requests_answered: int = 0
    requests_unanswered: int = 0
    answers_late: int = 0  # answers that came after their request was counted unanswered (still forwarded)
    request_send_errors: int = 0  # requests the bus refused to send (not counted in requests_sent)
    poll_cycles: int = 0
    poll_ticks_missed: int = 0  # 1 Hz poll ticks skipped because a cycle overran them
    poll_cycles_late: int = 0  # with catch_up_polls: cycles run late (a whole period or more) instead of skipped
    frames_received: int = 0  # CAN frames read off the bus
    frames_forwarded: int = 0  # CAN frames written to the UART (own requests included)
    frames_unforwardable: int = 0  # CAN frames the codec cannot carry (29-bit on raw-can-v1, RTR, CAN FD)
    frames_dropped_uart: int = 0  # CAN frames lost because the UART sink timed out
    samples_sent: int = 0
    samples_late: int = 0  # samples sent a period or more after their tick (the simulator fell behind)
    status_sent: int = 0
    bytes_written: int = 0
    uart_write_timeouts: int = 0
    restarts: int = 0  # restart() calls carried out (a reset: sequence from first_seq, decoded values lost)
    frames_missed_down: int = 0  # CAN frames on the bus while the firmware was down (never received)
    error_frames: int = 0  # error frames seen on the bus (not frames: not in frames_received, never forwarded)
