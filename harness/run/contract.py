"""Running a scenario for the contract suite: the rig as the suite runs it, and the run's evidence."""
from __future__ import annotations

import dataclasses
from pathlib import Path

from firmware_sim.phone.app import AppOptions
from harness.inference.models import ModelSet
from harness.judge.contract import ContractRun
from harness.rig.rigfile import SIMULATED, RigConfig


def contract_rig(rig: RigConfig) -> RigConfig:
    """The rig as the contract suite runs it: with the UART tap stand-in when the STM32 is simulated and the rig
    names no tap (the harness then sees the same bytes as the app). A host build's UART is a pty the harness relays
    to the app: the tap stand-in sees the same bytes there too."""
    if rig.stm32_kind != "real" and not rig.uart_tap:
        return dataclasses.replace(rig, uart_tap=SIMULATED)
    return rig


def run_for_contract(scenario, rig: RigConfig, models: ModelSet, artifacts: Path,
                     app_options: AppOptions | None = None) -> ContractRun:
    """Run `scenario` on `contract_rig(rig)` with the app logging `features` lines (or as `app_options` says)."""
    from harness.judge.result import LossError, RunError
    from harness.run.chain import run_scenario
    from harness.wire.events import EventCollector

    rig = contract_rig(rig)
    options = app_options or AppOptions(debug_features=True)
    result, error = None, None
    try:
        # The silence watchdog stays on (DEFAULT_MAX_SILENCE_S): an app that stops logging ends the run, and the
        # reporting check names it; the checks still judge what the app logged before and what the tap saw.
        result = run_scenario(scenario, rig, models, artifacts, app_options=options)
        events = result.collector.events
    except RunError as failed:
        # The app lost the link's data (a LossError: e.g. it rejects every frame by CRC) or went silent. The run's
        # artifacts are kept: the checks judge what the app logged and what the tap saw, and name the cause.
        error = str(failed).split("\n")[0]
        result = failed.result if isinstance(failed, LossError) else None
        collector = EventCollector()
        log = artifacts / "events.log"
        collector.feed(log.read_bytes() if log.is_file() else b"")
        collector.flush()
        events = collector.events
    tap_file = artifacts / "uart.bin"
    uart = tap_file.read_bytes() if rig.uart_tap and tap_file.is_file() else None
    run = ContractRun.from_events(scenario.name, events, uart, rig.codec, rig.profile)
    run.result, run.error = result, error
    return run
