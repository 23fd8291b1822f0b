"""The session report: index.html opened in headless Chromium, metrics.txt as OpenMetrics, JUnit properties.

One real pytest session (two short scenarios through the whole simulated chain, at 100x) runs once per module in
a subprocess, exactly as `make sim` runs the bundled ones; the tests read what it wrote. The browser is Debian's
`chromium`, driven over the DevTools protocol on a pipe (`--remote-debugging-pipe`: fd 3 in, fd 4 out, one JSON
message per NUL-terminated chunk), so no websocket client is needed. `make test` installs chromium when it is
missing and the user is root; without it the browser test fails under CI=true and skips elsewhere.
"""
from __future__ import annotations

import base64
import fcntl
import json
import os
import select
import shutil
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from pathlib import Path
from urllib.parse import unquote, urlparse

import pytest

from harness.inference.models import ModelSet
from harness.report.html import SECTIONS, ReportContext, Section, esc, render_html, write_report
from harness.rig.rigfile import BUILTIN_SIM_RIG, RigConfig
from harness.run.chain import run_scenario
from harness.world.scenario import load_scenario

ROOT = Path(__file__).resolve().parents[1]
MANIFEST = ROOT / "models" / "manifest.json"

GPS_JUMP = """\
name: report-gps-jump
description: A <b>short</b> drive & one GPS jump ("quoted").
vehicle: passenger_car
seed: 5
route:
  generated: {duration_s: 240, mix: {urban: 1.0}}
anomalies:
  - {type: gps_jump, at_s: 150, sustain_s: 20, severity: 0.8}
expect:
  recall_min: 1.0
  false_alarms_per_h_max: 60
"""
# Fails on purpose (no fuel model is that good), so the report shows a FAIL beside a PASS.
CLEAN = """\
name: report-clean
vehicle: passenger_car
seed: 6
route:
  generated: {duration_s: 180, mix: {rural: 1.0}}
expect:
  false_alarms_per_h_max: 60
  fuel_mae_lph_max: 0.000001
  behaviour_accuracy_min: 0   # a 3-minute drive: the report test fails fuel_mae_lph alone, on purpose
"""
CHROMIUM_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--hide-scrollbars", "--window-size=1400,1000")


# --- one real session ---------------------------------------------------------------------------------------------

def run_session(work: Path, *extra: str):
    """A pytest session over the two scenario files in `work`, as `make sim` runs them: (its output, its
    artifacts folder, its JUnit XML)."""
    (work / "scenarios").mkdir()
    (work / "scenarios" / "gps_jump.yaml").write_text(GPS_JUMP)
    (work / "scenarios" / "clean.yaml").write_text(CLEAN)
    junit = work / "junit.xml"
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "harness.plugin", "-p", "no:cacheprovider", "-m", "sim", "scenarios",
         "--dtg-artifacts", "reports", "--dtg-time-scale", "100", "--dtg-models", str(MANIFEST),
         "--junitxml", str(junit), *extra],
        cwd=work, capture_output=True, text=True, timeout=240)
    runs = sorted((work / "reports").iterdir())
    assert len(runs) == 1, proc.stdout + proc.stderr
    return proc, runs[0], junit


@pytest.fixture(scope="module")
def session(tmp_path_factory):
    return run_session(tmp_path_factory.mktemp("session"))


@pytest.mark.sim
def test_under_xdist_the_controller_reports_every_workers_scenarios(tmp_path):
    proc, folder, _ = run_session(tmp_path, "-n", "2", "--dist", "loadfile")
    assert "1 failed, 1 passed" in proc.stdout, proc.stdout + proc.stderr
    table = proc.stdout[proc.stdout.index("dtg-hil scenarios"):]
    assert "report-clean" in table and "report-gps-jump" in table, proc.stdout
    # rows in collection order (file, then name), whichever worker finished first
    assert table.index("report-clean") < table.index("report-gps-jump")
    assert f"report: {Path('reports') / folder.name / 'index.html'}" in proc.stdout
    page = (folder / "index.html").read_text(encoding="utf-8")
    for stem in ("gps_jump", "clean"):
        assert json.loads((folder / stem / "result.json").read_text())["scenario_sha256"] in page


