"""The HTML report of a session: one self-contained folder a browser opens with no network.

`write_report(results, folder)` writes `folder/index.html` and `folder/metrics.txt` (the OpenMetrics text of
`harness.report.tables.openmetrics_text`). The page is built from sections, each a `Section` whose renderer turns a
`ReportContext` into an HTML fragment; `SECTIONS` is the default list, in page order:

- summary: one row per scenario, those that did not pass first (verdict, the failed criteria or the error,
  events, recall, false alarms/h, detection delay, fuel error, latency, speed), linked to its scenario section;
- anomaly types: recall and delay per type, pooled over the runs;
- scenarios (those that did not pass first): per scenario its criteria (measured vs required), recall per type,
  the run's plot (`run.png`: signals with the anomaly windows shaded, anomaly score against its threshold with
  alarms marked, fuel prediction against truth) and links to its artifacts;
- budgets: each model's size, p99 latency and quality against its budget, held out (manifest) and in the run;
- provenance: the rig, the models manifest with each model's sha256, each scenario file's sha256.

The page's header names what made it: dtg-hil's version, the git commit of its checkout (when there is one),
the command line and the rig. A caller adds sections by passing `sections=(*SECTIONS, Section(...))`. Every text
is escaped; every link is relative to the folder and points into it (artifacts outside the folder are copied into
`folder/assets/`); the page has no script and loads nothing from outside (its style is inline).

What this module does not do: compute figures (`harness.report.tables` does, once for every report form) or draw
plots (`harness.report.plot`, at the end of each run).
"""
from __future__ import annotations

import html
import math
import re
import shlex
import shutil
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote

from harness.core.version import dtg_hil_version, git_commit
from harness.inference.models import MODEL_NAMES, Manifest, ManifestError, load_manifest
from harness.judge.metrics.behaviour import INVALID_CLASS
from harness.judge.metrics.expect import NO_BEHAVIOUR_WINDOW
from harness.judge.result import RIG_SIDE, RunResult
from harness.report.numbers import fixed_or_dash as _num
from harness.report.tables import (
    BudgetRow,
    anomaly_type_rows,
    budget_rows,
    failures_first,
    openmetrics_text,
    scenario_figures,
    speed_line,
)
from harness.wire.behaviour import STYLES

#: Artifact files of a run that the scenario section links to when present (run.py writes them).
ARTIFACT_FILES = ("events.log", "can.blf", "labels.json", "result.json", "uart.bin", "logcat.txt")


def esc(value: object) -> str:
    """Text for HTML content or a quoted attribute."""
    return html.escape(str(value), quote=True)


def scenario_anchor(index: int, name: str) -> str:
    """The id of a scenario's section: its position (names need not be unique) and a slug of its name."""
    return f"scenario-{index}-" + (re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-") or "unnamed")


@dataclass
class ReportContext:
    """What a section renderer sees: the runs, the report folder, the models manifest (None if unreadable)."""

    results: Sequence[RunResult]  # failures first (`harness.report.tables.failures_first`), as every section shows
    folder: Path
    manifest: Manifest | None
    generated: str = field(default_factory=lambda: time.strftime("%Y-%m-%d %H:%M:%S %Z"))
    command: str = field(default_factory=lambda: shlex.join(sys.argv))  # the command line of the session
    version: str = field(default_factory=dtg_hil_version)
    commit: str | None = field(default_factory=git_commit)

    def href(self, path: Path) -> str:
        """A relative URL, from the report folder, of a file: its own if inside the folder, else of a copy in
        `assets/` (so the folder stays self-contained)."""
        path = Path(path).resolve()
        folder = self.folder.resolve()
        if not path.is_relative_to(folder):
            copy = folder / "assets" / f"{path.parent.name}-{path.name}"
            copy.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, copy)
            path = copy
        return quote(path.relative_to(folder).as_posix())


@dataclass(frozen=True)
class Section:
    """One part of the page: `render(context)` returns an HTML fragment (escaped), or "" to leave it out."""

    id: str
    title: str
    render: Callable[[ReportContext], str]


