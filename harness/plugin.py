"""The pytest plugin: scenario files as test items, the rig as fixtures, verdicts with measured vs required.

Every YAML file in a `scenarios/` folder is collected as two items, `[sim]` (marked `sim`, needs a simulated
rig) and `[hil]` (marked `hil`, needs a rig with real hardware). `--rig` picks the rig; without it the built-in
simulated rig is used, so `pytest -m sim` runs everything in simulation and `pytest -m hil` skips every item
with the setting it is missing. Markers only filter; the rig file decides the hardware.

A failing item reports each failed criterion (measured vs required) and the folder holding that run's
artifacts; each item carries the run's figures as JUnit properties (`pytest --junitxml`). At the end of the
session the plugin writes the HTML report (`index.html`) and `metrics.txt` (OpenMetrics) into the session's
artifacts folder (`harness.report.html`, docs/report.md), prints the per-scenario and per-anomaly-type tables,
and the path of the report.
"""
from __future__ import annotations

import dataclasses
import os
import pickle
import sys
import time
from pathlib import Path

import pytest

from harness.core.errors import DtgHilError
from harness.rig.rigfile import DEFAULT_SIM_TIME_SCALE, RigConfig, RigError, load_rig
from harness.world.scenario import Scenario, ScenarioError, load_scenario

_RESULTS = pytest.StashKey[list]()
_WORKER_RESULTS = "dtg_results"  # key of a pytest-xdist worker's pickled results in its workeroutput
_REPORT = pytest.StashKey[object]()  # the index.html written at session end, or the exception that stopped it


def pytest_addhooks(pluginmanager: pytest.PytestPluginManager) -> None:
    """labgrid (a lab of rigs, docs/lab.md) registers a pytest plugin for its own targets, whose hooks take every
    item for a function with fixtures and restyle logging; dtg-hil uses labgrid's client API, not that plugin: it is
    blocked (unregistered when it is already in)."""
    pluginmanager.set_blocked("labgrid")


def pytest_sessionstart(session: pytest.Session) -> None:
    session.config._dtg_session_started = time.monotonic()  # the session's wall time, for the speed line


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("dtg", "dtg-hil rig and scenarios")
    group.addoption("--rig", default=os.environ.get("DTG_RIG"), metavar="FILE",
                    help="rig file (YAML) naming the bench to run on, or labgrid:PLACE / labgrid:TAG=VALUE,... (a "
                         "place of a labgrid lab, docs/lab.md); default: $DTG_RIG, else the built-in simulated rig")
    group.addoption("--dtg-lab-wait", type=float, default=60.0, metavar="S",
                    help="with a labgrid rig: wait up to S seconds for a place someone else holds; default: 60")
    group.addoption("--dtg-time-scale", type=float, default=None, metavar="X",
                    help="at most this many scenario seconds per wall second on a simulated rig (on virtual time "
                         "it only paces, for demos: results are the same at any value); default: the rig file's "
                         f"time_scale (built-in rig: {DEFAULT_SIM_TIME_SCALE:g}, as fast as the CPU allows)")
    group.addoption("--dtg-models", default=None, metavar="MANIFEST",
                    help="models manifest the simulated app runs; default: the rig file's models "
                         "(built-in rig: models/manifest.json)")
    group.addoption("--dtg-artifacts", default="reports", metavar="DIR",
                    help="folder for each run's artifacts, under DIR/<session time>/; default: reports")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "sim: runs on the simulated rig (CI)")
    config.addinivalue_line("markers", "hil: needs a real rig (USB-CAN adapter, UART tap, Android phone)")
    config.stash[_RESULTS] = []


def pytest_collect_file(file_path: Path, parent: pytest.Collector):
    if file_path.suffix == ".yaml" and file_path.parent.name == "scenarios":
        return ScenarioFile.from_parent(parent, path=file_path)
    return None


