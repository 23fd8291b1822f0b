"""A run's result: its metrics, judgement and the accounting of every frame, sample and window; the errors of a run
that could not be judged."""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from harness.core.errors import DtgHilError
from harness.judge.metrics import Judgement, ScenarioMetrics
from harness.rig.device_faults import FiredFault
from harness.rig.rigfile import RigConfig
from harness.rig.uart_tap import TapReport
from harness.wire.events import EventCollector
from harness.wire.signals import Trace
from harness.world.bus_faults import InjectorStats
from harness.world.scenario import Scenario


class RunError(DtgHilError, RuntimeError):
    """The run itself failed (a part of the rig died or hung): neither a pass nor a model failure."""


class DataLossError(RunError):
    """The chain lost more data than the scenario tolerates (`expect.data_loss_max_pct`, default 0) that no bus
    fault dropped: the run's verdict would rest on data the unit never got. Raised after the artifacts are
    written; `stages` holds the (stage, lost, of) figures and `accounting` the run's accounting."""

    def __init__(self, message: str, stages: list[tuple[str, int, int]], accounting: Accounting):
        super().__init__(message)
        self.stages = stages
        self.accounting = accounting


@dataclass
class Accounting:
    """Where every frame, sample and window went, from the rest-bus to the harness."""

    can_frames_sent: int = 0
    obd_requests_answered: int = 0
    obd_requests_unanswered: int = 0
    firmware_frames_received: int = 0
    firmware_frames_forwarded: int = 0
    firmware_frames_unforwardable: int = 0
    link_frames_decoded: int = 0
    link_crc_errors: int = 0
    link_frames_lost: int = 0
    samples_sent: int = 0
    poll_ticks_missed: int = 0
    poll_cycles_late: int = 0
    samples_received: int = 0
    windows_scored: int = 0
    event_lines: int = 0
    event_problems: int = 0
    # What device and link faults cost (harness.rig.device_faults): restarts, outages, and the gaps they left.
    firmware_restarts: int = 0
    firmware_frames_missed_down: int = 0  # CAN frames on the bus while the firmware was down
    link_sequence_resets: int = 0  # the link's sequence number went backwards (a firmware restart)
    uart_bytes_dropped: int = 0  # bytes written while the UART was disconnected
    sample_gaps: int = 0  # times the app's samples skipped a second or more
    seconds_without_sample: int = 0  # whole seconds those gaps left without a sample
    # Bus faults (harness.world.bus_faults): what the rest-bus transmitted, and what the injector did to it.
    restbus_frames_sent: int = 0
    restbus_frames_skipped: int = 0  # J1939 frames the rest-bus skipped, having fallen behind (a host too slow)
    injector_frames_dropped: int = 0
    injector_frames_delayed: int = 0
    injector_frames_added: int = 0
    injector_error_frames: int = 0
    firmware_error_frames: int = 0
    firmware_frames_dropped_uart: int = 0
    link_frames_expected: int = 0  # frames the firmware wrote to the UART (CAN, samples, status); 0: not known
    # An app on a phone reports its counters in status lines: the samples the firmware had sent by the time of the
    # last one (None: the app's counters are read at the end of the run).
    samples_sent_until_app_counters: int | None = None

    def data_loss(self) -> list[tuple[str, int, int]]:
        """(stage, lost, of) for each stage of the chain: data lost there that no fault the scenario asked for
        explains: the bus fault injector's drops and the frames a restarting firmware missed."""
        on_bus = self.restbus_frames_sent - self.injector_frames_dropped + self.injector_frames_added
        can_expected = on_bus - self.firmware_frames_missed_down
        handled = self.firmware_frames_forwarded + self.firmware_frames_dropped_uart
        link_lost = self.link_frames_lost if self.link_frames_expected == 0 else \
            max(self.link_frames_lost, self.link_frames_expected - self.link_frames_decoded)
        samples_compared = self.samples_sent if self.samples_sent_until_app_counters is None \
            else self.samples_sent_until_app_counters
        samples_lost = max(0, samples_compared - self.samples_received)
        if self.uart_bytes_dropped or self.firmware_restarts:
            # Device faults (a UART cut, a restart) lose link frames and samples by design, in amounts their bytes
            # do not tell exactly: with them, the link and sample stages are not judged.
            link_lost = samples_lost = 0
        return [
            ("trace -> rest-bus (frames)", self.restbus_frames_skipped,
             self.restbus_frames_sent + self.restbus_frames_skipped),
            ("CAN bus -> firmware (frames)", max(0, can_expected - self.firmware_frames_received), can_expected),
            ("firmware -> UART (frames)", self.firmware_frames_dropped_uart, handled),
            ("UART link -> app (frames)", link_lost, max(self.link_frames_expected, self.link_frames_decoded)),
            ("samples -> app", samples_lost, samples_compared),
            ("EdgeAI lines -> harness", self.event_problems, self.event_lines + self.event_problems),
        ]


@dataclass
class RunResult:
    scenario: Scenario
    rig: RigConfig
    artifacts: Path
    trace: Trace
    collector: EventCollector
    metrics: ScenarioMetrics
    judgement: Judgement
    accounting: Accounting
    wall_s: float
    model_types: tuple[str, ...] = field(default_factory=tuple)
    tap: TapReport | None = None  # the UART tap's cross-check against the CAN log, when the rig has a tap
    faults: tuple[FiredFault, ...] = ()  # the device faults injected, as they happened
    bus_faults: InjectorStats | None = None  # what each of the scenario's bus faults did, when it has any

    @property
    def speed(self) -> float:
        """Scenario seconds per wall second achieved."""
        return self.trace.duration_s / self.wall_s if self.wall_s > 0 else math.inf


def fuel_truth(trace: Trace, window_s: int = 60):
    """The true mean fuel rate over the window that ends at sample `t_s` (what the fuel model estimates)."""
    per_second = trace.resample().aux["fuel_rate"]

    def at(t_s: float) -> float:
        end = int(round(t_s)) + 1
        return float(np.mean(per_second[max(end - window_s, 0):end]))

    return at
