"""`check_reporting`: the app reported the whole drive, on time: a result of each model for (nearly) every second
after the first full window, each within `DEFAULT_RESULT_LATE_S_MAX` of the sample time it claims, and no
silence that ended the run.

It reads the run's own judgement (`harness.judge.metrics.evidence`: the coverage and timing criteria every run is
judged on) and the silence watchdog's finding, which the contract suite keeps on.
"""
from __future__ import annotations

from harness.judge.contract.reference import ContractRun
from harness.judge.contract.verdict import FAIL, INCONCLUSIVE, PASS, Verdict, blocked_by_link

__all__ = ["check_reporting"]

#: Criterion of the run's judgement -> the cause a failure of it names, the first failing one named (results held
#: back also leave the last windows unreported: their timing is the cause).
_CAUSES = {"result_late_s": "late-results", "coverage": "coverage"}


def check_reporting(run: ContractRun) -> Verdict:
    """The app reported every model's result for the whole drive, each on time, and never fell silent."""
    check = "reporting"
    blocked = blocked_by_link(check, run.events)
    if blocked:
        return blocked
    if run.error is not None and "no EdgeAI lines since" in run.error:
        return Verdict(check, FAIL, f"the app fell silent and the run was ended: {run.error}", "silence")
    if run.result is None:
        return Verdict(check, INCONCLUSIVE, "no run judgement to read (the run did not come from run_scenario)")
    criteria = {c.name: c for c in run.result.judgement.criteria if c.name in _CAUSES}
    failed = [criteria[name] for name in _CAUSES if name in criteria and not criteria[name].passed]
    if failed:
        return Verdict(check, FAIL, "; ".join(c.describe() for c in failed), _CAUSES[failed[0].name])
    if not criteria:
        return Verdict(check, INCONCLUSIVE, "the run's judgement has no coverage or timing criterion")
    return Verdict(check, PASS, "; ".join(c.describe() for c in criteria.values()))
