"""The pytest plugin: scenario files as test items, the rig as fixtures, verdicts with measured vs required.

Every YAML file in a `scenarios/` folder is collected as two items, `[sim]` (marked `sim`, needs a simulated
rig) and `[hil]` (marked `hil`, needs a rig with real hardware). `--rig` picks the rig; without it the built-in
simulated rig is used, so `pytest -m sim` runs everything in simulation and `pytest -m hil` skips every item
with the setting it is missing. Markers only filter; the rig file decides the hardware.

A failing item reports each failed criterion (measured vs required) and the folder holding that run's
artifacts. At the end of the session the plugin prints the per-scenario and per-anomaly-type tables.
"""
from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from harness.rig import RigConfig, RigError, load_rig
from harness.scenario import Scenario, ScenarioError, load_scenario

_RESULTS = pytest.StashKey[list]()


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("dtg", "dtg-hil rig and scenarios")
    group.addoption("--rig", default=os.environ.get("DTG_RIG"), metavar="FILE",
                    help="rig file (YAML) naming the bench to run on; default: $DTG_RIG, else the built-in "
                         "simulated rig")
    group.addoption("--dtg-time-scale", type=float, default=None, metavar="X",
                    help="scenario seconds per wall second on a simulated rig; default: the rig file's "
                         "time_scale (built-in rig: 100)")
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
        for variant in ("sim", "hil"):
            item = ScenarioItem.from_parent(self, name=f"{scenario.name}[{variant}]", scenario=scenario,
                                            variant=variant)
            item.add_marker(getattr(pytest.mark, variant))
            yield item


class ScenarioFailed(AssertionError):
    """A scenario ran and missed its `expect:` criteria."""


class ScenarioItem(pytest.Item):
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
        from harness.run import run_scenario

        models, model_types = _session_models(self.config, rig)
        artifacts = _session_artifacts(self.config) / self.path.stem
        result = run_scenario(self.scenario, rig, models, artifacts, model_types)
        self.config.stash[_RESULTS].append(result)
        for criterion in result.judgement.criteria:
            self.user_properties.append((criterion.name, criterion.measured))
        self.user_properties.append(("artifacts", str(artifacts)))
        if not result.judgement.passed:
            raise ScenarioFailed(f"{self.scenario.name}: {len(result.judgement.failures)} criteria failed\n"
                                 f"{result.judgement.message}\nartifacts: {artifacts}")

    def repr_failure(self, excinfo, style=None):
        if isinstance(excinfo.value, ScenarioFailed):
            return str(excinfo.value)
        return super().repr_failure(excinfo, style=style)

    def reportinfo(self):
        return self.path, None, f"scenario {self.scenario.name} [{self.variant}]"


def _session_rig(config: pytest.Config) -> RigConfig:
    if not hasattr(config, "_dtg_rig"):
        try:
            rig = load_rig(config.getoption("--rig"))
        except RigError as exc:
            raise pytest.UsageError(str(exc)) from None
        changes = {}
        if config.getoption("--dtg-time-scale") is not None:
            changes["time_scale"] = config.getoption("--dtg-time-scale")
        if config.getoption("--dtg-models") is not None:
            changes["models"] = Path(config.getoption("--dtg-models"))
        config._dtg_rig = RigConfig(**{**rig.__dict__, **changes}) if changes else rig
    return config._dtg_rig


def _session_models(config: pytest.Config, rig: RigConfig):
    if not hasattr(config, "_dtg_models"):
        from harness.anomalies import ANOMALY_TYPES
        from harness.models import ManifestError, ModelSet

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
        config._dtg_artifacts = Path(config.getoption("--dtg-artifacts")) / time.strftime("%Y%m%d-%H%M%S")
    return config._dtg_artifacts


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


def pytest_terminal_summary(terminalreporter, exitstatus, config: pytest.Config) -> None:
    results = config.stash.get(_RESULTS, [])
    if not results:
        return
    from harness.report import full_report

    terminalreporter.section("dtg-hil scenarios")
    terminalreporter.write_line(full_report(results))
    terminalreporter.write_line(f"artifacts: {_session_artifacts(config)}")
