"""`check_readability`: the installed models' outputs are plain tensors of the documented shapes; the app's
behaviour label is the argmax of the probabilities it reports, probabilities are probabilities, and its classes
cover more than one class over a scenario designed to produce all three.
"""
from __future__ import annotations

import numpy as np

from harness.inference.models import CONTRACT, MODEL_NAMES, ModelSet, open_session
from harness.judge.contract.reference import ContractRun
from harness.judge.contract.verdict import FAIL, PASS, Verdict, blocked_by_link, events_of, fmt
from harness.wire.events import BEHAVIOUR_CLASSES, BehaviourResult

__all__ = ["check_readability"]


def _output_types(models: ModelSet) -> list[str]:
    """Problems with the installed ONNX files' outputs: each must be a plain tensor of the documented shape."""
    problems = []
    for name in MODEL_NAMES:
        session = open_session(models.manifest.models[name].path)
        outputs = {o.name: o for o in session.get_outputs()}
        for output_name, shape in CONTRACT[name]["outputs"].items():
            output = outputs.get(output_name)
            if output is None:
                problems.append(f"{name}: no output '{output_name}' (it has {', '.join(outputs)})")
            elif not output.type.startswith("tensor("):
                problems.append(f"{name}: output '{output_name}' is {output.type}, not a plain tensor (a ZipMap or "
                                f"sequence output that apps misread)")
            elif len(output.shape) != len(shape) or any(isinstance(got, int) and got != want
                                                         for got, want in zip(output.shape, shape, strict=False)):
                problems.append(f"{name}: output '{output_name}' has shape {output.shape}, documented {shape}")
        extra = set(outputs) - set(CONTRACT[name]["outputs"])
        if extra:
            problems.append(f"{name}: undocumented outputs {', '.join(sorted(extra))}")
    return problems


def check_readability(run: ContractRun, models: ModelSet) -> Verdict:
    """Plain tensor outputs of the documented shapes; labels read correctly; more than one class reported."""
    check = "readability"
    problems = _output_types(models)
    if problems:
        return Verdict(check, FAIL, "; ".join(problems), "output-type")
    blocked = blocked_by_link(check, run.events)
    if blocked:
        return blocked
    results = events_of(run.events, BehaviourResult)
    if not results:
        return Verdict(check, FAIL, "the app logged no behaviour results although it decoded the link", "no-results")
    probabilities = np.array([r.probabilities for r in results], dtype=float)
    labels = np.array([r.label for r in results])
    sums = probabilities.sum(axis=1)
    if (probabilities < -1e-6).any() or (probabilities > 1 + 1e-6).any() or (np.abs(sums - 1) > 1e-3).any():
        k = int(np.flatnonzero((np.abs(sums - 1) > 1e-3) | (probabilities < -1e-6).any(axis=1)
                               | (probabilities > 1 + 1e-6).any(axis=1))[0])
        return Verdict(check, FAIL, f"behaviour: the reported probabilities are not probabilities, e.g. "
                                    f"[{', '.join(map(fmt, probabilities[k]))}] at t={results[k].t_s:g} s (sum "
                                    f"{fmt(sums[k])}): the app reads raw scores or the wrong output", "probabilities")
    argmax = probabilities.argmax(axis=1)
    counts = {BEHAVIOUR_CLASSES[c]: int((argmax == c).sum()) for c in range(len(BEHAVIOUR_CLASSES))}
    given = ", ".join(f"{name} {n}" for name, n in counts.items() if n)
    distinct = sorted(set(labels.tolist()))
    wrong_name = [r for r in results if r.class_name != BEHAVIOUR_CLASSES[r.label]]
    if wrong_name:
        return Verdict(check, FAIL, f"behaviour: {len(wrong_name)} results name class '{wrong_name[0].class_name}' "
                                    f"for label {wrong_name[0].label}", "label-misread")
    disagree = int((labels != argmax).sum())
    if len(distinct) < 2:
        only = BEHAVIOUR_CLASSES[distinct[0]]
        return Verdict(check, FAIL, f"behaviour: reported class {distinct[0]} ({only}) for {len(results)}/"
                                    f"{len(results)} windows of a scenario designed to produce all three, while the "
                                    f"model's own probabilities (as the app reported them) give "
                                    f"{sum(1 for n in counts.values() if n)} classes ({given}): "
                                    + ("a ZipMap/label misread: the app reads the class from the wrong output"
                                       if disagree else "the model or its input never leaves one class"),
                       "label-misread" if disagree else "one-class")
    if disagree:
        return Verdict(check, FAIL, f"behaviour: on {disagree}/{len(results)} windows the reported label is not the "
                                    f"most probable class of the reported probabilities: a ZipMap/label misread",
                       "label-misread")
    return Verdict(check, PASS, f"the installed models' outputs are plain tensors of the documented shapes; the "
                                f"app reported {len(distinct)} classes over {len(results)} windows ({given}), each "
                                f"label the argmax of its probabilities")
