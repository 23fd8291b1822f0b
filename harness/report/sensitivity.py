"""A sweep's results: sensitivity curves per anomaly type, their judgement, table and plot."""
from __future__ import annotations

import html
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from harness.core.stats import percentiles
from harness.report.numbers import fixed_or_dash
from harness.world.sweep import SweepSpec

if TYPE_CHECKING:
    from harness.judge.result import RunResult


@dataclass(frozen=True)
class CurvePoint:
    base: str
    anomaly_type: str
    severity: float
    runs: int
    events: int
    detected: int
    delay_p50_s: float | None
    delay_p90_s: float | None

    @property
    def recall(self) -> float:
        return self.detected / self.events if self.events else float("nan")


def sensitivity(results: Sequence[RunResult]) -> dict[str, list[CurvePoint]]:
    """Sweep base name -> curve points (by anomaly type, then severity), from the runs of its variants that are a
    verdict (an ERROR run, e.g. one whose rig fell behind, is no point of the curve)."""
    pooled: dict[tuple[str, str, float], list] = defaultdict(list)
    runs: dict[tuple[str, str, float], set] = defaultdict(set)
    for r in results:
        base = getattr(r.scenario, "sweep_base", "")
        if not base or getattr(r, "error", None) is not None:
            continue
        for detection in r.metrics.detection.detections:
            key = (base, detection.event.type, round(float(detection.event.severity), 6))
            pooled[key].append(detection)
            runs[key].add(r.scenario.name)
    out: dict[str, list[CurvePoint]] = defaultdict(list)
    for key in sorted(pooled):
        detections = pooled[key]
        found = [d for d in detections if d.detected]
        delay = percentiles([d.detection_delay_s for d in found])
        out[key[0]].append(CurvePoint(key[0], key[1], key[2], len(runs[key]), len(detections), len(found),
                                      delay.p50, delay.p90))
    return dict(out)


def _by_type(points: list[CurvePoint]) -> dict[str, list[CurvePoint]]:
    curves: dict[str, list[CurvePoint]] = defaultdict(list)
    for p in points:
        curves[p.anomaly_type].append(p)
    return {k: sorted(v, key=lambda p: p.severity) for k, v in sorted(curves.items())}


def judge_curve(spec: SweepSpec, points: list[CurvePoint]) -> list[str]:
    """What the curve misses of the sweep's `expect:` (empty: it meets it, or there is nothing to judge)."""
    failures = []
    for kind, curve in _by_type(points).items():
        top = curve[-1]
        if spec.recall_at_max_severity_min is not None and top.recall < spec.recall_at_max_severity_min:
            failures.append(f"{kind}: recall {top.recall:.2f} at severity {top.severity:g} (the highest); "
                            f"required >= {spec.recall_at_max_severity_min:g}")
        if spec.recall_from_severity_min is not None:
            lowest, required = spec.recall_from_severity_min
            short = [p for p in curve if p.severity >= lowest - 1e-9 and p.recall < required]
            failures += [f"{kind}: recall {p.recall:.2f} at severity {p.severity:g} ({p.detected}/{p.events}); "
                         f"required >= {required:g} from severity {lowest:g} on" for p in short]
        if spec.recall_drop_events_max is not None:
            for low, high in zip(curve, curve[1:], strict=False):
                drop_events = (low.recall - high.recall) * high.events
                if drop_events > spec.recall_drop_events_max + 1e-9:
                    failures.append(f"{kind}: recall falls from {low.recall:.2f} at severity {low.severity:g} to "
                                    f"{high.recall:.2f} at {high.severity:g} ({drop_events:.1f} events); at most "
                                    f"{spec.recall_drop_events_max:g} allowed")
    return failures


def sensitivity_table(points: list[CurvePoint]) -> str:
    """Plain text: one row per anomaly type and severity."""
    header = (f"{'anomaly type':<18}{'severity':>9}{'runs':>6}{'events':>7}{'detected':>9}{'recall':>8}"
              f"{'delay p50 s':>12}{'p90 s':>7}")
    lines = [header, "-" * len(header)]
    for kind, curve in _by_type(points).items():
        for p in curve:
            lines.append(f"{kind:<18}{p.severity:>9g}{p.runs:>6}{p.events:>7}{p.detected:>9}{p.recall:>8.2f}"
                         f"{fixed_or_dash(p.delay_p50_s, 0):>12}{fixed_or_dash(p.delay_p90_s, 0):>7}")
    return "\n".join(lines)


