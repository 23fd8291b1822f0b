"""Every contract check on one run (and liveness against a second), by check name."""
from __future__ import annotations

from harness.inference.models import ModelSet
from harness.judge.contract.feature_parity import check_feature_parity
from harness.judge.contract.link import check_link
from harness.judge.contract.liveness import check_liveness
from harness.judge.contract.model_parity import check_model_parity
from harness.judge.contract.readability import check_readability
from harness.judge.contract.reference import ContractRun
from harness.judge.contract.reporting import check_reporting
from harness.judge.contract.verdict import Verdict

__all__ = ["evaluate"]


def evaluate(run_a: ContractRun, run_b: ContractRun | None, models: ModelSet, change: str = "") -> dict[str, Verdict]:
    """Every contract check on `run_a` (liveness against `run_b`, when given), by check name."""
    verdicts = {
        "link": check_link(run_a),
        "model-parity": check_model_parity(run_a, models),
        "feature-parity": check_feature_parity(run_a),
        "readability": check_readability(run_a, models),
        "reporting": check_reporting(run_a),
    }
    if run_b is not None:
        verdicts["liveness"] = check_liveness(run_a, run_b, change)
    return verdicts
