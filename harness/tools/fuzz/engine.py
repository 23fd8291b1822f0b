"""The fuzzing engine: runs one input under a time limit, classifies what it did, shrinks and saves findings.

`run_one(target, data, workdir, time_limit_s)` feeds one input to a target under a per-input time limit
(SIGALRM; `InputTimeout` derives from BaseException so a parser's ``except Exception`` cannot swallow it) and
says what happened (`Outcome`): parsed, rejected as documented, something else raised (or a promise broken:
`OracleError`), or a hang. An input that returned but took longer than the limit (a long C call cannot be
interrupted) counts as a hang too.

`run_fuzz(targets, inputs, seed, out, ...)` feeds each target `inputs` inputs (`harness.tools.fuzz.inputs`, one
seeded generator per target, so a run is reproducible from its seed) and groups the failures by signature (the
exception type and the innermost frame in this project's code, the fuzzer's own last; for a hang, the function
that entered the module it hung in). The first input of each is shrunk (`minimize`: delete lines, then chunks,
then simplify bytes, while the same signature still fails, bounded in time; greedy, so minimal, not minimum) and
saved under `out` with its traceback, beside each target's slowest input and ``report.txt``. It may cap the
address space and arm a faulthandler backstop (`harness.tools.fuzz.guards`).

What it does not do: no coverage guidance (atheris could add it: the targets are plain ``run(data)`` functions
an atheris ``TestOneInput`` can call), no parallel workers.
"""
from __future__ import annotations

import hashlib
import math
import os
import random
import re
import signal
import tempfile
import threading
import time
import traceback
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from harness.tools.fuzz.guards import Backstop, memory_limit
from harness.tools.fuzz.inputs import draw_input
from harness.tools.fuzz.report import Finding, FuzzReport, TargetReport
from harness.tools.fuzz.target import REJECTED, ROOT, FuzzTarget

__all__ = ["InputTimeout", "Outcome", "describe", "minimize", "run_fuzz", "run_one"]

#: Wall seconds between progress lines of a long target.
PROGRESS_EVERY_S = 60.0
#: The fuzzer's own code (the engine, the targets' `run` functions): the last place a finding is located in.
_FUZZER = str(Path(__file__).resolve().parent) + os.sep


class InputTimeout(BaseException):
    """An input ran past the per-input time limit.

    A BaseException, like KeyboardInterrupt, so that no ``except Exception`` in a parser swallows it; for that
    reason the one error of the project that is not a `DtgHilError` (an Exception)."""


@dataclass(frozen=True)
class Outcome:
    """What one input did: ``ok`` (parsed), ``rejected`` (the documented error or `REJECTED`), ``unexpected``
    (anything else raised, or a broken promise), ``timeout`` (over the time limit)."""

    kind: str
    elapsed_s: float
    error: BaseException | None = None
    signature: str = ""
    traceback: str = ""

    @property
    def failed(self) -> bool:
        return self.kind in ("unexpected", "timeout")


def _on_alarm(signum: int, frame: object) -> None:
    raise InputTimeout()


def _location(tb: traceback.StackSummary, hang: bool = False) -> str:
    """The innermost frame in this project's code, the fuzz targets' own code last (else the innermost frame):
    'harness/x.py:12 (function)'.

    For a `hang`, the outermost frame of the innermost run of frames in that frame's module, without the line:
    where a hang was interrupted varies within a loop and its helpers, the function that entered the module does
    not ('harness/x.py (function)').
    """
    ours = [f for f in tb if f.filename.startswith(str(ROOT)) and "site-packages" not in f.filename
            and f.name != "_on_alarm"]
    frames = [f for f in ours if not f.filename.startswith(_FUZZER)] or ours  # else the target's own code
    if frames and hang:
        index = len(frames) - 1
        while index > 0 and frames[index - 1].filename == frames[-1].filename:
            index -= 1
        frames = frames[:index + 1]
    frame = (frames or list(tb) or [None])[-1]
    if frame is None:
        return "?"
    name = frame.filename[len(str(ROOT)) + 1:] if frame.filename.startswith(str(ROOT)) else frame.filename
    return f"{name} ({frame.name})" if hang else f"{name}:{frame.lineno} ({frame.name})"


def describe(error: BaseException) -> str:
    text = str(error).splitlines()[0] if str(error) else ""
    return f"{type(error).__name__}: {text[:200]}" if text else type(error).__name__