@pytest.mark.sim
def test_the_session_writes_index_html_and_metrics_txt_and_prints_the_path(session):
    proc, folder, _ = session
    assert proc.returncode == 1, proc.stdout + proc.stderr  # report-clean fails on purpose
    assert "1 failed, 1 passed" in proc.stdout, proc.stdout
    index = folder / "index.html"
    assert f"report: {Path('reports') / folder.name / 'index.html'}" in proc.stdout
    page = index.read_text(encoding="utf-8")
    assert page.startswith("<!DOCTYPE html>")
    # text from a scenario file is escaped, never markup
    assert "A &lt;b&gt;short&lt;/b&gt; drive &amp; one GPS jump (&quot;quoted&quot;)." in page
    assert "<b>short</b>" not in page
    # self-contained: no script, nothing fetched from elsewhere, every link relative
    assert "<script" not in page and "http://" not in page and "https://" not in page
    for sha in (json.loads((folder / stem / "result.json").read_text())["scenario_sha256"]
                for stem in ("gps_jump", "clean")):
        assert sha in page
    manifest = json.loads(MANIFEST.read_text())
    for model in manifest["models"].values():
        assert model["sha256"] in page
    assert (folder / "metrics.txt").read_text().endswith("# EOF\n")
    clean = page[page.index('<h3>report-clean'):]
    assert "<p>Behaviour: macro-F1 " in clean[:clean.index("</section>")]


@pytest.mark.sim
def test_the_report_names_the_failed_criteria_and_what_made_it(session):
    from importlib.metadata import version

    from harness.core.version import git_commit

    proc, folder, _ = session
    page = (folder / "index.html").read_text(encoding="utf-8")
    summary = page[page.index('id="summary"'):page.index('id="anomaly-types"')]
    failed = summary[summary.index("report-clean"):]
    assert "fuel_mae_lph" in failed[:failed.index("</tr>")]  # the summary row names the criterion it missed
    passed = summary[summary.index("report-gps-jump"):]
    assert "fuel_mae_lph" not in passed[:passed.index("</tr>")]
    about = page[page.index('<p class="about">'):]
    about = about[:about.index("</p>")]
    assert f"dtg-hil {version('dtg-hil')}" in about and "rig builtin-sim" in about
    assert "command: <code>pytest -p harness.plugin -p no:cacheprovider -m sim scenarios" in about
    commit = git_commit()
    assert commit is None or commit in about
    table = proc.stdout[proc.stdout.index("dtg-hil scenarios"):]
    assert f"dtg-hil {version('dtg-hil')}" in table and "criteria not met" in table
    assert [line.split()[-1] for line in table.splitlines() if line.startswith("report-clean ")] == ["fuel_mae_lph"]
    metrics = (folder / "metrics.txt").read_text()
    assert f'version="{version("dtg-hil")}"' in metrics


def test_failures_come_first_in_every_report_form():
    from types import SimpleNamespace

    from harness.report.tables import failures_first

    runs = [SimpleNamespace(name=n, verdict=v) for n, v in (("a", "PASS"), ("b", "FAIL"), ("c", "PASS"),
                                                            ("d", "ERROR"))]
    assert [r.name for r in failures_first(runs)] == ["b", "d", "a", "c"]


@pytest.mark.sim
def test_metrics_txt_is_openmetrics_with_the_figures(session):
    from prometheus_client.openmetrics.parser import text_string_to_metric_families

    _, folder, _ = session
    families = {f.name: f for f in text_string_to_metric_families((folder / "metrics.txt").read_text())}

    def value(family: str, **labels: str) -> float:
        found = [s.value for s in families[family].samples if all(s.labels.get(k) == v for k, v in labels.items())]
        assert len(found) == 1, (family, labels, families[family].samples)
        return found[0]

    assert value("dtg_scenario_passed", scenario="report-gps-jump") == 1
    assert value("dtg_scenario_passed", scenario="report-clean") == 0
    assert value("dtg_scenario_recall", scenario="report-gps-jump", anomaly_type="gps_jump") == 1
    assert value("dtg_scenario_recall", scenario="report-gps-jump", anomaly_type="all") == 1
    assert value("dtg_false_alarms_per_hour", scenario="report-clean") >= 0
    assert families["dtg_detection_delay_seconds"].type == "summary"
    assert value("dtg_detection_delay_seconds", scenario="report-gps-jump", quantile="0.5") >= 0
    assert value("dtg_inference_latency_seconds", scenario="report-clean", quantile="0.99") > 0
    assert value("dtg_fuel_mae_litres_per_hour", scenario="report-clean") > 0
    for model in ("fuel", "anomaly", "behaviour"):
        assert value("dtg_model_size_bytes", model=model) == (ROOT / "models" / f"{model}.onnx").stat().st_size
        assert value("dtg_model_inference_latency_seconds", model=model, quantile="0.99") > 0
    sha = json.loads((folder / "gps_jump" / "result.json").read_text())["scenario_sha256"]
    assert value("dtg_scenario", scenario="report-gps-jump", sha256=sha) == 1
    # behaviour: macro-F1 and the confusion matrix, as result.json has them (the clean drive is all normal)
    behaviour = json.loads((folder / "clean" / "result.json").read_text())["behaviour"]
    assert behaviour["applicable"] and behaviour["windows"] > 100
    assert value("dtg_behaviour_macro_f1", scenario="report-clean") == pytest.approx(behaviour["macro_f1"])
    for j, reported in enumerate(("normal", "eco", "aggressive")):
        assert value("dtg_behaviour_windows", scenario="report-clean", true_style="normal",
                     reported=reported) == behaviour["confusion"][0][j]


