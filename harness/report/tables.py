"""What a test engineer reads after a run: the figures of each scenario run, and their text forms.

The figures (`scenario_figures`, `anomaly_type_rows`, `model_latency`, `model_quality_in_run`, `budget_rows`) are
computed here once and rendered four ways: plain-text tables for the terminal (the pytest plugin prints them at
the end of a session, `make sim` shows them), JUnit XML properties (`junit_properties`, one set per scenario
item), an OpenMetrics text exposition for CI dashboards (`openmetrics_text`), and the HTML report
(`harness.report.html`). Numbers come from `harness.judge.metrics`; nothing here redefines a metric. A value that was
not measured prints as "-" in a table and is left out of the JUnit properties and the OpenMetrics text.

What this module does not do: write files (`harness.report.html` writes the report folder) or judge a run
(`harness.judge.metrics.judge` did; the budgets table only compares figures with the manifest's budgets).
"""
from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from prometheus_client import CollectorRegistry
from prometheus_client.metrics_core import Metric
from prometheus_client.openmetrics.exposition import generate_latest

from harness.core.stats import Percentiles, percentiles
from harness.inference.models import MODEL_NAMES, Manifest
from harness.judge.metrics import (
    MODEL_SOURCE,
    detect_events,
    episodes_from_events,
    false_alarm_rate,
    fuel_accuracy,
    inference_times_ms,
    observed_span_s,
)
from harness.judge.metrics.behaviour import INVALID_CLASS, BehaviourScore
from harness.judge.result import RunResult, fuel_truth
from harness.report.numbers import fixed_or_dash as _f
from harness.wire.behaviour import STYLES
from harness.wire.events import FuelResult

# --- the figures ------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class ScenarioFigures:
    """One scenario run's headline figures, as every report form shows them (None: not measured)."""

    scenario: str
    passed: bool
    n_events: int
    n_detected: int
    recall: float | None
    recall_by_type: dict[str, float | None]
    false_alarms: int
    false_alarms_per_h: float | None
    delay_p50_s: float | None
    delay_p90_s: float | None
    n_delays: int
    fuel_r2: float | None
    fuel_mae_lph: float | None
    latency_n: int
    latency_p50_ms: float | None  # the app's reported inference time, all model results pooled
    latency_p99_ms: float | None
    end_to_end_n: int
    end_to_end_p50_ms: float | None  # a window's last sample on the bus -> its event at the harness
    end_to_end_p99_ms: float | None
    scenario_s: float
    wall_s: float
    speed_x: float
    error: str | None = None  # why the run is an ERROR, no verdict on the unit (the rig fell behind, data lost)
    cpu_s: float = 0.0
    speed_cpu_x: float = math.inf  # scenario seconds per CPU second
    latency_on_host: bool = True  # the inference figures are the simulated app's host thread CPU time
    failed_criteria: tuple[str, ...] = ()  # the names of the `expect:` criteria the run missed
    behaviour: BehaviourScore | None = None  # the judged behaviour windows; None or 0 windows: not applicable

    @property
    def behaviour_macro_f1(self) -> float | None:
        return self.behaviour.macro_f1 if self.behaviour is not None else None

    @property
    def verdict(self) -> str:
        return "ERROR" if self.error is not None else "PASS" if self.passed else "FAIL"

    @property
    def why(self) -> str:
        """What made the verdict other than PASS, in a few words: the failed criteria, or the error's cause."""
        if self.error is not None:
            return self.error.splitlines()[0]
        return ", ".join(self.failed_criteria)


def failures_first(results: Sequence[RunResult]) -> list[RunResult]:
    """The runs in their order, those that are no PASS first (every report form lists them so)."""
    return sorted(results, key=lambda r: r.verdict == "PASS")


