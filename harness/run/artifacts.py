"""What a run leaves in its folder: result.json (metrics, verdict, loss accounting), labels.json, the plot, and for a
run that could not be judged, result.json with the error and how far the scenario got."""
from __future__ import annotations

import json
import time
from dataclasses import asdict
from pathlib import Path

from harness.judge.result import RIG_SIDE, RunError, RunResult, fuel_truth
from harness.rig.rigfile import RigConfig
from harness.run.watch import Watch
from harness.wire.events import FuelResult
from harness.world.scenario import Scenario


def write_error_result(scenario: Scenario, rig: RigConfig, artifacts: Path, error: RunError, watch: Watch) -> None:
    """result.json of a run that failed: the verdict "error: ...", what the parts had counted, the faults fired."""
    summary: dict = {"scenario": scenario.name, "scenario_sha256": scenario.sha256, "rig": rig.name,
                     "passed": False, "outcome": "ERROR", "verdict": f"error: {error}", "error": str(error),
                     "wall_s": round(time.monotonic() - watch.started_wall_s, 3)}
    if watch.clock is not None:
        summary["scenario_s_reached"] = round(watch.clock.now_s(), 1)
    counters: dict = {}
    if watch.firmware is not None:
        counters["firmware"] = asdict(watch.firmware.stats)
    if watch.app is not None:
        counters["app"] = asdict(watch.app.stats)
        counters["link"] = {k: v for k, v in vars(watch.app.link_stats).items() if isinstance(v, int)}
    if watch.line is not None:
        counters["uart_bytes_dropped"] = watch.line.bytes_dropped
    if watch.collector is not None:
        stats = watch.collector.stats()
        counters["events"] = {"lines": stats.lines, "events": stats.events, "problems": stats.problems}
    summary["counters"] = counters
    if watch.injector is not None:
        summary["device_faults"] = [fired.to_json() for fired in watch.injector.fired]
    try:
        (artifacts / "result.json").write_text(json.dumps(summary, indent=1, default=str) + "\n")
    except OSError:
        pass  # the run's own error is the one to report


def write_artifacts(result: RunResult) -> None:
    from harness.report.plot import render_run

    labels = [asdict(e) for e in result.trace.events]
    (result.artifacts / "labels.json").write_text(json.dumps(labels, indent=1) + "\n")
    summary = {
        "scenario": result.scenario.name,
        "scenario_sha256": result.scenario.sha256,
        "rig": result.rig.name,
        "passed": result.judgement.passed and result.error is None,
        "outcome": result.verdict,
        "verdict": result.judgement.message if result.error is None else f"error: {result.error}",
        "criteria": [asdict(c) for c in result.judgement.criteria],
        "accounting": asdict(result.accounting),
        "data_loss": [{"stage": stage, "lost": lost, "of": of, "side": "rig" if stage.startswith(RIG_SIDE) else "unit"}
                      for stage, lost, of in result.accounting.data_loss()],
        "data_loss_max_pct": result.scenario.expect.data_loss_max_pct,
        "rig_loss_max_pct": result.rig.rig_loss_max_pct,
        "rig_loss_judged": "all" if result.rig.paced_by_wall_clock else "skipped frames only",
        "scenario_s": result.trace.duration_s,
        # Wall time and CPU time of the run: how long it took here, not what it found (on virtual time every
        # other figure is the same on any machine).
        "wall_s": round(result.wall_s, 3),
        "speed_x": round(result.speed, 1),
        "virtual_time": result.rig.on_virtual_time,
    }
    if result.error is not None:
        summary["error"] = result.error
    if result.bus_faults is not None:
        summary["bus_faults"] = [asdict(count) for count in result.bus_faults.faults]
    if result.faults:
        summary["device_faults"] = [fired.to_json() for fired in result.faults]
    if result.tap is not None:
        tap = result.tap
        summary["uart_tap"] = {
            "frames_sent": tap.frames_sent, "frames_forwarded": tap.frames_forwarded, "missing": len(tap.missing),
            "unexpected": len(tap.unexpected), "crc_errors": tap.crc_errors, "frames_lost": tap.frames_lost,
            "latency_ms": tap.latency.named("_ms", 50, 99), "report": str(tap),
        }
    (result.artifacts / "result.json").write_text(json.dumps(summary, indent=1, default=str) + "\n")
    events = result.collector.events  # rebuilt from the collector's columns on each read: read once
    fuel = [(e.t_s, e.fuel_rate_lph) for e in events if isinstance(e, FuelResult)]
    render_run(result.trace, events, result.artifacts / "run.png",
               f"{result.scenario.name} on {result.rig.name}: {result.verdict}",
               fuel_truth(result.trace) if fuel else None)