def _table(header: Sequence[str], rows: Sequence[Sequence[str]], css: str = "",
           text_columns: Sequence[int] = (0,)) -> str:
    """A table from already-escaped cells; a cell may be a (html, css class) pair. Columns in `text_columns`
    align left, the others (numbers) right."""
    head = "".join(f'<th class="text">{h}</th>' if i in text_columns else f"<th>{h}</th>"
                   for i, h in enumerate(header))
    body = []
    for row in rows:
        cells = []
        for i, cell in enumerate(row):
            text, cls = cell if isinstance(cell, tuple) else (cell, "")
            cls = " ".join(c for c in (cls, "text" if i in text_columns else "") if c)
            cells.append(f'<td class="{cls}">{text}</td>' if cls else f"<td>{text}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    return (f'<table class="{css}">' if css else "<table>") + \
        f"<thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def _verdict(figures) -> tuple[str, str]:
    """The verdict cell of a run (`harness.report.tables.ScenarioFigures`): PASS, FAIL, or ERROR (no verdict on the
    unit)."""
    return figures.verdict, figures.verdict.lower()


def _loss_table(r: RunResult) -> str:
    """The run's loss table: the unit's stages, then the rig's own rows
    (`harness.judge.result.Accounting.data_loss`)."""
    rows = []
    for stage, lost, of in r.accounting.data_loss():
        side = "rig" if stage.startswith(RIG_SIDE) else "unit"
        rows.append([esc(stage[len(RIG_SIDE):] if side == "rig" else stage), side, str(lost), str(of),
                     (_num(100.0 * lost / max(of, 1), 3), "fail" if lost else "pass")])
    return _table(["stage", "side", "lost", "of", "lost [%]"], rows, text_columns=(0, 1))


# --- sections -----------------------------------------------------------------------------------------------------

def summary_section(ctx: ReportContext) -> str:
    rows = []
    for i, r in enumerate(ctx.results):
        f = scenario_figures(r)
        rows.append([
            f'<a href="#{scenario_anchor(i, f.scenario)}">{esc(f.scenario)}</a>', _verdict(f),
            (esc(f.why), "fail" if f.why else ""), str(f.n_events), _num(f.recall), _num(f.false_alarms_per_h),
            _num(f.delay_p50_s, 0), _num(f.delay_p90_s, 0), _num(f.fuel_r2, 3), _num(f.fuel_mae_lph),
            _num(f.behaviour_macro_f1),
            _num(f.latency_p50_ms, 3), _num(f.latency_p99_ms, 3), _num(f.end_to_end_p50_ms, 1),
            _num(f.end_to_end_p99_ms, 1),
            f"{f.speed_x:.0f}×",
        ])
    passed = sum(r.verdict == "PASS" for r in ctx.results)
    errors = sum(r.verdict == "ERROR" for r in ctx.results)
    header = ["scenario", "verdict", "failed criteria / error", "events", "recall", "false alarms/h", "delay p50 [s]",
              "delay p90 [s]", "fuel R²", "fuel MAE [L/h]", "behaviour macro-F1", "inference p50 [ms]",
              "inference p99 [ms]", "end-to-end p50 [ms]", "end-to-end p99 [ms]", "speed"]
    return (f'<p class="total {"pass" if passed == len(ctx.results) else "fail"}">{passed} of {len(ctx.results)} '
            f"scenarios passed" + (f"; {errors} ERROR (the run is no verdict on the unit)" if errors else "") +
            ".</p>" + _table(header, rows, "summary", text_columns=(0, 2)) +
            f"<p>{esc(speed_line(ctx.results))}</p>"
            "<p class=\"note\">Recall: detected / injected events. False alarms: alarm episodes outside every "
            "event's detection window, per hour of normal driving. Delay: first alarm − onset, scenario seconds. "
            "Behaviour macro-F1: over the windows of one driven style outside the anomalies, the styles in the labels "
            "or the predictions. "
            "Inference: the app's own reported time per model result. End-to-end: a window's last sample on the "
            "bus to its event at the harness, wall time. “-”: not measured.</p>")


def anomaly_types_section(ctx: ReportContext) -> str:
    rows = [[esc(row.anomaly_type), str(row.n_events), str(row.n_detected),
             (f"{row.recall:.2f}", "pass" if row.n_detected == row.n_events else "fail"),
             _num(row.delay.p50, 0), _num(row.delay.p90, 0)] for row in anomaly_type_rows(ctx.results)]
    if not rows:
        return "<p>No anomaly events were injected.</p>"
    return _table(["anomaly type", "events", "detected", "recall", "delay p50 [s]", "delay p90 [s]"], rows)


def _scenario_block(ctx: ReportContext, index: int, r: RunResult) -> str:
    f = scenario_figures(r)
    text, cls = _verdict(f)
    parts = [f'<section class="scenario" id="{scenario_anchor(index, f.scenario)}">',
             f'<h3>{esc(f.scenario)} <span class="badge {cls}">{text}</span></h3>']
    if r.error is not None:
        parts.append(f'<p class="error">ERROR: {esc(r.error.splitlines()[0])}</p>')
    if r.scenario.description:
        parts.append(f"<p>{esc(r.scenario.description)}</p>")
    if not r.judged:
        parts.append("<p>The run ended before it was judged: it has no figures; what it left is in its artifacts "
                     "(result.json says how far it got).</p>")
        parts.append(_artifact_links(ctx, r))
        parts.append("</section>")
        return "".join(parts)
    criteria = [[esc(c.name), "-" if c.measured is None else esc(f"{c.measured:.4g}"),
                 esc(f"{c.comparison} {c.required:g}"), (esc(c.status), "pass" if c.passed else "fail"),
                 esc(c.note)]
                for c in r.judgement.criteria]
    if criteria:
        parts.append(_table(["criterion", "measured", "required", "status", "note"], criteria,
                            text_columns=(0, 3, 4)))
    else:
        parts.append("<p>The scenario sets no expect: criteria.</p>")
    by_type = r.metrics.detection.recall_by_type
    if by_type:
        detections = r.metrics.detection.detections
        rows = []
        for t, tr in by_type.items():
            delays = [d.detection_delay_s for d in detections if d.event.type == t and d.detected]
            rows.append([esc(t), str(tr.n_events), str(tr.n_detected),
                         (_num(tr.recall), "pass" if tr.n_detected == tr.n_events else "fail"),
                         esc(", ".join(f"{x:.0f}" for x in delays) or "-")])
        parts.append(_table(["anomaly type", "events", "detected", "recall", "delays [s]"], rows))
    parts.append(_behaviour_block(r))
    a = r.accounting
    parts.append(f'<p class="note">{f.scenario_s / 60:.1f} min of scenario in {f.wall_s:.1f} s ({f.speed_x:.0f}×); '
                 f"{a.can_frames_sent} CAN frames, {a.samples_received} samples received, {a.windows_scored} windows "
                 f"scored, {a.link_frames_lost} link frames lost, {a.link_crc_errors} CRC errors, "
                 f"{a.event_problems} malformed event lines.</p>")
    parts.append(_loss_table(r))
    plot = r.artifacts / "run.png"
    if plot.is_file():
        parts.append(f'<figure><img class="plot" src="{ctx.href(plot)}" alt="{esc(f.scenario)}: signals, anomaly '
                     f'score and fuel"><figcaption>Key signals with each anomaly window shaded; the anomaly score '
                     f"against its threshold (dashed) with alarms (dots) and rule events (lines); the fuel prediction "
                     f"against the truth; the predicted driving style.</figcaption></figure>")
    else:
        parts.append('<p class="fail">No plot: run.png is missing from the artifacts.</p>')
    parts.append(_artifact_links(ctx, r))
    parts.append("</section>")
    return "".join(parts)


def _behaviour_block(r: RunResult) -> str:
    """The run's behaviour confusion matrix (rows: the style driven; columns: the class reported) and macro-F1, or
    why it has none."""
    score = r.metrics.behaviour
    if score is None or score.n == 0:
        why = r.metrics.behaviour_not_judged if score is None else NO_BEHAVIOUR_WINDOW
        return f'<p class="note">Behaviour: not applicable ({esc(why)}).</p>'
    predicted = [*STYLES] + ([INVALID_CLASS] if any(row[-1] for row in score.confusion) else [])
    f1 = score.f1_by_class
    rows = [[esc(name), *(str(n) for n in row[:len(predicted)]), _num(f1.get(name))]
            for name, row in zip(STYLES, score.confusion, strict=False)]
    return (f'<p>Behaviour: macro-F1 {score.macro_f1:.3f}, accuracy {score.accuracy:.3f} over {score.n} windows '
            "(rows: the style driven; columns: the class reported).</p>"
            + _table(["style driven", *map(esc, predicted), "F1"], rows))


def _artifact_links(ctx: ReportContext, r: RunResult) -> str:
    links = [f'<a href="{ctx.href(r.artifacts / name)}">{esc(name)}</a>' for name in ARTIFACT_FILES
             if (r.artifacts / name).is_file()]
    return f"<p>Artifacts: {' · '.join(links)}</p>" if links else ""


def scenarios_section(ctx: ReportContext) -> str:
    return "".join(_scenario_block(ctx, i, r) for i, r in enumerate(ctx.results))


def _budget_cell(value: float | None, ok: bool | None, row: BudgetRow) -> tuple[str, str] | str:
    if value is None:
        return "-"
    text = f"{value:,.0f}" if row.budget == "bytes_max" else f"{value:.4g}"
    if ok is None:  # shown, not judged (host CPU time of a simulated app: see the note)
        return esc(text)
    return (esc(text) + ("" if ok else " ✗"), "pass" if ok else "fail")


def budgets_section(ctx: ReportContext) -> str:
    if ctx.manifest is None:
        return "<p class=\"fail\">The models manifest could not be read: no budgets to show.</p>"
    rows = []
    for row in budget_rows(ctx.results, ctx.manifest):
        required = f"{row.required:,.0f}" if row.budget == "bytes_max" else f"{row.required:g}"
        rows.append([esc(row.model), esc(row.label), esc(f"{row.comparison} {required}"),
                     _budget_cell(row.held_out, row.held_out_ok, row), _budget_cell(row.in_run, row.in_run_ok, row),
                     esc(row.note)])
    return (_table(["model", "budget", "required", "held out (manifest)", "this run", "note"], rows,
                   text_columns=(0, 1, 5)) +
            "<p class=\"note\">Held out: the manifest's figures (latency benchmarked at training, quality on test "
            "trips the models never saw). This run: pooled over the scenarios above. ✗: over budget. A simulated "
            "app's latency is this host's thread CPU time per call, shown but not judged against the device "
            "budget: <code>dtg-hil bench models</code>, the model tests and a rig whose app runs on a real phone "
            "judge it.</p>")


def provenance_section(ctx: ReportContext) -> str:
    rigs = []
    for rig in {id(r.rig): r.rig for r in ctx.results}.values():
        rigs.append([esc(rig.name), esc(rig.path or "built-in"), esc(rig.profile), esc(rig.codec),
                     esc(rig.can.get("interface", "")), esc(rig.android_kind),
                     esc(f"{rig.time_scale:g}×" if math.isfinite(rig.time_scale) else "virtual time, unpaced")])
    parts = ["<h3>Rig</h3>",
             _table(["rig", "file", "profile", "link codec", "CAN interface", "Android", "time scale"], rigs,
                    text_columns=range(6))]
    images = {(r.firmware["image"], r.firmware["sha256"], r.firmware["flashed_with"]): r.rig.name
              for r in ctx.results if getattr(r, "firmware", None) and r.firmware.get("sha256")}
    if images:  # a real STM32: what was flashed on it (harness.rig.bench)
        parts += ["<h3>Firmware</h3>",
                  _table(["rig", "image", "sha256", "flashed with"],
                         [[esc(rig), esc(image), f"<code>{esc(sha)}</code>", esc(how)]
                          for (image, sha, how), rig in images.items()], text_columns=range(4))]
    if ctx.manifest is not None:
        m = ctx.manifest
        parts.append(f"<h3>Models</h3><p>Manifest {esc(m.path)}, version {esc(m.version)}, "
                     f"model version {esc(m.raw.get('model_version', '-'))}, dataset sha256 "
                     f"<code>{esc(m.dataset.get('sha256', '-'))}</code>.</p>")
        models = [[esc(name), esc(m.models[name].path.name), f"{m.models[name].bytes:,}",
                   f"<code>{esc(m.models[name].sha256)}</code>"] for name in MODEL_NAMES]
        parts.append(_table(["model", "file", "bytes", "sha256"], models, text_columns=(0, 1, 3)))
    parts.append("<h3>Scenarios</h3>")
    scenarios = [[esc(r.scenario.name), esc(r.scenario.path or "-"), f"<code>{esc(r.scenario.sha256)}</code>"]
                 for r in ctx.results]
    parts.append(_table(["scenario", "file", "sha256"], scenarios, text_columns=(0, 1, 2)))
    parts.append(f'<p class="note">Generated {esc(ctx.generated)}. The figures as OpenMetrics: '
                 f'<a href="metrics.txt">metrics.txt</a>.</p>')
    return "".join(parts)


def sensitivity_section(ctx: ReportContext) -> str:
    """Per sweep (`harness.world.sweep`): recall and delay against severity, as a table and a plot; empty without
    sweeps."""
    from harness.report.sensitivity import sweep_sections

    return "".join(f"<h3>{esc(title)}</h3>{fragment}" for title, fragment in sweep_sections(ctx.results, ctx.folder))


#: The default sections, in page order.
SECTIONS: tuple[Section, ...] = (
    Section("summary", "Summary", summary_section),
    Section("anomaly-types", "Anomaly types", anomaly_types_section),
    Section("sensitivity", "Sensitivity (sweeps)", sensitivity_section),
    Section("scenarios", "Scenarios", scenarios_section),
    Section("budgets", "Model budgets", budgets_section),
    Section("provenance", "Rig, models and scenarios", provenance_section),
)

_STYLE = """
body { font-family: system-ui, sans-serif; margin: 1.5em auto; max-width: 1400px; color: #222; padding: 0 1em; }
nav a { margin-right: 1em; }
table { border-collapse: collapse; margin: 0.8em 0; font-size: 0.9em; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.6em; text-align: right; }
th { background: #f0f0f0; }
td.text, th.text { text-align: left; }
td.pass { background: #e4f4e4; } td.fail { background: #fbe1e1; } td.error { background: #fff0c2; }
.badge { font-size: 0.75em; padding: 0.1em 0.5em; border-radius: 0.3em; vertical-align: middle; }
.badge.pass { background: #2e7d32; color: #fff; } .badge.fail { background: #c62828; color: #fff; }
.badge.error { background: #8a6d00; color: #fff; } p.error { color: #8a6d00; font-weight: bold; }
p.total.pass { color: #2e7d32; font-weight: bold; } p.total.fail, p.fail { color: #c62828; font-weight: bold; }
.note { color: #555; font-size: 0.85em; }
section.scenario { border-top: 1px solid #ddd; margin-top: 1.5em; }
img.plot { max-width: 100%; height: auto; border: 1px solid #ddd; }
figcaption { color: #555; font-size: 0.85em; }
code { font-size: 0.85em; }
"""


def render_html(ctx: ReportContext, sections: Sequence[Section] = SECTIONS) -> str:
    """The whole page: a header, a table of contents, then each section that has something to show."""
    rendered = [(s, s.render(ctx)) for s in sections]
    rendered = [(s, body) for s, body in rendered if body]
    passed = sum(r.verdict == "PASS" for r in ctx.results)
    rigs = ", ".join(dict.fromkeys(r.rig.name for r in ctx.results))
    title = f"dtg-hil report: {passed} of {len(ctx.results)} scenarios passed on {rigs}"
    about = (f'<p class="about">dtg-hil {esc(ctx.version)}' + (f", commit <code>{esc(ctx.commit)}</code>"
                                                                if ctx.commit else "") +
             f"; rig {esc(rigs)}; generated {esc(ctx.generated)}<br>command: <code>{esc(ctx.command)}</code></p>")
    nav = "".join(f'<a href="#{esc(s.id)}">{esc(s.title)}</a>' for s, _ in rendered)
    body = "".join(f'<h2 id="{esc(s.id)}">{esc(s.title)}</h2>{content}' for s, content in rendered)
    return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
            f'<meta name="viewport" content="width=device-width, initial-scale=1">'
            f"<title>{esc(title)}</title><style>{_STYLE}</style></head>"
            f"<body><h1>{esc(title)}</h1>{about}<nav>{nav}</nav>{body}</body></html>\n")


@dataclass(frozen=True)
class ReportFiles:
    index: Path
    metrics: Path


def write_report(results: Sequence[RunResult], folder: Path, *, manifest: Manifest | None = None,
                 sections: Sequence[Section] = SECTIONS, command: str | None = None) -> ReportFiles:
    """Write `folder/index.html` and `folder/metrics.txt` for the runs; returns their paths.

    `manifest` defaults to the first run's rig's models manifest (read without re-hashing the files: the runs
    opened the models, which checked them). `command` is the session's command line (default: this process's).
    """
    if not results:
        raise ValueError("write_report: no scenario results to report")
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    if manifest is None:
        try:
            manifest = load_manifest(results[0].rig.models, check_files=False)
        except ManifestError:
            manifest = None  # the budgets section says so
    ctx = ReportContext(failures_first(results), folder, manifest,
                        **({"command": command} if command is not None else {}))
    index = folder / "index.html"
    index.write_text(render_html(ctx, sections), encoding="utf-8")
    metrics = folder / "metrics.txt"
    metrics.write_text(openmetrics_text(results, manifest, version=ctx.version, commit=ctx.commit), encoding="utf-8")
    return ReportFiles(index, metrics)
