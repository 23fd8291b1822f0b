"""A run's result: its metrics, judgement and the accounting of every frame, sample and window; the errors of a run
that could not be judged."""
from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from harness.core.errors import DtgHilError
from harness.judge.metrics import Judgement, ScenarioMetrics, scenario_metrics
from harness.rig.bus_fault_injector import InjectorStats
from harness.rig.device_faults import FiredFault
from harness.rig.rigfile import RigConfig
from harness.rig.uart_tap import TapReport
from harness.wire.events import EventCollector
from harness.wire.signals import Trace
from harness.world.scenario import Scenario


class RunError(DtgHilError, RuntimeError):
    """The run itself failed (a part of the rig died or hung): neither a pass nor a model failure."""


class RunInterrupted(RunError):
    """The run was stopped by a signal (SIGTERM, SIGINT): its result.json says ERROR and its artifacts are kept; the
    caller stops too (the pytest plugin ends the session after it)."""


class LossError(RunError):
    """A run that went to its end but lost more than a tolerance allows, so it is no verdict on the unit. Raised
    after the artifacts are written; `stages` holds the (stage, lost, of) rows beyond the tolerance, `accounting`
    the run's accounting and `result` the run's figures (its `error` set: they are reported, never as a verdict)."""

    def __init__(self, message: str, stages: list[tuple[str, int, int]], accounting: Accounting,
                 result: RunResult | None = None):
        super().__init__(message)
        self.stages = stages
        self.accounting = accounting
        self.result = result