def run_one(target: FuzzTarget, data: bytes, workdir: Path, time_limit_s: float | None = 1.0) -> Outcome:
    """Run one input through `target` under the time limit (SIGALRM, main thread only; elsewhere the limit is
    only checked afterwards) and classify what happened."""
    alarm = time_limit_s is not None and threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGALRM, _on_alarm) if alarm else None
    started = time.perf_counter()
    try:
        try:
            if alarm:
                signal.setitimer(signal.ITIMER_REAL, time_limit_s)
            try:
                result = target.run(data, workdir)
            finally:
                if alarm:
                    signal.setitimer(signal.ITIMER_REAL, 0)
        except InputTimeout as timeout:
            elapsed = time.perf_counter() - started
            stack = traceback.extract_tb(timeout.__traceback__)
            return Outcome("timeout", elapsed, timeout, f"timeout at {_location(stack, hang=True)}",
                           "".join(traceback.format_list(stack)))
        except target.accepted as rejected:
            elapsed = time.perf_counter() - started
            if time_limit_s is not None and elapsed > time_limit_s:
                return Outcome("timeout", elapsed, rejected, "timeout (returned late)")
            return Outcome("rejected", elapsed, rejected)
        except KeyboardInterrupt:
            raise
        except BaseException as error:  # noqa: BLE001 - anything else is what the fuzzer is looking for
            elapsed = time.perf_counter() - started
            stack = traceback.extract_tb(error.__traceback__)
            return Outcome("unexpected", elapsed, error, f"{type(error).__name__} at {_location(stack)}",
                           "".join(traceback.format_exception(type(error), error, error.__traceback__)))
        elapsed = time.perf_counter() - started
        if time_limit_s is not None and elapsed > time_limit_s:
            return Outcome("timeout", elapsed, None, "timeout (returned late)")
        return Outcome("rejected" if result is REJECTED else "ok", elapsed)
    finally:
        if alarm:
            signal.signal(signal.SIGALRM, previous)


def minimize(target: FuzzTarget, data: bytes, signature: str, workdir: Path, time_limit_s: float | None,
             budget_s: float = 10.0) -> bytes:
    """A smaller input that fails with the same signature: greedily delete lines, then chunks (halves down to
    single bytes), then simplify bytes to '0' or NUL, for at most `budget_s` of wall time. Greedy: minimal, not
    minimum."""
    deadline = time.monotonic() + budget_s

    def still_fails(candidate: bytes) -> bool:
        return run_one(target, candidate, workdir, time_limit_s).signature == signature

    best = data
    lines = best.split(b"\n")  # whole lines first: text formats break less when cut at line ends
    index = 0
    while len(lines) > 1 and index < len(lines) and time.monotonic() < deadline:
        candidate = b"\n".join(lines[:index] + lines[index + 1:])
        if still_fails(candidate):
            del lines[index]
            best = candidate
        else:
            index += 1
    size = max(1, len(best) // 2)
    while size >= 1 and time.monotonic() < deadline:
        start, shrunk = 0, False
        while start < len(best) and time.monotonic() < deadline:
            candidate = best[:start] + best[start + size:]
            if still_fails(candidate):
                best, shrunk = candidate, True
            else:
                start += size
        if not shrunk:
            size //= 2
    for i in range(len(best)):
        if time.monotonic() >= deadline:
            break
        for simple in (b"0", b"\x00"):
            if best[i:i + 1] != simple:
                candidate = best[:i] + simple + best[i + 1:]
                if still_fails(candidate):
                    best = candidate
                    break
    return best


def _slug(signature: str) -> str:
    words = re.sub(r"[^A-Za-z0-9]+", "-", signature.split(" (")[0]).strip("-").lower()[:60]
    return f"{words}-{hashlib.sha256(signature.encode()).hexdigest()[:8]}"


def _save(out: Path, target: FuzzTarget, name: str, data: bytes, note: str) -> Path:
    folder = out / target.name
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}{target.suffix}"
    path.write_bytes(data)
    path.with_name(path.name + ".txt").write_text(note)
    return path