def render_sensitivity(base: str, points: list[CurvePoint], out: Path) -> Path:
    """A PNG: recall (top) and detection delay p50/p90 (bottom) against severity, one curve per anomaly type."""
    from harness.report.plot import anomaly_colour, plt  # matplotlib (Agg) is slow to import: only when drawing

    out.parent.mkdir(parents=True, exist_ok=True)
    fig, (ax_recall, ax_delay) = plt.subplots(2, 1, figsize=(8, 6.5), sharex=True)
    for kind, curve in _by_type(points).items():
        colour = anomaly_colour(kind)
        severities = [p.severity for p in curve]
        ax_recall.plot(severities, [p.recall for p in curve], "o-", color=colour, label=kind)
        for p in curve:
            ax_recall.annotate(f"{p.detected}/{p.events}", (p.severity, p.recall), textcoords="offset points",
                               xytext=(0, 6), ha="center", fontsize=7)
        p50 = [float("nan") if p.delay_p50_s is None else p.delay_p50_s for p in curve]
        p90 = [float("nan") if p.delay_p90_s is None else p.delay_p90_s for p in curve]
        ax_delay.plot(severities, p50, "o-", color=colour, label=f"{kind} p50")
        ax_delay.plot(severities, p90, "s--", color=colour, alpha=0.6, label=f"{kind} p90")
    ax_recall.set_ylim(-0.05, 1.12)
    ax_recall.set_ylabel("event recall")
    ax_recall.legend(loc="lower right", fontsize=8)
    ax_delay.set_ylabel("detection delay [s]")
    ax_delay.set_xlabel("severity")
    ax_delay.legend(loc="upper right", fontsize=8)
    for ax in (ax_recall, ax_delay):
        ax.grid(alpha=0.3)
    fig.suptitle(f"sensitivity: {base}", x=0.01, ha="left", fontsize=11)
    fig.tight_layout(rect=(0, 0, 1, 0.96))
    fig.savefig(out, dpi=80)
    plt.close(fig)
    return out


def plot_name(base: str) -> str:
    return "sweep-" + "".join(ch if ch.isalnum() or ch in "-_" else "_" for ch in base) + ".png"


def write_sensitivity(results: Sequence[RunResult], out_dir: Path) -> list[tuple[str, str, Path]]:
    """For every sweep among `results`: (base name, text table, PNG written into `out_dir`)."""
    return [(base, sensitivity_table(points), render_sensitivity(base, points, out_dir / plot_name(base)))
            for base, points in sensitivity(results).items()]


def sweep_sections(results: Sequence[RunResult], out_dir: Path) -> list[tuple[str, str]]:
    """(title, HTML fragment) per sweep: the table and the sensitivity plot (written into `out_dir`, linked
    relative to it), for the session's HTML report."""
    sections = []
    for base, points in sensitivity(results).items():
        png = render_sensitivity(base, points, out_dir / plot_name(base))
        rows = "".join(
            f"<tr><td>{html.escape(p.anomaly_type)}</td><td>{p.severity:g}</td><td>{p.runs}</td><td>{p.events}</td>"
            f"<td>{p.detected}</td><td>{p.recall:.2f}</td><td>{fixed_or_dash(p.delay_p50_s, 0)}</td>"
            f"<td>{fixed_or_dash(p.delay_p90_s, 0)}</td></tr>"
            for curve in _by_type(points).values() for p in curve)
        fragment = (f'<table class="sweep"><thead><tr><th>anomaly type</th><th>severity</th><th>runs</th>'
                    f"<th>events</th><th>detected</th><th>recall</th><th>delay p50 s</th><th>p90 s</th></tr>"
                    f"</thead><tbody>{rows}</tbody></table>\n"
                    f'<img class="plot" src="{html.escape(png.name)}" alt="sensitivity of {html.escape(base)}">')
        sections.append((f"Sensitivity: {base}", fragment))
    return sections
