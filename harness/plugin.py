"""The pytest plugin: scenario files as test items, the rig as fixtures, verdicts with measured vs required.

Installed with the package as a `pytest11` entry point (pyproject.toml), so `pytest` finds it in any folder. Every
`.yaml`/`.yml` file named on the command line, and every one in a `scenarios/` folder pytest searches, is
collected as two items, `[sim]` (marked `sim`, needs a simulated rig) and `[hil]` (marked `hil`, needs a rig with
real hardware); each is marked too with its anomaly types and its vehicle (`-m fuel_leak`, `-k light_truck`).
`--rig` picks the rig (`harness.plugin_settings`: command line, `DTG_RIG`, ini file, in that order); without one
the built-in simulated rig is used, so `pytest -m sim` runs everything in simulation and `pytest -m hil` skips
every item with the setting it is missing. Markers only filter; the rig file decides the hardware. The rig file,
the models manifest and the options are checked before any item runs (a problem: exit 4, one line each).

A failing item reports each failed criterion (measured vs required) and the folder holding that run's
artifacts; each item carries the run's figures as JUnit properties (`pytest --junitxml`). At the end of the
session the plugin writes the HTML report (`index.html`) and `metrics.txt` (OpenMetrics) into the session's
artifacts folder (`harness.report.html`, docs/report.md), prints the per-scenario and per-anomaly-type tables,
and the path of the report.
"""
from __future__ import annotations

import base64
import dataclasses
import json
import pickle
import shlex
import sys
import time
from pathlib import Path

import pytest

from harness.core.errors import DtgHilError
from harness.plugin_progress import ProgressLine
from harness.plugin_settings import Settings, add_options, resolve_settings
from harness.rig.rigfile import DEFAULT_SIM_TIME_SCALE, RigConfig, RigError
from harness.world.anomalies import ANOMALY_TYPES
from harness.world.scenario import Scenario, ScenarioError, load_scenario
from harness.world.vehicle import VEHICLES

_RESULTS = pytest.StashKey[list]()
#: The session's config, on pytest-xdist's controller (which gets reports, not items): set in pytest_configure.
_CONTROLLER: dict = {}
_REPORT = pytest.StashKey[object]()  # the index.html written at session end, or the exception that stopped it
_SETTINGS = pytest.StashKey[Settings]()
_LAST_FAILED = pytest.StashKey[set]()  # under --lf/--ff: the files that held an item that failed last time
#: File name endings of scenario files.
SCENARIO_SUFFIXES = (".yaml", ".yml")


def pytest_addhooks(pluginmanager: pytest.PytestPluginManager) -> None:
    """labgrid (a lab of rigs, docs/lab.md) registers a pytest plugin for its own targets, whose hooks take every
    item for a function with fixtures and restyle logging; dtg-hil uses labgrid's client API, not that plugin: it is
    blocked (unregistered when it is already in)."""
    pluginmanager.set_blocked("labgrid")


def pytest_sessionstart(session: pytest.Session) -> None:
    session.config._dtg_session_started = time.monotonic()  # the session's wall time, for the speed line


def pytest_addoption(parser: pytest.Parser) -> None:
    add_options(parser, DEFAULT_SIM_TIME_SCALE)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "sim: runs on the simulated rig (CI)")
    config.addinivalue_line("markers", "hil: needs a real rig (USB-CAN adapter, UART tap, Android phone)")
    for kind in ANOMALY_TYPES:
        config.addinivalue_line("markers", f"{kind}: a scenario that injects {kind.replace('_', ' ')}")
    for vehicle in VEHICLES:
        config.addinivalue_line("markers", f"{vehicle}: a scenario driven with the {vehicle} vehicle")
    config.stash[_RESULTS] = []
    if not hasattr(config, "workerinput"):
        _CONTROLLER["config"] = config
    if not config.getoption("help", False):  # a bad setting ends the session here, before any item: exit 4
        config.stash[_SETTINGS] = resolve_settings(config)