def scenario_figures(result: RunResult) -> ScenarioFigures:
    m = result.metrics
    d = m.detection
    fuel, infer, e2e = m.fuel, m.latency, m.end_to_end
    return ScenarioFigures(
        scenario=result.scenario.name, passed=result.judgement.passed and result.error is None, n_events=d.n_events,
        n_detected=d.overall.n_detected, recall=d.overall.recall,
        recall_by_type={t: r.recall for t, r in d.recall_by_type.items()},
        false_alarms=d.false_alarms.n_false_alarms, false_alarms_per_h=d.false_alarms.per_h,
        delay_p50_s=d.delay.p50, delay_p90_s=d.delay.p90, n_delays=d.delay.n,
        fuel_r2=fuel.r2 if fuel else None, fuel_mae_lph=fuel.mae_lph if fuel else None,
        latency_n=infer.n if infer else 0, latency_p50_ms=infer.p50 if infer else None,
        latency_p99_ms=infer.p99 if infer else None,
        end_to_end_n=e2e.n if e2e else 0, end_to_end_p50_ms=e2e.p50 if e2e else None,
        end_to_end_p99_ms=e2e.p99 if e2e else None,
        scenario_s=result.trace.duration_s, wall_s=result.wall_s, speed_x=result.speed, error=result.error,
        cpu_s=result.cpu_s, speed_cpu_x=result.cpu_speed, latency_on_host=result.app_on_host,
        failed_criteria=tuple(c.name for c in result.judgement.criteria if not c.passed), behaviour=m.behaviour,
    )


@dataclass(frozen=True)
class AnomalyTypeRow:
    """Events of one anomaly type pooled over every scenario run."""

    anomaly_type: str
    n_events: int
    n_detected: int
    delay: Percentiles  # s

    @property
    def recall(self) -> float:
        return self.n_detected / self.n_events


def anomaly_type_rows(results: Sequence[RunResult]) -> list[AnomalyTypeRow]:
    """Recall and delay per anomaly type, pooled over every scenario run that is a verdict (an ERROR run, e.g. one
    whose rig fell behind, is left out), types in alphabetical order."""
    pooled: dict[str, list] = defaultdict(list)
    for r in results:
        if r.error is not None:
            continue
        for detection in r.metrics.detection.detections:
            pooled[detection.event.type].append(detection)
    rows = []
    for kind in sorted(pooled):
        found = [d for d in pooled[kind] if d.detected]
        rows.append(AnomalyTypeRow(kind, len(pooled[kind]), len(found),
                                   percentiles([d.detection_delay_s for d in found])))
    return rows


def model_latency(results: Sequence[RunResult]) -> dict[str, Percentiles]:
    """Per model: the app's own reported inference times (p50/p99 ms), pooled over every run."""
    runs = [r.collector.events for r in results]  # rebuilt from the collector's store on each read: once per run
    return {name: percentiles([t for events in runs for t in inference_times_ms(events, (name,))])
            for name in MODEL_NAMES}


def model_quality_in_run(results: Sequence[RunResult]) -> dict[str, dict[str, float]]:
    """What the runs measured of each model's quality, pooled, keyed like the manifest's budgets (without the
    `_min`/`_max`): fuel `r2` and `mae_lph` over every fuel result; the anomaly model's own `event_recall` (its
    alarms alone, on the events of the types it covers) and `false_alarms_per_hour` (its alarm episodes that
    overlap no event's detection window, per hour of normal driving). Figures with nothing to measure are left
    out; the behaviour model's `macro_f1` over the judged windows of every run with behaviour labels, their
    confusion matrices pooled (`harness.judge.metrics.behaviour`). The per-type event AUROC is not measured in a run
    (see the manifest's held-out figures)."""
    out: dict[str, dict[str, float]] = {}
    predicted, true = [], []
    for r in results:
        fuel = [e for e in r.collector.events if isinstance(e, FuelResult)]
        if fuel:
            truth = fuel_truth(r.trace)
            predicted += [e.fuel_rate_lph for e in fuel]
            true += [truth(e.t_s) for e in fuel]
    accuracy = fuel_accuracy(predicted, true) if predicted else None
    if accuracy is not None:
        out["fuel"] = {k: v for k, v in (("r2", accuracy.r2), ("mae_lph", accuracy.mae_lph)) if v is not None}
    n_events = n_detected = n_false = 0
    normal_h = 0.0
    for r in results:
        events = r.collector.events
        span = observed_span_s(events)
        if span is None:
            continue
        max_delay_s = r.scenario.expect.max_delay_s
        episodes = [e for e in episodes_from_events(events) if e.source == MODEL_SOURCE]
        covered = [label for label in r.trace.events if label.type in r.model_types]
        detections = detect_events(covered, episodes, max_delay_s=max_delay_s,
                                   sources_for_type={t: (MODEL_SOURCE,) for t in r.model_types})
        n_events += len(detections)
        n_detected += sum(d.detected for d in detections)
        rate = false_alarm_rate(episodes, r.trace.events, start_s=span[0], end_s=span[1], max_delay_s=max_delay_s)
        n_false += rate.n_false_alarms
        normal_h += rate.normal_driving_h
    anomaly = {}
    if n_events:
        anomaly["event_recall"] = n_detected / n_events
    if normal_h > 0:
        anomaly["false_alarms_per_hour"] = n_false / normal_h
    if anomaly:
        out["anomaly"] = anomaly
    pooled = BehaviourScore.pooled([r.metrics.behaviour for r in results if r.metrics.behaviour is not None])
    if pooled is not None and pooled.macro_f1 is not None:
        out["behaviour"] = {"macro_f1": pooled.macro_f1}
    return out