class ScenarioFile(pytest.File):
    def collect(self):
        try:
            scenario = load_scenario(self.path)
        except ScenarioError as exc:
            raise self.CollectError(str(exc)) from None
        # A scenario with a `sweep:` stands for one scenario per sweep point, then a check of its curve.
        variants = scenario.variants()
        for variant in ("sim", "hil"):
            for one in variants:
                item = ScenarioItem.from_parent(self, name=f"{one.name}[{variant}]", scenario=one, variant=variant)
                item.add_marker(getattr(pytest.mark, variant))
                yield item
            if scenario.sweep is not None:
                item = SweepItem.from_parent(self, name=f"{scenario.name}[sweep-{variant}]", scenario=scenario,
                                             variants=tuple(v.name for v in variants))
                item.add_marker(getattr(pytest.mark, variant))
                yield item


class ScenarioFailed(DtgHilError, AssertionError):
    """A scenario ran and missed its `expect:` criteria."""


class _JudgedItem(pytest.Item):
    """An item whose failure is a verdict: it reports the failed criteria, not a traceback."""

    def repr_failure(self, excinfo, style=None):
        if isinstance(excinfo.value, ScenarioFailed):
            return str(excinfo.value)
        return super().repr_failure(excinfo, style=style)


class ScenarioItem(_JudgedItem):
    def __init__(self, *, scenario: Scenario, variant: str, **kwargs):
        super().__init__(**kwargs)
        self.scenario = scenario
        self.variant = variant

    def runtest(self) -> None:
        rig = _session_rig(self.config)
        if self.variant == "sim" and not rig.simulated:
            pytest.skip(f"sim tests need a simulated rig; --rig {rig.path} has real hardware")
        if self.variant == "hil" and rig.simulated:
            pytest.skip("no real rig configured: pass --rig FILE (or set DTG_RIG) naming a rig with real hardware "
                        "(android.kind: adb, a python-can interface other than virtual; rigs/loopback.yaml runs "
                        "the real drivers against stand-ins); "
                        f"the rig in use is '{rig.name}', which is simulated")
        reason = rig.unsupported(self.scenario)
        if reason:
            pytest.skip(reason)
        if rig.stm32_kind != "simulated":
            pytest.skip(f"rig '{rig.name}' has a real STM32; this version of dtg-hil drives a simulated STM32 "
                        "only (docs/rig.md, 'Bring-up of a real bench')")
        from harness.judge.result import RunError
        from harness.report.tables import junit_properties
        from harness.run.chain import run_scenario

        models, model_types = _session_models(self.config, rig)
        # Sweep variants each get their own folder: the file's name with the variant's suffix.
        folder = self.path.stem + self.scenario.name[len(self.scenario.sweep_base):] if self.scenario.sweep_base \
            else self.path.stem
        artifacts = _session_artifacts(self.config) / folder
        try:
            result = run_scenario(self.scenario, rig, models, artifacts, model_types)
        except RunError as error:
            judged = getattr(error, "result", None)  # the rig fell behind, or data was lost, after the run was judged
            if judged is not None:  # its figures are reported, with the verdict ERROR (pytest_runtest_makereport)
                self.config.stash[_RESULTS].append(judged)
                self.user_properties.extend(junit_properties(judged))
            raise
        self.config.stash[_RESULTS].append(result)

        # The same figures as the report, as JUnit <property> elements (pytest --junitxml).
        self.user_properties.extend(junit_properties(result))
        if not result.judgement.passed:
            raise ScenarioFailed(f"{self.scenario.name}: {len(result.judgement.failures)} criteria failed\n"
                                 f"{result.judgement.message}\nartifacts: {artifacts}")

    def reportinfo(self):
        return self.path, None, f"scenario {self.scenario.name} [{self.variant}]"