def pytest_collect_file(file_path: Path, parent: pytest.Collector):
    """A scenario file: any `.yaml`/`.yml` named on the command line, those in a `scenarios/` folder, and under
    `--lf`/`--ff` those that held an item that failed last time (so that a bare `pytest --lf` finds them)."""
    if file_path.suffix in SCENARIO_SUFFIXES and (file_path.parent.name == "scenarios"
                                                   or parent.session.isinitpath(file_path)
                                                   or file_path in _last_failed_files(parent.config)):
        return ScenarioFile.from_parent(parent, path=file_path)
    return None


def _last_failed_files(config: pytest.Config) -> set[Path]:
    if _LAST_FAILED not in config.stash:
        wanted = getattr(config, "cache", None) and (config.getoption("lf", False)
                                                     or config.getoption("failedfirst", False))
        config.stash[_LAST_FAILED] = {config.rootpath / nodeid.split("::")[0]
                                      for nodeid in config.cache.get("cache/lastfailed", {})} if wanted else set()
    return config.stash[_LAST_FAILED]


def scenario_markers(scenario: Scenario) -> list[str]:
    """The markers of a scenario's items besides `sim`/`hil`: its anomaly types and its vehicle."""
    return sorted({a.type for a in scenario.anomalies}) + [scenario.vehicle]


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
                yield self._item(ScenarioItem, f"{one.name}[{variant}]", variant, one, variant=variant)
            if scenario.sweep is not None:
                yield self._item(SweepItem, f"{scenario.name}[sweep-{variant}]", variant, scenario,
                                 variants=tuple(v.name for v in variants))

    def _item(self, cls: type, name: str, marker: str, scenario: Scenario, **kwargs) -> pytest.Item:
        # The node id is given as text, so that it is exactly what pytest's cache stores and reads back (`--lf`,
        # `--ff`, `--sw`): a name with `[...]` is a parametrized-looking id, which pytest parses on the way back.
        item = cls.from_parent(self, name=name, nodeid=f"{self.nodeid}::{name}", scenario=scenario, **kwargs)
        for one in (marker, *scenario_markers(scenario)):
            item.add_marker(getattr(pytest.mark, one))
        return item


class ScenarioFailed(DtgHilError, AssertionError):
    """A scenario ran and missed its `expect:` criteria."""


class _JudgedItem(pytest.Item):
    """An item whose failure is a verdict: it reports the failed criteria, not a traceback."""

    #: No fixtures: the rig, models and artifacts come from the session (plugins such as labgrid's read this).
    fixturenames: tuple[str, ...] = ()

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
        from harness.judge.result import RunError, RunInterrupted, unjudged_result
        from harness.report.tables import junit_properties
        from harness.run.artifacts import claim_folder
        from harness.run.bench_stage import FaultUnavailableError
        from harness.run.chain import run_scenario

        models, model_types = _session_models(self.config, rig)
        # Each run its own folder, named after the file (a sweep variant: with its suffix); a second run of the same
        # scenario in the session gets -2, -3, ...: it never overwrites another's artifacts.
        artifacts = claim_folder(_session_artifacts(self.config), _folder_name(self.path, self.scenario))
        started = time.monotonic()
        every_s = _settings(self.config).progress_s
        progress = ProgressLine(self.config, self.scenario.name) if every_s is not None else None
        try:
            result = run_scenario(self.scenario, rig, models, artifacts, model_types, progress=progress,
                                  progress_every_s=every_s or 0.0)
        except FaultUnavailableError as error:  # a device fault the rig has no means for: what it lacks
            pytest.skip(str(error))
        except RunError as error:
            # Judged, then found no verdict (the rig fell behind, data was lost): its figures are reported with the
            # verdict ERROR (pytest_runtest_makereport); ended before it was judged: an ERROR row without figures.
            judged = getattr(error, "result", None) or unjudged_result(
                self.scenario, rig, artifacts, str(error), time.monotonic() - started)
            self._record(judged)
            self.user_properties.extend(junit_properties(judged))
            if isinstance(error, RunInterrupted):  # SIGTERM or SIGINT: this run is an ERROR and the session ends
                self.session.shouldstop = str(error).splitlines()[0]
            raise
        finally:
            if progress is not None:
                progress.close()
        self._record(result)

        # The same figures as the report, as JUnit <property> elements (pytest --junitxml).
        self.user_properties.extend(junit_properties(result))
        if not result.judgement.passed:
            raise ScenarioFailed(f"{self.scenario.name}: {len(result.judgement.failures)} criteria failed\n"
                                 f"{result.judgement.message}\nartifacts: {artifacts}")

    def _record(self, result) -> None:
        self.config.stash[_RESULTS].append(result)
        if hasattr(self.config, "workerinput"):  # a pytest-xdist worker: the result goes with the item's report
            self.dtg_result = result

    def reportinfo(self):
        return self.path, None, f"scenario {self.scenario.name} [{self.variant}]"