#: Each budget key the manifest uses: what it bounds, and the key of the held-out figure in the model's `metrics`.
BUDGET_KEYS: dict[str, tuple[str, str]] = {
    "bytes_max": ("size [bytes]", "bytes"),
    "p99_ms_max": ("p99 latency [ms]", "p99_ms"),
    "r2_min": ("fuel R²", "r2"),
    "event_recall_min": ("event recall", "event_recall"),
    "false_alarms_per_hour_max": ("false alarms per hour", "false_alarms_per_hour"),
    "event_auroc_min_per_type": ("event AUROC, lowest type", "min_event_auroc"),
    "macro_f1_min": ("macro-F1", "macro_f1"),
}


@dataclass(frozen=True)
class BudgetRow:
    """One budget of one model: the bound, the manifest's held-out figure, and the figure measured in the run."""

    model: str
    budget: str  # the manifest's key, e.g. "p99_ms_max"
    label: str
    comparison: str  # "<=" or ">="
    required: float
    held_out: float | None  # from the manifest: training-time benchmark or held-out test trips
    in_run: float | None  # measured in this session's runs; None when a run cannot measure it
    note: str = ""
    #: False when the in-run figure is not comparable with the budget (inference measured on the host, not on a
    #: phone): it is shown, never marked against the budget.
    judged_in_run: bool = True

    @staticmethod
    def _meets(value: float | None, comparison: str, required: float) -> bool | None:
        if value is None:
            return None
        return value <= required if comparison == "<=" else value >= required

    @property
    def held_out_ok(self) -> bool | None:
        return self._meets(self.held_out, self.comparison, self.required)

    @property
    def in_run_ok(self) -> bool | None:
        if not self.judged_in_run:
            return None
        return self._meets(self.in_run, self.comparison, self.required)


def _number(value) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def budget_rows(results: Sequence[RunResult], manifest: Manifest) -> list[BudgetRow]:
    """Every budget of every model in the manifest, beside its held-out and (where a run measures it) in-run figure.

    Size: the model file's bytes (the manifest's sha256 and size were checked when the models were opened).
    Latency: the held-out figure is the p99 measured at training (`bench_at_training`, onnxruntime, 1 thread);
    the in-run figure is the p99 of the app's own reported inference times for that model. When an app ran on this
    host (the simulated app, or the simulated phone's), those are its thread CPU times on a shared machine: shown,
    not judged against the device budget (`judged_in_run` False). The budget is judged by `dtg-hil bench models`,
    the model tests, and on a rig whose app runs on a real phone.
    """
    on_host = any(r.app_on_host for r in results)
    latency = model_latency(results)
    quality = model_quality_in_run(results)
    rows = []
    for name in MODEL_NAMES:
        entry = manifest.models[name]
        bench = entry.raw.get("bench_at_training") or {}
        for key, bound in entry.budgets.items():
            required = _number(bound)
            if required is None:
                continue
            label, metric = BUDGET_KEYS.get(key, (key, key.rsplit("_", 1)[0]))
            comparison = "<=" if key.endswith("_max") else ">="
            note = ""
            if key == "bytes_max":
                held_out = in_run = float(entry.bytes)
            elif key == "p99_ms_max":
                held_out = _number(bench.get("p99_ms"))
                in_run = latency[name].p99
                source = "host thread CPU time of the simulated app, not judged against the device budget" \
                    if on_host else "app-reported"
                note = f"in run: {source}, n={latency[name].n}; held out: bench at training" \
                    + (f", n={bench['runs']}" if "runs" in bench else "")
            else:
                held_out = _number(entry.metrics.get(metric))
                in_run = quality.get(name, {}).get(metric)
                if name == "anomaly" and in_run is not None:
                    note = "in run: the model's alarms alone, on the types it covers"
            rows.append(BudgetRow(name, key, label, comparison, required, held_out, in_run, note,
                                  judged_in_run=not (key == "p99_ms_max" and on_host)))
    return rows


