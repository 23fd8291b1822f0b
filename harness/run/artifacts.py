"""What a run leaves in its folder: result.json (metrics, verdict, loss accounting), labels.json, the plot, and for a
run that could not be judged, result.json with the error and how far the scenario got.

Every run has a verdict in its folder from its first moment: `write_started_result` writes an ERROR result.json
("the run did not finish") before anything starts, which the run's own result replaces; a process killed outright
(kill -9, a crashed pytest-xdist worker) leaves that one. Each run's folder is its own (`claim_folder`): a second run
of the same scenario in a session gets `<name>-2`, never the first one's folder.
"""
from __future__ import annotations

import json
import os
import time
from dataclasses import asdict
from pathlib import Path

from harness.judge.metrics import ScenarioMetrics
from harness.judge.metrics.expect import NO_BEHAVIOUR_WINDOW
from harness.judge.result import RIG_SIDE, RunError, RunResult, fuel_truth
from harness.rig.rigfile import RigConfig
from harness.run.watch import Watch
from harness.wire.events import FuelResult
from harness.world.scenario import Scenario

#: The error of a run whose process ended before it was judged (the result.json `write_started_result` leaves).
UNFINISHED = "the run did not finish: its process ended (killed, or crashed) before the run was judged"


def claim_folder(parent: Path, name: str) -> Path:
    """A new folder `parent/name` for one run's artifacts, or `name-2`, `name-3`, ... when that exists (made here, at
    once: two processes never get the same one)."""
    parent.mkdir(parents=True, exist_ok=True)
    for n in range(1, 100_000):
        folder = parent / (name if n == 1 else f"{name}-{n}")
        try:
            folder.mkdir()
        except FileExistsError:
            continue
        return folder
    raise RunError(f"no free artifacts folder for {name} in {parent}")


def write_started_result(scenario: Scenario, rig: RigConfig, artifacts: Path, watch: Watch) -> None:
    """The result.json a run has until it ends: ERROR `UNFINISHED`, with this process's id (the run's own result,
    or error, replaces it)."""
    write_error_result(scenario, rig, artifacts, RunError(UNFINISHED), watch, finished=False)


def unfinished_runs(session: Path, scenario_name: str) -> list[Path]:
    """The folders under `session` whose run of `scenario_name` never finished (its result.json is still
    `write_started_result`'s), oldest first."""
    found = []
    for result in session.glob("*/result.json"):
        try:
            summary = json.loads(result.read_text())
        except (OSError, ValueError):
            continue
        if summary.get("finished") is False and "ended_by" not in summary and summary.get("scenario") == scenario_name:
            found.append(result.parent)
    return sorted(found, key=lambda folder: (folder / "result.json").stat().st_mtime)


def mark_crashed(folder: Path, error: str) -> None:
    """Give an unfinished run's result.json the cause its process could not write (e.g. its worker crashed)."""
    path = folder / "result.json"
    summary = json.loads(path.read_text())
    summary.update(verdict=f"error: {error}", error=error, ended_by=error)
    path.write_text(json.dumps(summary, indent=1, default=str) + "\n")


def write_error_result(scenario: Scenario, rig: RigConfig, artifacts: Path, error: RunError, watch: Watch,
                       finished: bool = True) -> None:
    """result.json of a run that failed: the verdict "error: ...", what the parts had counted, the faults fired.
    `finished` False: written as the run starts (`write_started_result`)."""
    summary: dict = {"scenario": scenario.name, "scenario_sha256": scenario.sha256, "rig": rig.name,
                     "passed": False, "outcome": "ERROR", "verdict": f"error: {error}", "error": str(error),
                     "finished": finished, "pid": os.getpid(),
                     "scenario_file": str(scenario.path) if scenario.path is not None else None,
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


def behaviour_json(metrics: ScenarioMetrics) -> dict:
    """The run's behaviour figures for result.json: macro-F1, accuracy and the confusion matrix of the judged windows
    (`harness.judge.metrics.behaviour`), or why there are none ("applicable": false, never a 0)."""
    score = metrics.behaviour
    if score is None or score.n == 0:
        return {"applicable": False, "why": metrics.behaviour_not_judged if score is None else NO_BEHAVIOUR_WINDOW}
    return {"applicable": True, **score.to_json()}


def write_artifacts(result: RunResult) -> None:
    from harness.report.plot import render_run

    labels = [asdict(e) for e in result.trace.events]
    (result.artifacts / "labels.json").write_text(json.dumps(labels, indent=1) + "\n")
    summary = {
        "scenario": result.scenario.name,
        "finished": True,
        "scenario_sha256": result.scenario.sha256,
        "rig": result.rig.name,
        "passed": result.judgement.passed and result.error is None,
        "outcome": result.verdict,
        "verdict": result.judgement.message if result.error is None else f"error: {result.error}",
        "criteria": [asdict(c) for c in result.judgement.criteria],
        "behaviour": behaviour_json(result.metrics),
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
    if result.firmware is not None:
        summary["firmware"] = result.firmware
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