class DataLossError(LossError):
    """The chain lost more data than the scenario tolerates (`expect.data_loss_max_pct`, default 0) that no bus
    fault dropped: the run's verdict would rest on data the unit never got."""


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
    poll_cycles: int = 0
    poll_ticks_missed: int = 0
    poll_cycles_late: int = 0
    samples_late: int = 0  # J1939: samples the firmware sent a period or more after their tick
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
    restbus_frames_late: int = 0  # J1939 frames the rest-bus sent a period late or more (sent, and counted sent)
    restbus_requests_ignored: int = 0  # OBD-II requests the rest-bus declined on purpose (NaN reading, unknown PID)
    injector_frames_late: int = 0  # delayed, flood or error frames the injector sent late (it fell behind)
    gnss_epochs_sent: int = 0  # NMEA epochs the harness's GNSS feed wrote (a rig with a GNSS feed)
    gnss_epochs_skipped: int = 0  # epochs it skipped, having fallen behind
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
    # The STM32 is the harness's simulator (on every rig this version runs): its late polls are the rig's lag.
    firmware_simulated: bool = True
    # The rest-bus answers with the reading at the poll tick stamped on the request (a simulated rig's virtual CAN):
    # a poll cycle run late then reads the same values as one on time, and loses nothing.
    answers_at_request_stamp: bool = False

    def data_loss(self) -> list[tuple[str, int, int]]:
        """The whole loss table: the unit's stages (`unit_loss`), then the rig's own rows (`rig_loss`, each
        labelled `RIG_SIDE`)."""
        return self.unit_loss() + self.rig_loss()

    def rig_loss(self) -> list[tuple[str, int, int]]:
        """(stage, lost, of) for what the harness's own side failed to do in time on a run paced by the wall clock
        (on virtual time every row is 0). Each stage is labelled `RIG_SIDE`.

        - OBD-II requests left unanswered in time: the rest-bus is the harness's ECU, so every request the unit
          counted unanswered is the harness's, less those the rest-bus declined on purpose (a NaN reading: a
          sensor dropout; a PID it does not support), the answers bus faults dropped or delayed (on OBD-II
          every rest-bus frame is an answer) and the frames lost between the wire and the firmware (the unit's
          stage "CAN bus -> firmware": a loss is counted once, on one side);
        - rest-bus frames skipped (J1939: never sent), and those sent late;
        - bus fault injector frames late (the faults did not happen when the scenario said);
        - GNSS feed epochs skipped (the harness's NMEA feed fell behind);
        - a simulated STM32's poll cycles run late or missed, and its samples sent late: the simulator is harness
          code paced by the same wall clock. A cycle run late counts only where the rest-bus answers from the
          clock (a rig's CAN interface): with `answers_at_request_stamp` the late cycle reads its own tick's
          values and loses nothing. A real STM32 polling late is the unit's, and is counted there (`unit_loss`).
        """
        requests = self.obd_requests_answered + self.obd_requests_unanswered
        explained = (self.restbus_requests_ignored + self.injector_frames_dropped + self.injector_frames_delayed
                     + self._frames_not_received()[0])
        injected = self.injector_frames_delayed + self.injector_frames_added + self.injector_error_frames
        rows = [
            (RIG_SIDE + "OBD-II requests the rest-bus left unanswered in time (requests)",
             max(0, self.obd_requests_unanswered - explained), max(0, requests - self.restbus_requests_ignored)),
            (RESTBUS_SKIPPED, self.restbus_frames_skipped, self.restbus_frames_sent + self.restbus_frames_skipped),
            (RIG_SIDE + "rest-bus frames sent late (frames)", self.restbus_frames_late,
             self.restbus_frames_sent),
            (RIG_SIDE + "bus fault injector frames sent late (frames)", self.injector_frames_late, injected),
            (RIG_SIDE + "GNSS feed epochs skipped (epochs)", self.gnss_epochs_skipped,
             self.gnss_epochs_sent + self.gnss_epochs_skipped),
        ]
        if self.firmware_simulated:
            rows.append((RIG_SIDE + "STM32 simulator poll cycles or samples late (cycles or samples)",
                         *self._firmware_lateness()))
        return rows

    def _firmware_lateness(self) -> tuple[int, int]:
        """(late, of): OBD-II poll cycles run late (unless answered for their tick) or ticks missed; J1939 samples
        sent late."""
        if self.poll_cycles or self.poll_ticks_missed:
            late = 0 if self.answers_at_request_stamp else self.poll_cycles_late
            return late + self.poll_ticks_missed, self.poll_cycles + self.poll_ticks_missed
        return self.samples_late, self.samples_sent

    def _frames_not_received(self) -> tuple[int, int]:
        """(lost, expected): frames on the wire the firmware did not receive, less those it missed while down."""
        on_bus = self.restbus_frames_sent - self.injector_frames_dropped + self.injector_frames_added
        can_expected = on_bus - self.firmware_frames_missed_down
        return max(0, can_expected - self.firmware_frames_received), can_expected

    def unit_loss(self) -> list[tuple[str, int, int]]:
        """(stage, lost, of) for each stage of the chain from the wire on: data lost there that no fault the
        scenario asked for explains: the bus fault injector's drops and the frames a restarting firmware missed.
        A real STM32's late polls are the unit's too."""
        can_lost, can_expected = self._frames_not_received()
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
        rows = [
            ("CAN bus -> firmware (frames)", can_lost, can_expected),
            ("firmware -> UART (frames)", self.firmware_frames_dropped_uart, handled),
            ("UART link -> app (frames)", link_lost, max(self.link_frames_expected, self.link_frames_decoded)),
            ("samples -> app", samples_lost, samples_compared),
            ("EdgeAI lines -> harness", self.event_problems, self.event_lines + self.event_problems),
        ]
        if not self.firmware_simulated:
            rows.insert(1, ("firmware poll cycles or samples late (cycles or samples)", *self._firmware_lateness()))
        return rows


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
    cpu_s: float = 0.0  # this process's CPU seconds for the run (plant, chain, models, metrics, artifacts)
    # Why the run is an ERROR though it was judged (the rig fell behind, data was lost): then no verdict on the unit.
    error: str | None = None
    judged: bool = True  # False: the run ended before it was judged (`unjudged_result`): no figures, `error` says why
    firmware: dict | None = None  # a real STM32: the image flashed (its sha256), how, the bench's actions

    @property
    def verdict(self) -> str:
        """PASS or FAIL of the unit, or ERROR when the run is no verdict on it (`error`)."""
        return "ERROR" if self.error is not None else "PASS" if self.judgement.passed else "FAIL"

    @property
    def speed(self) -> float:
        """Scenario seconds per wall second achieved."""
        return self.trace.duration_s / self.wall_s if self.wall_s > 0 else math.inf

    @property
    def cpu_speed(self) -> float:
        """Scenario seconds per CPU second: what the run cost, whatever else the machine was doing."""
        return self.trace.duration_s / self.cpu_s if self.cpu_s > 0 else math.inf

    @property
    def app_on_host(self) -> bool:
        """True when the app ran on this host: its inference figures are host CPU time, not a phone's."""
        return self.rig.app_on_host


def unjudged_result(scenario: Scenario, rig: RigConfig, artifacts: Path, error: str, wall_s: float = 0.0) -> RunResult:
    """The result of a run that ended without a judgement (a part failed, the harness raised, a signal, its worker
    crashed): no figures, its `error` the cause, so the report lists it as an ERROR beside the judged runs."""
    empty = np.zeros(0)
    trace = Trace(t_s=empty, signals={}, truth={}, aux={}, events=[])
    metrics = scenario_metrics([], [], max_delay_s=scenario.expect.max_delay_s)
    return RunResult(scenario, rig, artifacts, trace, EventCollector(), metrics, Judgement(()), Accounting(), wall_s,
                     error=error, judged=False)


def fuel_truth(trace: Trace, window_s: int = 60):
    """The true mean fuel rate over the window that ends at sample `t_s` (what the fuel model estimates)."""
    per_second = trace.resample().aux["fuel_rate"]

    def at(t_s: float) -> float:
        end = int(round(t_s)) + 1
        return float(np.mean(per_second[max(end - window_s, 0):end]))

    return at