# --- terminal tables --------------------------------------------------------------------------------------------

def scenario_table(results: Sequence[RunResult]) -> str:
    width = max([32] + [len(r.scenario.name) + 1 for r in results])  # sweep variants have long names
    header = (f"{'scenario':<{width}}{'verdict':>8}{'events':>7}{'recall':>8}{'FA/h':>7}{'delay p50':>10}"
              f"{'p90 s':>7}{'fuel R2':>8}{'MAE L/h':>8}{'beh F1':>7}{'infer p50':>10}{'p99 ms':>8}{'e2e p50':>9}"
              f"{'p99 ms':>8}"
              f"{'speed':>8}  criteria not met")
    lines = [header, "-" * len(header)]
    for r in failures_first(results):
        f = scenario_figures(r)
        lines.append(
            f"{f.scenario:<{width}}{f.verdict:>8}{f.n_events:>7}"
            f"{_f(f.recall):>8}{_f(f.false_alarms_per_h):>7}{_f(f.delay_p50_s, 0):>10}{_f(f.delay_p90_s, 0):>7}"
            f"{_f(f.fuel_r2):>8}{_f(f.fuel_mae_lph):>8}{_f(f.behaviour_macro_f1):>7}"
            f"{_f(f.latency_p50_ms, 3):>10}{_f(f.latency_p99_ms, 3):>8}"
            f"{_f(f.end_to_end_p50_ms, 1):>9}{_f(f.end_to_end_p99_ms, 1):>8}"
            f"{f.speed_x:>7.0f}x" + (f"  {', '.join(f.failed_criteria)}" if f.failed_criteria else "")
        )
        if f.error is not None:  # the cause and its figures, on one line under the row
            lines.append(f"  ERROR: {f.error.splitlines()[0]}")
    return "\n".join(lines)


def latency_note(results: Sequence[RunResult]) -> str:
    """Which inference figures the tables show: host CPU time of a simulated app, or a real app's own."""
    on_host = [r for r in results if r.app_on_host]
    if not on_host:
        return "infer: the app's own reported inference time per model call (on the phone)"
    return ("infer: the simulated app's per-call inference figure is this host's thread CPU time (onnxruntime, "
            "1 thread), not a phone's: it is not judged against the device budgets here; `dtg-hil bench models`, "
            "the model tests and a rig with a real phone judge those")


def anomaly_type_table(results: Sequence[RunResult]) -> str:
    """Recall and delay per anomaly type, pooled over every scenario run."""
    header = f"{'anomaly type':<26}{'events':>7}{'detected':>9}{'recall':>8}{'delay p50 s':>12}{'p90 s':>7}"
    lines = [header, "-" * len(header)]
    for row in anomaly_type_rows(results):
        lines.append(f"{row.anomaly_type:<26}{row.n_events:>7}{row.n_detected:>9}{row.recall:>8.2f}"
                     f"{_f(row.delay.p50, 0):>12}{_f(row.delay.p90, 0):>7}")
    return "\n".join(lines)


def speed_line(results: Sequence[RunResult], session_wall_s: float | None = None) -> str:
    """How fast the runs went: scenario seconds per CPU second summed over the runs (what they cost, whatever else
    the machine did), the runs' wall time, and `session_wall_s` (the whole session, e.g. `make sim`'s) if given."""
    scenario_s = sum(r.trace.duration_s for r in results)
    wall_s = sum(r.wall_s for r in results)
    cpu_s = sum(r.cpu_s for r in results)
    if wall_s <= 0:
        return ""
    rigs = ", ".join(sorted({f"'{r.rig.name}'" for r in results}))
    paced = sorted({f"{r.rig.wall_clock_scale:g}x" for r in results
                    if not r.rig.on_virtual_time or math.isfinite(r.rig.time_scale)})
    pacing = f"paced at {', '.join(paced)}" if paced else "on virtual time, unpaced"
    line = f"rig {rigs} ({pacing}): {scenario_s / 3600:.2f} h of scenario"
    if cpu_s > 0:
        line += (f" in {cpu_s:.0f} s of CPU time = {scenario_s / cpu_s:.0f} scenario-seconds per CPU-second "
                 f"(slowest scenario {min(r.cpu_speed for r in results):.0f}x);")
    line += f" {wall_s:.0f} s of wall time in the runs = {scenario_s / wall_s:.0f} scenario-seconds per wall-second"
    if session_wall_s is not None:
        line += f"; session wall time {session_wall_s:.0f} s"
    return line


