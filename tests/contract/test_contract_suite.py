"""The unit's contract suite (issue 9): proves the app runs the real models on the real data, on any rig.

Runs against whatever rig `--rig` selects (marked both `sim` and `hil`): `pytest -m sim tests/contract` on the
simulated rig, `pytest -m hil --rig rigs/loopback.yaml tests/contract` through the real drivers. Two short drives
(`styles_a.yaml`, `styles_b.yaml`: the same route driven in a mix of styles and in eco only) are run once per
module; each test is one contract check of `harness.judge.contract`, and its failure message names the cause. A check
with nothing to judge (e.g. the app decoded no frames, which the link test fails) is skipped with the reason.
docs/contract.md says what a real app must log for this suite.
"""
from __future__ import annotations

from pathlib import Path

import pytest

from harness.inference.models import ModelSet
from harness.judge.contract import (
    ERROR,
    INCONCLUSIVE,
    ContractRun,
    Verdict,
    check_feature_parity,
    check_link,
    check_liveness,
    check_model_parity,
    check_readability,
    check_reporting,
)
from harness.judge.contract.verdict import tap_noise
from harness.judge.result import RunError
from harness.run.contract import run_for_contract
from harness.world.scenario import load_scenario

pytestmark = [pytest.mark.sim, pytest.mark.hil]

HERE = Path(__file__).parent
CHANGE = "driving style: a mix of normal, eco and aggressive -> eco only (same route, seed and vehicle)"


@pytest.fixture(scope="module")
def contract_runs(dtg_rig, dtg_models, dtg_artifacts) -> tuple[ContractRun, ContractRun]:
    models, _ = dtg_models
    runs = []
    for name in ("styles_a", "styles_b"):
        run = run_for_contract(load_scenario(HERE / f"{name}.yaml"), dtg_rig, models, dtg_artifacts / "contract" / name)
        noise = tap_noise(run.events, run.reference.tap_stats if run.reference is not None else None)
        if noise:  # the harness's capture is at fault: an ERROR of the suite, never a verdict on the unit
            raise RunError(f"{name}: {noise}")
        runs.append(run)
    return runs[0], runs[1]


@pytest.fixture(scope="module")
def installed_models(dtg_rig):
    """The ONNX files the harness installed (the rig's manifest), opened by the harness itself."""
    with ModelSet.open(dtg_rig.models) as models:
        yield models


def _judge(verdict: Verdict) -> None:
    if verdict.status == ERROR:
        raise RunError(str(verdict))
    if verdict.status == INCONCLUSIVE:
        pytest.skip(str(verdict))
    assert verdict.passed, str(verdict)


def test_link_conformance(contract_runs):
    _judge(check_link(contract_runs[0]))


def test_model_parity(contract_runs, installed_models):
    _judge(check_model_parity(contract_runs[0], installed_models))


def test_feature_parity(contract_runs):
    _judge(check_feature_parity(contract_runs[0]))


def test_output_readability(contract_runs, installed_models):
    _judge(check_readability(contract_runs[0], installed_models))


def test_reporting(contract_runs):
    _judge(check_reporting(contract_runs[0]))


def test_liveness(contract_runs):
    _judge(check_liveness(contract_runs[0], contract_runs[1], CHANGE))
