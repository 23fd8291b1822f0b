"""Sweeps: one scenario file run over a list of parameter values, and the sensitivity curve that results.

A scenario's `sweep:` section lists values; the scenario is expanded into one variant per combination
(severity x seed x vehicle, in that order), each named `base[severity=0.5,seed=2]`::

    sweep:
      severity: [0.2, 0.35, 0.5, 0.7, 0.9]   # replaces the severity of the anomalies (all, or those listed)
      seed: [1, 2]                            # replaces the scenario seed (route, noise, fault randomness)
      vehicle: [passenger_car]                # replaces the vehicle
      anomalies: [0]                          # which anomalies `severity` applies to (default: all)
      expect:                                 # judged once every variant has run (optional)
        recall_at_max_severity_min: 1.0       # recall of each anomaly type at the highest severity
        recall_drop_events_max: 1             # a step up in severity may detect at most this many fewer events

Each variant is judged on the scenario's own `expect:`; the sweep's `expect:` judges the curve: per anomaly type,
recall and detection delay (p50, p90) against severity, pooled over seeds and vehicles. `sensitivity_table`
prints it, `render_sensitivity` draws it (PNG), `sweep_sections` gives both as HTML fragments for the report.

What a sweep does not do: sweep timing (onset, sustain) or route parameters, or run its variants in parallel.
"""
from __future__ import annotations

import html
import itertools
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from harness.datafile import Checker, kind_of

if TYPE_CHECKING:
    from harness.run import RunResult
    from harness.scenario import Scenario

SWEEP_KEYS = ("severity", "seed", "vehicle", "anomalies", "expect")
SWEEP_EXPECT_KEYS = ("recall_at_max_severity_min", "recall_drop_events_max")
#: The most variants one sweep may expand to (each is a full scenario run).
MAX_VARIANTS = 200


@dataclass(frozen=True)
class SweepSpec:
    severity: tuple[float, ...] = ()
    seed: tuple[int, ...] = ()
    vehicle: tuple[str, ...] = ()
    anomalies: tuple[int, ...] | None = None  # indexes the severity applies to; None = all
    recall_at_max_severity_min: float | None = None
    recall_drop_events_max: float | None = None

    def points(self) -> list[tuple[tuple[str, Any], ...]]:
        """Every combination, as ((parameter, value), ...), severity varying slowest."""
        axes = [(key, values) for key, values in (("severity", self.severity), ("seed", self.seed),
                                                  ("vehicle", self.vehicle)) if values]
        return [tuple(zip([k for k, _ in axes], combo)) for combo in itertools.product(*[v for _, v in axes])]


def _values(c: Checker, raw: dict, key: str, check) -> tuple:
    if key not in raw:
        return ()
    path = f"sweep.{key}"
    values = raw[key]
    if not isinstance(values, list) or not values:
        c.report(path, f"expected a non-empty list of values; got {kind_of(values)}")
        return ()
    out = []
    for i, value in enumerate(values):
        checked = check({key: value}, f"{path}[{i}]")
        if checked is not None:
            out.append(checked)
    if len(set(out)) != len(out):
        c.report(path, "lists a value twice")
    return tuple(out)


def read_sweep(c: Checker, data: Any, n_anomalies: int, vehicles: tuple[str, ...]) -> SweepSpec | None:
    """Validate a scenario's `sweep:` section; problems go to `c`, naming the field and the valid choices."""
    if data is None:
        return None
    raw = c.mapping(data, "sweep", SWEEP_KEYS)
    if not isinstance(data, dict):
        return None

    def one(d: dict, path: str, key: str, **kw):
        parent, _, leaf = path.rpartition(".")
        return c.number({leaf: d[key]}, leaf, parent, None, **kw)

    severity = _values(c, raw, "severity", lambda d, p: one(d, p, "severity", lo=0.0, hi=1.0, lo_open=True))
    seed = _values(c, raw, "seed", lambda d, p: (lambda v: None if v is None else int(v))(
        one(d, p, "seed", lo=0, integer=True)))
    vehicle = _values(c, raw, "vehicle", lambda d, p: c.choice({p.rpartition(".")[2]: d["vehicle"]},
                                                               p.rpartition(".")[2], "sweep", vehicles, None,
                                                               "vehicle"))
    indexes = None
    if "anomalies" in raw:
        picked = _values(c, raw, "anomalies", lambda d, p: (lambda v: None if v is None else int(v))(
            one(d, p, "anomalies", lo=0, hi=max(n_anomalies - 1, 0), integer=True)))
        indexes = picked or None
    if severity and n_anomalies == 0:
        c.report("sweep.severity", "sweeps the severity of the scenario's anomalies, and it has none")
    expect = c.mapping(raw.get("expect", {}), "sweep.expect", SWEEP_EXPECT_KEYS)
    recall_min = c.number(expect, "recall_at_max_severity_min", "sweep.expect", None, lo=0.0, hi=1.0)
    drop_max = c.number(expect, "recall_drop_events_max", "sweep.expect", None, lo=0.0)
    if expect and not severity:
        c.report("sweep.expect", "judges a curve against severity; sweep.severity lists no values")
    spec = SweepSpec(severity, seed, vehicle, indexes, recall_min, drop_max)
    if not (severity or seed or vehicle):
        c.report("sweep", "lists no values to sweep; expected at least one of: severity, seed, vehicle")
    elif len(spec.points()) > MAX_VARIANTS:
        c.report("sweep", f"expands to {len(spec.points())} variants; at most {MAX_VARIANTS}")
    return spec