def full_report(results: Sequence[RunResult], session_wall_s: float | None = None) -> str:
    return "\n\n".join([scenario_table(results) + "\n" + latency_note(results), anomaly_type_table(results),
                        speed_line(results, session_wall_s)])


# --- JUnit XML properties ---------------------------------------------------------------------------------------

def _rounded(value: float) -> float:
    """Six significant digits: what a dashboard needs, without float noise in the XML."""
    return float(f"{value:.6g}")


def junit_properties(result: RunResult) -> list[tuple[str, object]]:
    """The figures of one run as (name, value) pairs for pytest's `user_properties` (JUnit <property> elements).

    Numbers are plain numbers (names carry the unit); figures that were not measured are left out. Each `expect:`
    criterion follows as ``expect: <criterion>`` with its status and measured vs required.
    """
    f = scenario_figures(result)
    figures: list[tuple[str, float | int | None]] = [
        ("events", f.n_events), ("events_detected", f.n_detected), ("recall", f.recall),
        *((f"recall.{t}", v) for t, v in f.recall_by_type.items()),
        ("false_alarms", f.false_alarms), ("false_alarms_per_h", f.false_alarms_per_h),
        ("detection_delay_s_p50", f.delay_p50_s), ("detection_delay_s_p90", f.delay_p90_s),
        ("fuel_r2", f.fuel_r2), ("fuel_mae_lph", f.fuel_mae_lph),
        ("behaviour_macro_f1", f.behaviour_macro_f1), *_behaviour_cells(f.behaviour),
        ("latency_ms_p50", f.latency_p50_ms), ("latency_ms_p99", f.latency_p99_ms),
        ("end_to_end_ms_p50", f.end_to_end_p50_ms), ("end_to_end_ms_p99", f.end_to_end_p99_ms),
        ("scenario_s", f.scenario_s), ("wall_s", f.wall_s),
        ("speed_x", f.speed_x if math.isfinite(f.speed_x) else None),
    ]
    out: list[tuple[str, object]] = [("verdict", f.verdict)]
    if f.error is not None:
        out.append(("error", f.error.splitlines()[0]))
    out += [(name, value if isinstance(value, int) else _rounded(value)) for name, value in figures
            if value is not None]
    out += [(f"expect: {c.name}", f"{c.status}: {c.describe()}") for c in result.judgement.criteria]
    out += [("rig", result.rig.name), ("scenario_sha256", result.scenario.sha256)]
    if result.firmware is not None and result.firmware.get("sha256"):  # a real STM32: the image flashed
        out += [("firmware_image", result.firmware["image"]), ("firmware_sha256", result.firmware["sha256"])]
    if result.scenario.path is not None:
        out.append(("scenario_file", str(result.scenario.path)))
    out.append(("artifacts", str(result.artifacts)))
    return out


def _behaviour_cells(score: BehaviourScore | None) -> list[tuple[str, int]]:
    """`behaviour_windows` and one `behaviour_confusion.<true>.<reported>` per cell, on a run with judged windows."""
    if score is None or score.n == 0:
        return []
    return [("behaviour_windows", score.n)] + [(f"behaviour_confusion.{truth}.{said}", n)
                                               for truth, said, n in confusion_cells(score)]


def confusion_cells(score: BehaviourScore) -> list[tuple[str, str, int]]:
    """(true style, reported class, windows) for every cell of the matrix; the invalid column only when counted."""
    predicted = [*STYLES, INVALID_CLASS]
    return [(STYLES[i], predicted[j], n) for i, row in enumerate(score.confusion) for j, n in enumerate(row)
            if j < len(STYLES) or n]


# --- OpenMetrics ------------------------------------------------------------------------------------------------