def _fuzz_target(target: FuzzTarget, inputs: int, seed: int, workdir: Path, out: Path | None,
                 time_limit_s: float | None, minimize_s: float, backstop: Backstop | None,
                 echo: Callable[[str], None] | None) -> TargetReport:
    report = TargetReport(target.name, target.parser)
    rng = random.Random(f"{seed}:{target.name}")
    corpus = target.examples()
    findings: dict[str, Finding] = {}
    started = time.perf_counter()
    next_progress_s = started + PROGRESS_EVERY_S
    for index in range(inputs):
        if echo is not None and index % 256 == 0 and time.perf_counter() >= next_progress_s:
            next_progress_s += PROGRESS_EVERY_S
            echo(f"  {target.name}: {index}/{inputs} inputs after {time.perf_counter() - started:.0f} s, "
                 f"{report.unexpected} unexpected, {report.timeouts} hangs")
        source, data = draw_input(rng, target, corpus)
        if backstop is not None:
            backstop.record(target.name, data)
        outcome = run_one(target, data, workdir, time_limit_s)
        report.inputs += 1
        report.run_s += outcome.elapsed_s
        report.by_source[source] = report.by_source.get(source, 0) + 1
        if outcome.elapsed_s > report.slowest_s:
            report.slowest_s, report.slowest_input = outcome.elapsed_s, data
        if outcome.kind == "ok":
            report.ok += 1
        elif outcome.kind == "rejected":
            report.rejected += 1
        else:
            if outcome.kind == "timeout":
                report.timeouts += 1
            else:
                report.unexpected += 1
            finding = findings.get(outcome.signature)
            if finding is None:
                description = (f"hang: no result within {time_limit_s:g} s" if outcome.kind == "timeout"
                               else describe(outcome.error))
                innermost = traceback.extract_tb(outcome.error.__traceback__)[-1:] if outcome.kind != "timeout" \
                    and outcome.error is not None else []
                if innermost and _location(innermost) not in outcome.signature:
                    description += f" (raised in {_location(innermost)})"
                findings[outcome.signature] = Finding(target.name, outcome.signature, description, outcome.traceback,
                                                      data, source=source)
            else:
                finding.count += 1
    report.wall_s = time.perf_counter() - started
    if backstop is not None:
        backstop.pause()
    for finding in findings.values():
        finding.minimized = minimize(target, finding.first_input, finding.signature, workdir, time_limit_s,
                                     minimize_s)
        if out is not None:
            note = (f"fuzz target {target.name} ({target.parser}); documented rejections: "
                    f"{', '.join(e.__name__ for e in target.accepted) or 'none'}\n"
                    f"{finding.description}\nsignature: {finding.signature}\ninputs that hit it: {finding.count} "
                    f"(first from the {finding.source} source, {len(finding.first_input)} bytes; this one shrunk "
                    f"to {len(finding.minimized)})\nreplay: dtg-hil bench fuzz --target {target.name} --replay "
                    f"FILE\n\n{finding.traceback}")
            finding.path = _save(out, target, _slug(finding.signature), finding.minimized, note)
            _save(out, target, _slug(finding.signature) + "-original", finding.first_input, note)
    report.findings = list(findings.values())
    if out is not None and report.inputs:
        report.slowest_path = _save(out, target, "slowest", report.slowest_input,
                                    f"the slowest input of {target.name}: {1000 * report.slowest_s:.1f} ms\n")
    if echo is not None:
        echo(f"  {target.name}: {report.inputs} inputs in {report.wall_s:.1f} s ({report.inputs_per_s:.0f}/s), "
             f"{report.unexpected} unexpected, {report.timeouts} hangs, slowest {1000 * report.slowest_s:.1f} ms")
    return report


def run_fuzz(targets: Sequence[FuzzTarget], inputs: int = 100_000, seed: int = 0, out: Path | None = None,
             time_limit_s: float | None = 1.0, minimize_s: float = 10.0, memory_limit_mb: int | None = None,
             backstop_s: float | None = None, echo: Callable[[str], None] | None = None) -> FuzzReport:
    """Feed `inputs` inputs to each target; findings (and each target's slowest input) are saved under `out`.

    `memory_limit_mb` caps the address space at its size now plus that much for the run; `backstop_s` arms the
    faulthandler backstop (needs `out`). Both change process-wide state and are meant for the command line.
    """
    if inputs < 0:
        raise ValueError(f"inputs must be >= 0, got {inputs}")
    if time_limit_s is not None and not (math.isfinite(time_limit_s) and time_limit_s > 0):
        raise ValueError(f"time_limit_s must be a finite number > 0 or None, got {time_limit_s!r}")
    report = FuzzReport(seed, inputs, time_limit_s, out=out)
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
    backstop = Backstop(out, backstop_s) if backstop_s is not None and out is not None else None
    try:
        with memory_limit(memory_limit_mb), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # numpy's RuntimeWarnings on odd numbers: what counts is what is raised
            for target in targets:
                with tempfile.TemporaryDirectory(prefix=f"fuzz-{target.name}-") as scratch:
                    workdir = Path(scratch)
                    if target.prepare is not None:
                        target.prepare(workdir)
                    report.targets.append(_fuzz_target(target, inputs, seed, workdir, out, time_limit_s,
                                                       minimize_s, backstop, echo))
    finally:
        if backstop is not None:
            backstop.close()
    if out is not None:
        (out / "report.txt").write_text(report.format() + "\n")
    return report
