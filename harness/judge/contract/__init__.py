"""The unit's contract checks: does the app run the real models on the real data, and say so readably?

The reference system passed its own checks while its app ran stub engines, read its behaviour model's output
as "always class 0", computed features differently from training and disagreed with the firmware on the CRC.
Each check here looks for one of those, on any build of the unit, from what the harness can observe: the
bytes on the UART tap, the EdgeAI lines the app logs, and the model files the harness installed. One module per
check, over what they share:

- `harness.judge.contract.link` — `check_link`: the firmware's frames and the app's decoder agree on the codec;
- `harness.judge.contract.model_parity` — `check_model_parity`: the app's outputs are the installed models'
  outputs on the same windows, with a diagnosis of the known mistakes when they are not;
- `harness.judge.contract.feature_parity` — `check_feature_parity`: the app's 18 behaviour features are the
  training extractor's;
- `harness.judge.contract.readability` — `check_readability`: plain tensor outputs, labels read correctly;
- `harness.judge.contract.reporting` — `check_reporting`: a result of each model for the whole drive, on time,
  and no silence;
- `harness.judge.contract.liveness` — `check_liveness`: outputs change when the input does;
- `harness.judge.contract.verdict` — `Verdict`, `Tolerance` and the helpers every check uses;
- `harness.judge.contract.reference` — the harness's own windows rebuilt from the tap (`ReferenceWindows`) by the
  documented rule, with no code of the app simulator's, and `ContractRun`, the inputs of a check;
- `harness.judge.contract.suite` — `evaluate`: every check on a run.

This ``__init__`` deliberately presents the package's public API: import the names below from
``harness.judge.contract``; the submodules are where each one is defined and documented.

Every check returns a `Verdict`: pass, fail (with a message naming the cause, and a short `cause` tag),
inconclusive (nothing to judge: e.g. the app decoded no frames at all, which `check_link` fails), or error (the
harness's own evidence is at fault, e.g. a noisy UART tap: no verdict on the unit). Checks
are pure functions of their inputs; `harness.run.contract.run_for_contract` runs a scenario so that those inputs
exist (the UART tap stand-in added on a rig whose STM32 is simulated, the app started with its `features` debug
lines).

What the checks do not do: judge detection quality (the scenario items do), look inside the app, or tell a
stub from a model the harness has never seen (both are "not the installed model").
"""
from __future__ import annotations

from harness.judge.contract.feature_parity import FEATURE_TOLERANCE, check_feature_parity
from harness.judge.contract.link import check_link
from harness.judge.contract.liveness import LIVENESS_MIN_CHANGE, check_liveness
from harness.judge.contract.model_parity import PARITY_TOLERANCES, check_model_parity
from harness.judge.contract.readability import check_readability
from harness.judge.contract.reference import ContractRun, ReferenceWindows, reference_windows
from harness.judge.contract.reporting import check_reporting
from harness.judge.contract.suite import evaluate
from harness.judge.contract.verdict import CHECKS, ERROR, FAIL, INCONCLUSIVE, PASS, Tolerance, Verdict

__all__ = [
    "CHECKS", "ERROR", "FAIL", "FEATURE_TOLERANCE", "INCONCLUSIVE", "LIVENESS_MIN_CHANGE", "PASS", "PARITY_TOLERANCES",
    "ContractRun", "ReferenceWindows", "Tolerance", "Verdict", "check_feature_parity", "check_link",
    "check_liveness", "check_model_parity", "check_readability", "check_reporting", "evaluate", "reference_windows",
]