def _folder_name(path: Path, scenario: Scenario) -> str:
    """A run's artifacts folder name: the scenario file's stem, with a sweep variant's suffix."""
    return path.stem + scenario.name[len(scenario.sweep_base):] if scenario.sweep_base else path.stem


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
    result = getattr(item, "dtg_result", None)
    if call.when == "call" and result is not None:  # a pytest-xdist worker: the run's result goes to the controller
        report.dtg_result = base64.b64encode(pickle.dumps(result)).decode("ascii")
        del item.dtg_result


def pytest_runtest_logreport(report) -> None:
    """pytest-xdist's controller: each run's result comes with its item's report, as the worker finishes it (a worker
    that crashes later loses none of the results it reported)."""
    data = getattr(report, "dtg_result", None)
    config = _CONTROLLER.get("config")
    if data is None or config is None:
        return
    config.stash[_RESULTS].append(pickle.loads(base64.b64decode(data)))
    config._dtg_from_workers = True


@pytest.hookimpl(tryfirst=True)
def pytest_report_teststatus(report, config: pytest.Config):
    if getattr(report, "dtg_run_error", False) and report.failed:
        return "error", "E", "ERROR"
    return None


def _settings(config: pytest.Config) -> Settings:
    if _SETTINGS not in config.stash:
        config.stash[_SETTINGS] = resolve_settings(config)
    return config.stash[_SETTINGS]


def _session_rig(config: pytest.Config) -> RigConfig:
    settings = _settings(config)
    if settings.lab is None:
        return settings.rig
    if getattr(config, "_dtg_rig_error", None):  # a lab place not acquired: once per session, not per item
        raise pytest.UsageError(config._dtg_rig_error)
    if not hasattr(config, "_dtg_rig"):  # acquired by the process that runs the items (each xdist worker its own)
        from harness.rig.lab import LabError, acquire_rig

        try:
            rig = acquire_rig(settings.lab, config.getoption("--dtg-lab-wait"))
        except (RigError, LabError) as exc:
            config._dtg_rig_error = str(exc)
            raise pytest.UsageError(str(exc)) from None
        config._dtg_rig = dataclasses.replace(rig, **settings.changes) if settings.changes else rig
    return config._dtg_rig


def _reported_rig(config: pytest.Config) -> RigConfig:
    """The session's rig for a report, without acquiring a labgrid place (the controller of xdist workers, which
    each hold their own, names the lab's place or tags)."""
    settings = _settings(config)
    if settings.rig is not None:
        return settings.rig
    return getattr(config, "_dtg_rig", None) or RigConfig(name=f"labgrid ({settings.lab.describe()})", path=None)


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
            _settings(config).artifacts_root / time.strftime("%Y%m%d-%H%M%S")
    return config._dtg_artifacts


