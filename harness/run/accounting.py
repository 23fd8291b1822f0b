"""The run's accounting (`harness.judge.result.Accounting`): where every frame, sample and window went, read from the
chain's parts' own counters at the end of a run."""
from __future__ import annotations

from firmware_sim.phone.app import AppSim
from firmware_sim.stm32 import Stm32Sim
from harness.judge.result import Accounting
from harness.rig.bus_fault_injector import BusFaultInjector
from harness.rig.device_faults import UartLine
from harness.rig.gnss_feed import NmeaFeed
from harness.rig.restbus import RestBus
from harness.rig.rigfile import RigConfig
from harness.wire.events import AppStatus, EventCollector

__all__ = ["chain_accounting"]


def chain_accounting(rig: RigConfig, firmware: Stm32Sim, app: AppSim | None, rest_bus: RestBus,
                bus_injector: BusFaultInjector | None, feed: NmeaFeed | None, line: UartLine,
                collector: EventCollector, simulated_can: bool) -> Accounting:
    """Where every frame, sample and window went, from the parts' own counters (a phone's app: its status lines)."""
    events = collector.events
    fw = firmware.stats
    if app is not None:
        link = {k: v for k, v in vars(app.link_stats).items() if isinstance(v, int)}
        samples, windows = app.stats.samples_received, app.stats.windows_scored
    else:  # the app on a phone reports its counters in its status lines
        status = next((e for e in reversed(events) if isinstance(e, AppStatus)), None)
        link = dict(status.link) if status else {}
        samples, windows = (status.samples_received, status.windows_scored) if status else (0, 0)
        samples_by_status = firmware.samples_sent_until(status.t_s) if status and status.t_s is not None else 0
    accounting = Accounting(
        can_frames_sent=rest_bus.stats.frames_sent + fw.requests_sent,
        obd_requests_answered=fw.requests_answered, obd_requests_unanswered=fw.requests_unanswered,
        firmware_frames_received=fw.frames_received, firmware_frames_forwarded=fw.frames_forwarded,
        firmware_frames_unforwardable=fw.frames_unforwardable, link_frames_decoded=link.get("frames_decoded", 0),
        link_crc_errors=link.get("crc_errors", 0), link_frames_lost=link.get("frames_lost") or 0,
        samples_sent=fw.samples_sent, poll_ticks_missed=fw.poll_ticks_missed, poll_cycles_late=fw.poll_cycles_late,
        poll_cycles=fw.poll_cycles, samples_late=fw.samples_late, restbus_frames_late=rest_bus.stats.frames_late,
        restbus_requests_ignored=rest_bus.stats.requests_ignored, firmware_simulated=rig.stm32_kind == "simulated",
        answers_at_request_stamp=simulated_can,
        gnss_epochs_sent=feed.stats.epochs if feed is not None else 0,
        gnss_epochs_skipped=feed.stats.epochs_skipped if feed is not None else 0,
        samples_received=samples, windows_scored=windows, event_lines=len(events),
        event_problems=len(collector.problems),
        restbus_frames_sent=rest_bus.stats.frames_sent, restbus_frames_skipped=rest_bus.stats.frames_skipped,
        firmware_error_frames=fw.error_frames, firmware_frames_dropped_uart=fw.frames_dropped_uart,
        link_frames_expected=fw.frames_forwarded + fw.samples_sent + fw.status_sent if app is not None else 0,
        firmware_restarts=fw.restarts, firmware_frames_missed_down=fw.frames_missed_down,
        link_sequence_resets=link.get("sequence_resets") or 0, uart_bytes_dropped=line.bytes_dropped,
        sample_gaps=app.stats.sample_gaps if app is not None else 0,
        seconds_without_sample=app.stats.seconds_without_sample if app is not None else 0,
        samples_sent_until_app_counters=None if app is not None else samples_by_status,
    )
    if bus_injector is not None:
        done = bus_injector.stats
        accounting.can_frames_sent += done.frames_added - done.frames_dropped  # what reached the wire
        accounting.injector_frames_dropped = done.frames_dropped
        accounting.injector_frames_delayed = done.frames_delayed
        accounting.injector_frames_added, accounting.injector_error_frames = done.frames_added, done.error_frames
        accounting.injector_frames_late = done.frames_late
    return accounting