class SweepItem(_JudgedItem):
    """A sweep's curve, judged against its `sweep.expect:` once its variants have run in this session."""

    def __init__(self, *, scenario: Scenario, variants: tuple[str, ...], **kwargs):
        super().__init__(**kwargs)
        self.scenario = scenario
        self.variants = variants

    def runtest(self) -> None:
        from harness.report.sensitivity import judge_curve, sensitivity, sensitivity_table

        ran = [r for r in self.config.stash[_RESULTS] if r.scenario.name in self.variants]
        errors = [r for r in ran if r.error is not None]
        if errors:  # a curve with a point that is no verdict (the rig fell behind, data lost) is none either
            from harness.judge.result import RunError

            raise RunError(f"sweep {self.scenario.name}: {len(errors)} of {len(self.variants)} variants ended as "
                           f"ERROR, no curve to judge; {errors[0].scenario.name}: {errors[0].error.splitlines()[0]}")
        if not ran:
            pytest.skip(f"no variant of sweep {self.scenario.name} ran in this session (deselected, skipped, or "
                        "run on another worker)")
        points = sensitivity(ran).get(self.scenario.name, [])
        failures = judge_curve(self.scenario.sweep, points)
        missing = len(self.variants) - len({r.scenario.name for r in ran})
        if missing:
            failures.append(f"{missing} of {len(self.variants)} variants did not run to a result")
        if failures:
            raise ScenarioFailed(f"sweep {self.scenario.name}: {len(failures)} criteria failed\n" + "\n".join(failures)
                                 + "\n" + sensitivity_table(points))

    def reportinfo(self):
        return self.path, None, f"sweep {self.scenario.name} ({len(self.variants)} variants)"


def _run_error(excinfo) -> BaseException | None:
    """The `harness.judge.result.RunError` an item raised (the run failed: a part died, data was lost), else None."""
    import sys

    result = sys.modules.get("harness.judge.result")  # imported by any item that ran a scenario
    if result is None or excinfo is None or not isinstance(excinfo.value, result.RunError):
        return None
    return excinfo.value


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    """A scenario whose run failed (RunError, e.g. RigLagError: the rig fell behind, or DataLossError: data lost
    beyond the scenario's tolerance) is reported as an ERROR, not as a FAILED verdict: neither a pass nor a model
    failure. Its message carries the numbers."""
    outcome = yield
    report = outcome.get_result()
    error = _run_error(call.excinfo) if call.when == "call" and isinstance(item, (ScenarioItem, SweepItem)) \
        else None
    if error is not None and report.failed:
        report.dtg_run_error = True
        report.longrepr = f"{type(error).__name__}: {error}"


@pytest.hookimpl(tryfirst=True)
def pytest_report_teststatus(report, config: pytest.Config):
    if getattr(report, "dtg_run_error", False) and report.failed:
        return "error", "E", "ERROR"
    return None


def _session_rig(config: pytest.Config) -> RigConfig:
    if getattr(config, "_dtg_rig_error", None):  # a lab place not acquired: once per session, not per item
        raise pytest.UsageError(config._dtg_rig_error)
    if not hasattr(config, "_dtg_rig"):
        from harness.rig.lab import LabError, acquire_rig, parse_lab_arg

        try:
            lab = parse_lab_arg(config.getoption("--rig"))
            rig = acquire_rig(lab, config.getoption("--dtg-lab-wait")) if lab else load_rig(config.getoption("--rig"))
        except (RigError, LabError) as exc:
            config._dtg_rig_error = str(exc)
            raise pytest.UsageError(str(exc)) from None
        changes = {}
        if config.getoption("--dtg-time-scale") is not None:
            changes["time_scale"] = config.getoption("--dtg-time-scale")
        if config.getoption("--dtg-models") is not None:
            changes["models"] = Path(config.getoption("--dtg-models"))
        config._dtg_rig = dataclasses.replace(rig, **changes) if changes else rig
    return config._dtg_rig


def _session_models(config: pytest.Config, rig: RigConfig):
    if not hasattr(config, "_dtg_models"):
        from harness.inference.models import ManifestError, ModelSet
        from harness.world.anomalies import ANOMALY_TYPES

        try:
            models = ModelSet.open(rig.models)
        except ManifestError as exc:
            raise pytest.UsageError(str(exc)) from None
        # The anomaly model's alarms count for every type it covers; the rest are the rule detector's.
        covered = tuple(t for t in ANOMALY_TYPES if t not in models.manifest.rule_based_types)
        config._dtg_models = (models, covered)
    return config._dtg_models