@pytest.mark.sim
def test_junit_xml_carries_the_figures_as_properties(session):
    _, folder, junit = session
    cases = {case.get("name"): {p.get("name"): p.get("value") for p in case.iter("property")}
             for case in ET.parse(junit).getroot().iter("testcase")}
    props = cases["report-gps-jump[sim]"]
    assert props["verdict"] == "PASS"
    assert float(props["recall"]) == 1.0 and float(props["recall.gps_jump"]) == 1.0
    for name in ("false_alarms_per_h", "detection_delay_s_p50", "detection_delay_s_p90", "fuel_r2", "fuel_mae_lph",
                 "latency_ms_p50", "latency_ms_p99", "end_to_end_ms_p50", "end_to_end_ms_p99", "speed_x"):
        float(props[name])  # present, and a number
    assert props["artifacts"].endswith(str(Path(folder.name) / "gps_jump"))
    assert props["scenario_sha256"] == json.loads((folder / "gps_jump" / "result.json").read_text())["scenario_sha256"]
    assert props["expect: recall (all types)"].startswith("pass: ")
    assert 0 <= float(props["behaviour_macro_f1"]) <= 1
    assert sum(int(v) for k, v in props.items() if k.startswith("behaviour_confusion.")) \
        == int(props["behaviour_windows"])
    failed = cases["report-clean[sim]"]
    assert failed["verdict"] == "FAIL"
    assert failed["expect: fuel_mae_lph"].startswith("fail: fuel_mae_lph ")
    assert "recall" not in failed  # no events: recall is not measured, so not reported


# --- headless Chromium over the DevTools protocol -----------------------------------------------------------------

def chromium_or_skip() -> str:
    path = shutil.which("chromium")
    if path:
        return path
    reason = ("Debian's chromium is not installed: `make test` installs it when run as root, or "
              "`apt-get install --no-install-recommends chromium`")
    if os.environ.get("CI"):
        pytest.fail(f"{reason} (CI is set: the browser test must run in CI)")
    pytest.skip(reason)