class _Exposition:
    """OpenMetrics text through prometheus_client: each family once, its samples together, metadata first; families
    without a sample are left out. Values keep nine significant digits (no float noise such as 437.00000000000006)."""

    def __init__(self) -> None:
        self.families: dict[str, Metric] = {}

    def family(self, name: str, kind: str, help_text: str, unit: str = "") -> None:
        self.families.setdefault(name, Metric(name, help_text, kind, unit))

    def sample(self, family: str, labels: dict[str, object], value: float | None, suffix: str = "") -> None:
        if value is None:
            return
        value = float(value)
        self.families[family].add_sample(f"{family}{suffix}", {k: str(v) for k, v in labels.items()},
                                         float(f"{value:.9g}") if math.isfinite(value) else value)

    def text(self) -> str:
        registry = CollectorRegistry(auto_describe=False)
        registry.register(_Families([m for m in self.families.values() if m.samples]))
        return generate_latest(registry).decode("utf-8")


class _Families:
    """A prometheus_client collector of ready-made metric families."""

    def __init__(self, families: list[Metric]) -> None:
        self.families = families

    def collect(self) -> Iterable[Metric]:
        return iter(self.families)


def _summary(out: _Exposition, family: str, labels: dict[str, object], quantiles: Iterable[tuple[str, float | None]],
             count: int, scale: float = 1.0) -> None:
    measured = [(q, v) for q, v in quantiles if v is not None]
    for q, v in measured:
        out.sample(family, {**labels, "quantile": q}, v * scale)
    if measured:
        out.sample(family, labels, count, "_count")