def _session_artifacts(config: pytest.Config) -> Path:
    if not hasattr(config, "_dtg_artifacts"):
        shared = getattr(config, "workerinput", {}).get("dtg_artifacts")  # a pytest-xdist worker: the controller's
        config._dtg_artifacts = Path(shared) if shared else \
            Path(config.getoption("--dtg-artifacts")) / time.strftime("%Y%m%d-%H%M%S")
    return config._dtg_artifacts


@pytest.hookimpl(optionalhook=True)
def pytest_configure_node(node) -> None:
    """pytest-xdist: every worker writes its runs' artifacts into the controller's session folder."""
    node.workerinput["dtg_artifacts"] = str(_session_artifacts(node.config))


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node, error) -> None:
    """pytest-xdist: a worker has finished; its scenario results join the controller's, in the order the
    scenarios were collected in (file, then name), whichever worker ran them."""
    data = getattr(node, "workeroutput", {}).get(_WORKER_RESULTS)
    if data:
        results = node.config.stash.setdefault(_RESULTS, [])
        results.extend(pickle.loads(data))
        results.sort(key=lambda r: (str(r.scenario.path), r.scenario.name))


@pytest.fixture(scope="session")
def dtg_rig(pytestconfig: pytest.Config) -> RigConfig:
    """The rig this session runs on (`--rig`, default the built-in simulated rig)."""
    return _session_rig(pytestconfig)


@pytest.fixture(scope="session")
def dtg_models(pytestconfig: pytest.Config, dtg_rig: RigConfig):
    """The models the simulated app runs, and the anomaly types the anomaly model covers."""
    return _session_models(pytestconfig, dtg_rig)


@pytest.fixture(scope="session")
def dtg_artifacts(pytestconfig: pytest.Config) -> Path:
    """This session's artifacts folder."""
    return _session_artifacts(pytestconfig)


def pytest_sessionfinish(session: pytest.Session, exitstatus) -> None:
    """Write the HTML report and metrics.txt into the session's artifacts folder (before the terminal summary).

    A pytest-xdist worker instead hands its results to the controller (`pytest_testnodedown`), which reports
    the whole session."""
    config = session.config
    if "harness.rig.lab" in sys.modules:  # a labgrid place this process acquired: released on every exit path
        sys.modules["harness.rig.lab"].release_all()
    results = config.stash.get(_RESULTS, [])
    if hasattr(config, "workerinput"):
        if results:
            config.workeroutput[_WORKER_RESULTS] = pickle.dumps(results)
        return
    if not results:
        return
    from harness.report.html import write_report

    models = getattr(config, "_dtg_models", None)
    try:
        config.stash[_REPORT] = write_report(results, _session_artifacts(config),
                                             manifest=models[0].manifest if models else None).index
    except Exception as exc:  # noqa: BLE001 - a report that cannot be written fails the session, loudly
        config.stash[_REPORT] = exc
        if session.exitstatus == pytest.ExitCode.OK:
            session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_terminal_summary(terminalreporter, exitstatus, config: pytest.Config) -> None:
    results = config.stash.get(_RESULTS, [])
    if not results:
        return
    from harness.report.tables import full_report

    terminalreporter.section("dtg-hil scenarios")
    started = getattr(config, "_dtg_session_started", None)
    terminalreporter.write_line(full_report(results, None if started is None else time.monotonic() - started))
    from harness.report.sensitivity import write_sensitivity

    for base, table, png in write_sensitivity(results, _session_artifacts(config)):
        terminalreporter.write_line(f"\nsensitivity of sweep {base} ({png}):\n{table}")
    terminalreporter.write_line(f"artifacts: {_session_artifacts(config)}")
    report = config.stash.get(_REPORT, None)
    if isinstance(report, Exception):
        terminalreporter.write_line(f"HTML report NOT written: {type(report).__name__}: {report}", red=True)
    elif report is not None:
        terminalreporter.write_line(f"report: {report}")