class Chromium:
    """Headless Chromium with its DevTools protocol on a pipe. Every wait has a timeout; `close()` ends it."""

    def __init__(self, binary: str, timeout_s: float = 30.0):
        self.timeout_s = timeout_s
        self.profile = tempfile.mkdtemp(prefix="dtg-chromium-")
        to_child, self._to_chromium = os.pipe()
        self._from_chromium, from_child = os.pipe()

        def at_fds_3_and_4() -> None:  # dup out of the way first: a pipe end may itself be fd 3 or 4
            read_end = fcntl.fcntl(to_child, fcntl.F_DUPFD, 10)
            write_end = fcntl.fcntl(from_child, fcntl.F_DUPFD, 10)
            os.dup2(read_end, 3)
            os.dup2(write_end, 4)

        self.process = subprocess.Popen([binary, *CHROMIUM_FLAGS, f"--user-data-dir={self.profile}",
                                         "--remote-debugging-pipe", "about:blank"],
                                        pass_fds=(3, 4), preexec_fn=at_fds_3_and_4, stdin=subprocess.DEVNULL,
                                        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        os.close(to_child)
        os.close(from_child)
        self._buffer = b""
        self._next_id = 0
        self.events: list[dict] = []
        self.session_id: str | None = None

    def _read(self, until, what: str) -> dict:
        deadline = time.monotonic() + self.timeout_s
        while True:
            while b"\0" in self._buffer:
                raw, self._buffer = self._buffer.split(b"\0", 1)
                message = json.loads(raw)
                if until(message):
                    return message
                if "method" in message:
                    self.events.append(message)
            left = deadline - time.monotonic()
            ready, _, _ = select.select([self._from_chromium], [], [], max(left, 0))
            if not ready:
                raise TimeoutError(f"chromium: no {what} within {self.timeout_s} s")
            chunk = os.read(self._from_chromium, 1 << 16)
            if not chunk:
                stderr = self.process.stderr.read().decode(errors="replace")[-2000:] if self.process.stderr else ""
                raise RuntimeError(f"chromium closed the pipe while waiting for {what}; exit code "
                                   f"{self.process.poll()}; stderr: {stderr}")
            self._buffer += chunk

    def call(self, method: str, params: dict | None = None, *, session: bool = True) -> dict:
        self._next_id += 1
        message = {"id": self._next_id, "method": method, "params": params or {}}
        if session and self.session_id:
            message["sessionId"] = self.session_id
        os.write(self._to_chromium, json.dumps(message).encode() + b"\0")
        reply = self._read(lambda m, i=self._next_id: m.get("id") == i, f"reply to {method}")
        if "error" in reply:
            raise RuntimeError(f"chromium: {method} failed: {reply['error']}")
        return reply["result"]

    def wait_event(self, method: str) -> dict:
        for i, event in enumerate(self.events):
            if event["method"] == method:
                return self.events.pop(i)
        return self._read(lambda m: m.get("method") == method, method)

    def open(self, url: str) -> None:
        target = self.call("Target.createTarget", {"url": "about:blank"}, session=False)["targetId"]
        self.session_id = self.call("Target.attachToTarget", {"targetId": target, "flatten": True},
                                    session=False)["sessionId"]
        self.call("Page.enable")
        self.call("Network.enable")
        self.events.clear()
        self.call("Page.navigate", {"url": url})
        self.wait_event("Page.loadEventFired")

    def evaluate(self, expression: str):
        result = self.call("Runtime.evaluate", {"expression": expression, "returnByValue": True})
        if "exceptionDetails" in result:
            raise RuntimeError(f"chromium: {expression[:60]}...: {result['exceptionDetails']}")
        return result["result"]["value"]

    def screenshot(self, out: Path) -> int:
        data = base64.b64decode(self.call("Page.captureScreenshot", {"format": "png", "captureBeyondViewport": True})
                                ["data"])
        out.write_bytes(data)
        return len(data)

    def close(self) -> None:
        try:
            if self.process.poll() is None:
                try:
                    self.call("Browser.close", session=False)
                except (RuntimeError, TimeoutError, OSError):
                    pass
                try:
                    self.process.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    self.process.kill()
                    self.process.wait(timeout=10)
        finally:
            for fd in (self._to_chromium, self._from_chromium):
                os.close(fd)
            if self.process.stderr:
                self.process.stderr.close()
            shutil.rmtree(self.profile, ignore_errors=True)


# What the page shows once loaded: the summary table, every image (loaded = naturalWidth > 0), every link.
PAGE_STATE = """JSON.stringify((() => {
  const summary = document.querySelector('table.summary');
  const page = location.href.split('#')[0];
  return {
    summary_rows: summary ? [...summary.tBodies[0].rows].map(r => [...r.cells].map(c => c.textContent)) : null,
    summary_height: summary ? summary.getBoundingClientRect().height : 0,
    images: [...document.images].map(i => ({src: i.getAttribute('src'), url: i.src, complete: i.complete,
                                            width: i.naturalWidth, height: i.naturalHeight,
                                            shown: i.getBoundingClientRect().width})),
    links: [...document.querySelectorAll('a[href]')].map(a => ({href: a.getAttribute('href'), url: a.href,
      same_page: a.href.split('#')[0] === page,
      target_found: a.hash ? !!document.getElementById(decodeURIComponent(a.hash.slice(1))) : null})),
    scenario_sections: document.querySelectorAll('section.scenario').length,
  };
})())"""


def page_problems(binary: str, index: Path, screenshot: Path | None = None) -> tuple[dict, list[str]]:
    """Open `index` in headless Chromium; return what the page shows and every problem found with it."""
    browser = Chromium(binary)
    try:
        browser.open(index.resolve().as_uri())
        state = json.loads(browser.evaluate(PAGE_STATE))
        if screenshot is not None:
            assert browser.screenshot(screenshot) > 10_000
        network = list(browser.events)
    finally:
        browser.close()
    problems = []
    if state["summary_rows"] is None or state["summary_height"] <= 0:
        problems.append("no summary table shown")
    for image in state["images"]:
        if not image["complete"] or image["width"] <= 0 or image["shown"] <= 0:
            problems.append(f"image not loaded: {image['src']}")
    for link in state["links"]:
        if link["same_page"]:
            if link["target_found"] is False:
                problems.append(f"link to a missing anchor: {link['href']}")
            continue
        url = urlparse(link["url"])
        if url.scheme != "file":
            problems.append(f"link out of the report: {link['href']}")
        elif not Path(unquote(url.path)).is_file():
            problems.append(f"broken link: {link['href']}")
    for event in network:
        if event["method"] == "Network.requestWillBeSent":
            url = event["params"]["request"]["url"]
            if not url.startswith(("file:", "data:")):
                problems.append(f"the page fetched from outside: {url}")
        elif event["method"] == "Network.loadingFailed":
            problems.append(f"a resource failed to load: {event['params'].get('errorText')}")
    return state, problems


@pytest.mark.sim
def test_index_html_renders_in_headless_chromium(session, tmp_path):
    binary = chromium_or_skip()
    _, folder, _ = session
    started = time.monotonic()
    state, problems = page_problems(binary, folder / "index.html", tmp_path / "report.png")
    assert problems == []
    rows = {row[0]: row for row in state["summary_rows"]}
    assert set(rows) == {"report-gps-jump", "report-clean"}
    assert rows["report-gps-jump"][1] == "PASS" and rows["report-clean"][1] == "FAIL"
    assert state["scenario_sections"] == 2
    plots = [i for i in state["images"] if i["src"].endswith("/run.png")]
    assert sorted(i["src"] for i in plots) == ["clean/run.png", "gps_jump/run.png"]
    assert all(i["width"] > 400 and i["height"] > 400 for i in plots)
    assert any(link["href"] == "gps_jump/events.log" for link in state["links"])
    assert time.monotonic() - started < 30


@pytest.mark.sim
def test_the_browser_check_finds_a_missing_plot_and_a_broken_link(session, tmp_path):
    binary = chromium_or_skip()
    _, folder, _ = session
    broken = tmp_path / "report"
    shutil.copytree(folder, broken)
    (broken / "clean" / "run.png").unlink()
    (broken / "gps_jump" / "labels.json").unlink()
    _, problems = page_problems(binary, broken / "index.html")
    assert "image not loaded: clean/run.png" in problems
    assert "broken link: gps_jump/labels.json" in problems


# --- the report module, in-process ----------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def one_run(tmp_path_factory):
    path = tmp_path_factory.mktemp("sc") / "gps_jump.yaml"
    path.write_text(GPS_JUMP)
    rig = RigConfig(**{**BUILTIN_SIM_RIG.__dict__, "models": MANIFEST})
    with ModelSet.open(MANIFEST) as models:
        yield run_scenario(load_scenario(path), rig, models, tmp_path_factory.mktemp("run") / "gps_jump"), models


@pytest.mark.sim
def test_extra_sections_are_appended_and_artifacts_outside_the_folder_are_copied_in(one_run, tmp_path):
    result, models = one_run
    extra = Section("extra", "Extra <figures>", lambda ctx: f"<p>{esc(len(ctx.results))} runs</p>")
    files = write_report([result], tmp_path / "report", manifest=models.manifest, sections=(*SECTIONS, extra))
    page = files.index.read_text()
    assert page.index('id="provenance"') < page.index('<h2 id="extra">Extra &lt;figures&gt;</h2>')
    assert '<a href="#extra">' in page and "<p>1 runs</p>" in page
    # the run's artifacts live outside the report folder: the plot is copied in, and linked there
    assert 'src="assets/gps_jump-run.png"' in page
    copied = tmp_path / "report" / "assets" / "gps_jump-run.png"
    assert copied.read_bytes() == (result.artifacts / "run.png").read_bytes()
    assert files.metrics.read_text().endswith("# EOF\n")


@pytest.mark.sim
def test_a_section_with_nothing_to_show_is_left_out_and_budgets_compare_with_the_manifest(one_run, tmp_path):
    result, models = one_run
    ctx = ReportContext([result], tmp_path, models.manifest)
    page = render_html(ctx, (*SECTIONS, Section("empty", "Nothing", lambda ctx: "")))
    assert 'id="empty"' not in page and "Nothing" not in page
    budgets = page[page.index('<h2 id="budgets">'):page.index('<h2 id="provenance">')]
    for model in ("fuel", "anomaly", "behaviour"):
        assert f">{model}</td>" in budgets
    assert "size [bytes]" in budgets and "p99 latency [ms]" in budgets and "fuel R²" in budgets
    assert f"{models.manifest.models['fuel'].bytes:,}" in budgets
