"""What a test engineer reads after a run: tables per scenario and per anomaly type.

Plain text for the terminal (the pytest plugin prints it at the end of a session, `make sim` shows it). Numbers
come from `harness.metrics`; nothing is recomputed here. A value that was not measured prints as "-".
"""
from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence

from harness.metrics import delay_stats
from harness.run import RunResult


def _f(value: float | None, digits: int = 2) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def scenario_table(results: Sequence[RunResult]) -> str:
    header = (f"{'scenario':<32}{'verdict':>8}{'events':>7}{'recall':>8}{'FA/h':>7}{'delay p50':>10}"
              f"{'p90 s':>7}{'fuel R2':>8}{'MAE L/h':>8}{'infer p50':>10}{'p99 ms':>8}{'e2e p50':>9}{'p99 ms':>8}"
              f"{'speed':>8}")
    lines = [header, "-" * len(header)]
    for r in results:
        m = r.metrics
        d = m.detection
        fuel, infer, e2e = m.fuel, m.latency, m.end_to_end
        lines.append(
            f"{r.scenario.name[:31]:<32}{'PASS' if r.judgement.passed else 'FAIL':>8}{d.n_events:>7}"
            f"{_f(d.overall.recall):>8}{_f(d.false_alarms.per_h):>7}{_f(d.delay.p50_s, 0):>10}{_f(d.delay.p90_s, 0):>7}"
            f"{_f(fuel.r2 if fuel else None):>8}{_f(fuel.mae_lph if fuel else None):>8}"
            f"{_f(infer.p50_ms if infer else None, 3):>10}{_f(infer.p99_ms if infer else None, 3):>8}"
            f"{_f(e2e.p50_ms if e2e else None, 1):>9}{_f(e2e.p99_ms if e2e else None, 1):>8}"
            f"{r.speed:>7.0f}x"
        )
    return "\n".join(lines)


def anomaly_type_table(results: Sequence[RunResult]) -> str:
    """Recall and delay per anomaly type, pooled over every scenario run."""
    pooled: dict[str, list] = defaultdict(list)
    for r in results:
        for detection in r.metrics.detection.detections:
            pooled[detection.event.type].append(detection)
    header = f"{'anomaly type':<26}{'events':>7}{'detected':>9}{'recall':>8}{'delay p50 s':>12}{'p90 s':>7}"
    lines = [header, "-" * len(header)]
    for kind in sorted(pooled):
        detections = pooled[kind]
        found = [d for d in detections if d.detected]
        delay = delay_stats([d.detection_delay_s for d in found])
        lines.append(f"{kind:<26}{len(detections):>7}{len(found):>9}{len(found) / len(detections):>8.2f}"
                     f"{_f(delay.p50_s, 0):>12}{_f(delay.p90_s, 0):>7}")
    return "\n".join(lines)


def speed_line(results: Sequence[RunResult]) -> str:
    scenario_s = sum(r.trace.duration_s for r in results)
    wall_s = sum(r.wall_s for r in results)
    rigs = ", ".join(sorted({f"'{r.rig.name}'" for r in results}))
    return (f"rig {rigs}: {scenario_s / 3600:.2f} h of scenario in {wall_s:.0f} s of wall time = "
            f"{scenario_s / wall_s:.0f} scenario-seconds per wall-second "
            f"(slowest scenario {min(r.speed for r in results):.0f}x)") if wall_s > 0 else ""


def full_report(results: Sequence[RunResult]) -> str:
    return "\n\n".join([scenario_table(results), anomaly_type_table(results), speed_line(results)])