@pytest.hookimpl(optionalhook=True)
def pytest_configure_node(node) -> None:
    """pytest-xdist: every worker writes its runs' artifacts into the controller's session folder."""
    node.workerinput["dtg_artifacts"] = str(_session_artifacts(node.config))


@pytest.hookimpl(optionalhook=True)
def pytest_handlecrashitem(crashitem: str, report, sched) -> None:
    """pytest-xdist: a worker died (kill -9, a crash) while running `crashitem`. The run is an ERROR in the report
    and its result.json names the cause (its artifacts stay as they were); it is not run again (pytest-xdist's
    loadfile/loadscope schedulers would re-run it on the replacement worker, and a PASS there would hide the
    crash; a re-run that was already handed out goes to a new folder)."""
    config = getattr(sched, "config", None) or _CONTROLLER["config"]
    message = (f"the pytest-xdist worker {report.node.gateway.id} running it crashed (killed, or died) before the run "
               f"was judged; not a verdict on the unit")
    report.dtg_run_error = True
    report.longrepr = f"RunError: {message}"
    _drop_from_queue(sched, crashitem)
    from harness.judge.result import unjudged_result
    from harness.run.artifacts import mark_crashed, unfinished_runs

    name = crashitem.partition("::")[2].rsplit("[", 1)[0]
    folders = unfinished_runs(_session_artifacts(config), name)  # the crashed run's, by the file it began
    if not folders:
        return  # it crashed before its run began: the report's ERROR line is all there is
    artifacts = folders[-1]
    mark_crashed(artifacts, message)
    report.longrepr += f"\n  artifacts: {artifacts}"
    scenario_file = json.loads((artifacts / "result.json").read_text()).get("scenario_file")
    scenario = _scenario_of(scenario_file, name) if scenario_file else None
    if scenario is not None:
        config.stash[_RESULTS].append(unjudged_result(scenario, _reported_rig(config), artifacts, message))
        config._dtg_from_workers = True


def _drop_from_queue(sched, nodeid: str) -> None:
    """Mark a crashed item done in a loadscope/loadfile scheduler's queue of work units, so no worker re-runs it."""
    for scope, unit in list(getattr(sched, "workqueue", {}).items()):
        if isinstance(unit, dict) and unit.get(nodeid) is False:
            unit[nodeid] = True
            if all(unit.values()):
                del sched.workqueue[scope]


def _scenario_of(file: str, name: str) -> Scenario | None:
    """The scenario (or sweep variant) `name` of scenario file `file`, None when it no longer reads."""
    try:
        variants = load_scenario(file).variants()
    except (ScenarioError, OSError):
        return None
    return next((v for v in variants if v.name == name), None)


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
    if hasattr(config, "workerinput") or not results:
        return  # a pytest-xdist worker's results went to the controller with their reports
    if getattr(config, "_dtg_from_workers", False):  # in the order collected (file, then name), whichever worker ran
        results.sort(key=lambda r: (str(r.scenario.path), r.scenario.name))
    from harness.report.html import write_report

    models = getattr(config, "_dtg_models", None)
    try:
        config.stash[_REPORT] = write_report(results, _session_artifacts(config),
                                             manifest=models[0].manifest if models else None,
                                             command=shlex.join(["pytest", *config.invocation_params.args])).index
    except Exception as exc:  # noqa: BLE001 - a report that cannot be written fails the session, loudly
        config.stash[_REPORT] = exc
        if session.exitstatus == pytest.ExitCode.OK:
            session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_terminal_summary(terminalreporter, exitstatus, config: pytest.Config) -> None:
    results = config.stash.get(_RESULTS, [])
    if not results:
        return
    from harness.core.version import dtg_hil_version, git_commit
    from harness.report.tables import full_report

    terminalreporter.section("dtg-hil scenarios")
    commit = git_commit()
    terminalreporter.write_line(f"dtg-hil {dtg_hil_version()}" + (f", commit {commit}" if commit else "") +
                                f"; rig {_reported_rig(config).name}")
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