def variant_name(base: str, point: tuple[tuple[str, Any], ...]) -> str:
    """>>> variant_name("drift", (("severity", 0.5), ("seed", 2)))
    'drift[severity=0.5,seed=2]'
    """
    return f"{base}[{','.join(f'{k}={v:g}' if isinstance(v, float) else f'{k}={v}' for k, v in point)}]"


def expand(scenario: "Scenario") -> list["Scenario"]:
    """The variants of a scenario with a sweep (itself alone when it has none)."""
    spec = scenario.sweep
    if spec is None:
        return [scenario]
    out = []
    for point in spec.points():
        values = dict(point)
        anomalies = tuple(replace(a, severity=values["severity"]) if "severity" in values and
                          (spec.anomalies is None or i in spec.anomalies) else a
                          for i, a in enumerate(scenario.anomalies))
        reseeded = "seed" in values and scenario.route.cycle is None and scenario.route.generated_seed is None \
            and getattr(scenario.route, "recording", None) is None
        out.append(replace(scenario, name=variant_name(scenario.name, point), anomalies=anomalies,
                           seed=values.get("seed", scenario.seed), vehicle=values.get("vehicle", scenario.vehicle),
                           sweep=None, sweep_base=scenario.name, sweep_point=point,
                           profile_=None if reseeded else scenario.profile_))
    return out


# --- the sensitivity curve --------------------------------------------------------------------------------

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


def sensitivity(results: Sequence["RunResult"]) -> dict[str, list[CurvePoint]]:
    """Sweep base name -> curve points (by anomaly type, then severity), from the runs of its variants."""
    from harness.metrics import delay_stats  # harness.metrics imports harness.scenario, which imports this

    pooled: dict[tuple[str, str, float], list] = defaultdict(list)
    runs: dict[tuple[str, str, float], set] = defaultdict(set)
    for r in results:
        base = getattr(r.scenario, "sweep_base", "")
        if not base:
            continue
        for detection in r.metrics.detection.detections:
            key = (base, detection.event.type, round(float(detection.event.severity), 6))
            pooled[key].append(detection)
            runs[key].add(r.scenario.name)
    out: dict[str, list[CurvePoint]] = defaultdict(list)
    for key in sorted(pooled):
        detections = pooled[key]
        found = [d for d in detections if d.detected]
        delay = delay_stats([d.detection_delay_s for d in found])
        out[key[0]].append(CurvePoint(key[0], key[1], key[2], len(runs[key]), len(detections), len(found),
                                      delay.p50_s, delay.p90_s))
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
        if spec.recall_drop_events_max is not None:
            for low, high in zip(curve, curve[1:]):
                drop_events = (low.recall - high.recall) * high.events
                if drop_events > spec.recall_drop_events_max + 1e-9:
                    failures.append(f"{kind}: recall falls from {low.recall:.2f} at severity {low.severity:g} to "
                                    f"{high.recall:.2f} at {high.severity:g} ({drop_events:.1f} events); at most "
                                    f"{spec.recall_drop_events_max:g} allowed")
    return failures


def _f(value: float | None, digits: int = 0) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def sensitivity_table(points: list[CurvePoint]) -> str:
    """Plain text: one row per anomaly type and severity."""
    header = (f"{'anomaly type':<18}{'severity':>9}{'runs':>6}{'events':>7}{'detected':>9}{'recall':>8}"
              f"{'delay p50 s':>12}{'p90 s':>7}")
    lines = [header, "-" * len(header)]
    for kind, curve in _by_type(points).items():
        for p in curve:
            lines.append(f"{kind:<18}{p.severity:>9g}{p.runs:>6}{p.events:>7}{p.detected:>9}{p.recall:>8.2f}"
                         f"{_f(p.delay_p50_s):>12}{_f(p.delay_p90_s):>7}")
    return "\n".join(lines)


def render_sensitivity(base: str, points: list[CurvePoint], out: Path) -> Path:
    """A PNG: recall (top) and detection delay p50/p90 (bottom) against severity, one curve per anomaly type."""
    from harness.plot import anomaly_colour, plt  # matplotlib (Agg) is slow to import: only when drawing

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


def write_sensitivity(results: Sequence["RunResult"], out_dir: Path) -> list[tuple[str, str, Path]]:
    """For every sweep among `results`: (base name, text table, PNG written into `out_dir`)."""
    return [(base, sensitivity_table(points), render_sensitivity(base, points, out_dir / plot_name(base)))
            for base, points in sensitivity(results).items()]


def sweep_sections(results: Sequence["RunResult"], out_dir: Path) -> list[tuple[str, str]]:
    """(title, HTML fragment) per sweep: the table and the sensitivity plot (written into `out_dir`, linked
    relative to it), for the session's HTML report."""
    sections = []
    for base, points in sensitivity(results).items():
        png = render_sensitivity(base, points, out_dir / plot_name(base))
        rows = "".join(
            f"<tr><td>{html.escape(p.anomaly_type)}</td><td>{p.severity:g}</td><td>{p.runs}</td><td>{p.events}</td>"
            f"<td>{p.detected}</td><td>{p.recall:.2f}</td><td>{_f(p.delay_p50_s)}</td><td>{_f(p.delay_p90_s)}</td></tr>"
            for curve in _by_type(points).values() for p in curve)
        fragment = (f'<table class="sweep"><thead><tr><th>anomaly type</th><th>severity</th><th>runs</th>'
                    f"<th>events</th><th>detected</th><th>recall</th><th>delay p50 s</th><th>p90 s</th></tr>"
                    f"</thead><tbody>{rows}</tbody></table>\n"
                    f'<img class="plot" src="{html.escape(png.name)}" alt="sensitivity of {html.escape(base)}">')
        sections.append((f"Sensitivity: {base}", fragment))
    return sections