class RigLagError(LossError):
    """The rig fell behind: the harness's own side (its rest-bus, bus fault injector, a simulated STM32) lost more
    than the rig tolerates (`rig_loss_max_pct` in the rig file, default 0) on a run paced by the wall clock. Not a
    verdict on the unit, whatever the judgement said; `stages` holds the rig-side rows beyond the tolerance."""


#: The label of every rig-side row of the loss table (`Accounting.rig_loss`): the harness's shortfall, not the unit's.
RIG_SIDE = "rig-side: "


#: The rig-side row of data lost outright (never sent), not late: judged on every rig, the simulated one included.
RESTBUS_SKIPPED = RIG_SIDE + "rest-bus frames skipped (frames)"


def rig_lag_error(result: RunResult) -> RigLagError | None:
    """The `RigLagError` of a run whose rig-side loss (`Accounting.rig_loss`) is beyond the rig's
    `rig_loss_max_pct`, else None. Its message's first line carries every figure. On a rig paced by the wall clock
    (`RigConfig.paced_by_wall_clock`) every rig-side row is judged; on the simulated rig, to run on virtual time,
    only the frames the rest-bus skipped outright (`RESTBUS_SKIPPED`): its lateness is reported, not judged.

    >>> from types import SimpleNamespace as NS
    >>> run = NS(accounting=Accounting(obd_requests_answered=990, obd_requests_unanswered=10, poll_cycles=100),
    ...          rig=NS(name="loopback", rig_loss_max_pct=0.0, paced_by_wall_clock=True), artifacts=Path("reports/x"))
    >>> print(rig_lag_error(run))  # doctest: +NORMALIZE_WHITESPACE
    the rig fell behind (OBD-II requests the rest-bus left unanswered in time: 10 of 1000 requests (1 %);
    tolerance 0 %, rig_loss_max_pct of rig 'loopback'); not a verdict on the unit
      artifacts: reports/x
    """
    stages = result.accounting.rig_loss()
    if not result.rig.paced_by_wall_clock:
        stages = [row for row in stages if row[0] == RESTBUS_SKIPPED]
    tolerance_pct = result.rig.rig_loss_max_pct
    beyond = beyond_tolerance(stages, tolerance_pct)
    if not beyond:
        return None
    figures = []
    for stage, lost, of in beyond:
        what, _, unit = stage[len(RIG_SIDE):].rpartition(" (")
        figures.append(f"{what}: {lost} of {of} {unit.rstrip(')')} ({100.0 * lost / max(of, 1):.3g} %)")
    return RigLagError(
        f"the rig fell behind ({'; '.join(figures)}; tolerance {tolerance_pct:g} %, rig_loss_max_pct of rig "
        f"'{result.rig.name}'); not a verdict on the unit\n  artifacts: {result.artifacts}",
        beyond, result.accounting, result)


def beyond_tolerance(stages: list[tuple[str, int, int]], tolerance_pct: float) -> list[tuple[str, int, int]]:
    """The (stage, lost, of) rows that lost more than `tolerance_pct` % of their traffic."""
    return [(stage, lost, of) for stage, lost, of in stages if lost > 0 and 100.0 * lost / max(of, 1) > tolerance_pct]


def check_data_loss(result: RunResult) -> None:
    """Raise DataLossError when a stage lost more than the scenario tolerates (the artifacts are written)."""
    tolerance_pct = result.scenario.expect.data_loss_max_pct
    beyond = beyond_tolerance(result.accounting.unit_loss(), tolerance_pct)
    if not beyond:
        return
    acc = result.accounting
    lines = [f"{stage}: lost {lost} of {of} ({100.0 * lost / max(of, 1):.3g} %)" for stage, lost, of in beyond]
    error = DataLossError(
        f"{result.scenario.name}: data loss beyond tolerance, not a model failure: " + "; ".join(lines)
        + f" (tolerance {tolerance_pct:g} %, expect.data_loss_max_pct; loss the scenario's bus faults caused is "
        f"not counted)\n  rest-bus sent {acc.restbus_frames_sent} frames, bus faults dropped "
        f"{acc.injector_frames_dropped} and added {acc.injector_frames_added}, firmware received "
        f"{acc.firmware_frames_received}, forwarded {acc.firmware_frames_forwarded}; link decoded "
        f"{acc.link_frames_decoded}, {acc.link_frames_lost} lost by sequence, {acc.link_crc_errors} CRC errors; "
        f"samples {acc.samples_sent} sent, {acc.samples_received} received\n  artifacts: {result.artifacts}",
        beyond, acc, result)
    result.error = str(error)
    path = result.artifacts / "result.json"
    summary = json.loads(path.read_text())
    summary.update(passed=False, outcome="ERROR", verdict=f"error: {error}", error=str(error))
    path.write_text(json.dumps(summary, indent=1, default=str) + "\n")
    raise error