def openmetrics_text(results: Sequence[RunResult], manifest: Manifest | None = None, *, version: str = "",
                     commit: str | None = None) -> str:
    """The session's figures in the OpenMetrics text format (ending in ``# EOF``), for CI dashboards.

    Per scenario (label `scenario`): verdict, events, recall (overall as ``anomaly_type="all"`` and per type),
    false alarms, detection delay and latency quantiles (summaries, in seconds), fuel R² and MAE, behaviour macro-F1
    and confusion matrix (`dtg_behaviour_windows`, labels `true_style` and `reported`), scenario and wall time.
    Per model (label `model`, with the manifest): size, the app-reported inference latency quantiles pooled over the
    runs, the budgets, and an info sample with the sha256. Unmeasured figures are left out.
    """
    out = _Exposition()
    out.family("dtg_run", "info", "The rig the session ran on, and the dtg-hil version and commit that ran it.")
    out.family("dtg_scenario", "info", "A scenario run: its file and the file's sha256.")
    out.family("dtg_scenario_passed", "gauge", "1 if the scenario met every expect: criterion, else 0.")
    out.family("dtg_scenario_error", "gauge",
               "1 if the run is an ERROR, no verdict on the unit (the rig fell behind, data lost), else 0.")
    out.family("dtg_scenario_events", "gauge", "Anomaly events injected in the scenario.")
    out.family("dtg_scenario_recall", "gauge",
               "Detected / injected events, per anomaly type (anomaly_type=\"all\": every event pooled).")
    out.family("dtg_false_alarms", "gauge", "Alarm episodes that overlap no event's detection window.")
    out.family("dtg_false_alarms_per_hour", "gauge", "False alarms per hour of normal driving.")
    out.family("dtg_detection_delay_seconds", "summary", "First alarm - onset, scenario seconds.", "seconds")
    out.family("dtg_fuel_r2", "gauge", "R² of the predicted fuel rate against the truth.")
    out.family("dtg_fuel_mae_litres_per_hour", "gauge", "Mean absolute error of the predicted fuel rate, L/h.")
    out.family("dtg_behaviour_macro_f1", "gauge",
               "Macro-F1 of the behaviour class over the judged windows (styles in the labels or the predictions).")
    out.family("dtg_behaviour_windows", "gauge",
               "Judged behaviour windows by true style and reported class (the confusion matrix).")
    out.family("dtg_inference_latency_seconds", "summary",
               "The app's reported inference time of every model result, pooled.", "seconds")
    out.family("dtg_end_to_end_latency_seconds", "summary",
               "Wall time from a window's last sample on the bus to its event at the harness.", "seconds")
    out.family("dtg_scenario_duration_seconds", "gauge", "Scenario time driven.", "seconds")
    out.family("dtg_scenario_wall_seconds", "gauge", "Wall time the run took.", "seconds")
    out.family("dtg_scenario_speed_ratio", "gauge", "Scenario seconds per wall second.")
    for rig in dict.fromkeys((r.rig.name, r.rig.profile, r.rig.codec) for r in results):
        out.sample("dtg_run", {"rig": rig[0], "profile": rig[1], "codec": rig[2], "version": version,
                               "commit": commit or ""}, 1, "_info")
    for r in results:
        f = scenario_figures(r)
        s = {"scenario": f.scenario}
        out.sample("dtg_scenario", {**s, "file": r.scenario.path or "", "sha256": r.scenario.sha256}, 1, "_info")
        out.sample("dtg_scenario_passed", s, int(f.passed))
        out.sample("dtg_scenario_error", s, int(f.error is not None))
        out.sample("dtg_scenario_events", s, f.n_events)
        out.sample("dtg_scenario_recall", {**s, "anomaly_type": "all"}, f.recall)
        for anomaly_type, recall in f.recall_by_type.items():
            out.sample("dtg_scenario_recall", {**s, "anomaly_type": anomaly_type}, recall)
        out.sample("dtg_false_alarms", s, f.false_alarms)
        out.sample("dtg_false_alarms_per_hour", s, f.false_alarms_per_h)
        _summary(out, "dtg_detection_delay_seconds", s, (("0.5", f.delay_p50_s), ("0.9", f.delay_p90_s)),
                 f.n_delays)
        out.sample("dtg_fuel_r2", s, f.fuel_r2)
        out.sample("dtg_fuel_mae_litres_per_hour", s, f.fuel_mae_lph)
        out.sample("dtg_behaviour_macro_f1", s, f.behaviour_macro_f1)
        if f.behaviour is not None and f.behaviour.n:
            for truth, said, n in confusion_cells(f.behaviour):
                out.sample("dtg_behaviour_windows", {**s, "true_style": truth, "reported": said}, n)
        _summary(out, "dtg_inference_latency_seconds", s, (("0.5", f.latency_p50_ms), ("0.99", f.latency_p99_ms)),
                 f.latency_n, 1e-3)
        _summary(out, "dtg_end_to_end_latency_seconds", s,
                 (("0.5", f.end_to_end_p50_ms), ("0.99", f.end_to_end_p99_ms)), f.end_to_end_n, 1e-3)
        out.sample("dtg_scenario_duration_seconds", s, f.scenario_s)
        out.sample("dtg_scenario_wall_seconds", s, f.wall_s)
        out.sample("dtg_scenario_speed_ratio", s, f.speed_x if math.isfinite(f.speed_x) else None)
    if manifest is not None:
        out.family("dtg_model", "info", "A model the app ran: its file and sha256.")
        out.family("dtg_model_size_bytes", "gauge", "Size of the model file.", "bytes")
        out.family("dtg_model_size_budget_bytes", "gauge", "The model's size budget.", "bytes")
        out.family("dtg_model_inference_latency_seconds", "summary",
                   "The app's reported inference time of this model, pooled over the runs.", "seconds")
        out.family("dtg_model_latency_p99_budget_seconds", "gauge", "The model's p99 latency budget.", "seconds")
        out.family("dtg_model_quality", "gauge",
                   "A quality figure of the model (metric), held out at training or measured in this run (source).")
        out.family("dtg_model_quality_budget", "gauge", "The model's quality budget (bound: min or max).")
        latency = model_latency(results)
        for name in MODEL_NAMES:
            entry = manifest.models[name]
            m = {"model": name}
            out.sample("dtg_model", {**m, "file": entry.path.name, "sha256": entry.sha256}, 1, "_info")
            out.sample("dtg_model_size_bytes", m, entry.bytes)
            out.sample("dtg_model_size_budget_bytes", m, _number(entry.budgets.get("bytes_max")))
            stats = latency[name]
            _summary(out, "dtg_model_inference_latency_seconds", m, (("0.5", stats.p50), ("0.99", stats.p99)),
                     stats.n, 1e-3)
            p99_budget = _number(entry.budgets.get("p99_ms_max"))
            out.sample("dtg_model_latency_p99_budget_seconds", m, None if p99_budget is None else p99_budget * 1e-3)
        for row in budget_rows(results, manifest):
            if row.budget in ("bytes_max", "p99_ms_max"):
                continue
            metric = BUDGET_KEYS.get(row.budget, ("", row.budget))[1]
            m = {"model": row.model, "metric": metric}
            out.sample("dtg_model_quality", {**m, "source": "held_out"}, row.held_out)
            out.sample("dtg_model_quality", {**m, "source": "run"}, row.in_run)
            out.sample("dtg_model_quality_budget", {**m, "bound": "max" if row.comparison == "<=" else "min"},
                       row.required)
    return out.text()
