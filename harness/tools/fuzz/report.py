"""What a fuzz run found: one `Finding` per failure signature, a `TargetReport` per target, the `FuzzReport`.

`FuzzReport.format()` is the table ``dtg-hil bench fuzz`` prints and writes to ``report.txt``: per target the
inputs, how many parsed, were rejected as documented, raised something else or hung, the slowest input, the
throughput and the wall time; then each finding with its shrunk reproducer.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["Finding", "FuzzReport", "TargetReport"]


@dataclass
class Finding:
    """Every input that failed the same way: the first one, shrunk, and where it is saved."""

    target: str
    signature: str
    description: str
    traceback: str
    first_input: bytes
    count: int = 1
    source: str = ""
    minimized: bytes | None = None
    path: Path | None = None


@dataclass
class TargetReport:
    """One target's run: how many inputs did what, its speed, its slowest input and its findings."""

    target: str
    parser: str
    inputs: int = 0
    ok: int = 0
    rejected: int = 0
    unexpected: int = 0  # inputs that raised something undocumented or broke a promise
    timeouts: int = 0
    wall_s: float = 0.0
    run_s: float = 0.0  # time inside the parser (the rest is drawing inputs and bookkeeping)
    slowest_s: float = 0.0
    slowest_input: bytes = b""
    slowest_path: Path | None = None
    by_source: dict[str, int] = field(default_factory=dict)
    findings: list[Finding] = field(default_factory=list)

    @property
    def inputs_per_s(self) -> float:
        return self.inputs / self.wall_s if self.wall_s > 0 else math.inf

    @property
    def failed(self) -> int:
        return self.unexpected + self.timeouts


@dataclass
class FuzzReport:
    """A whole run: its settings and one `TargetReport` per target; `format()` is the printed table."""

    seed: int
    inputs_per_target: int
    time_limit_s: float | None
    targets: list[TargetReport] = field(default_factory=list)
    out: Path | None = None

    @property
    def failed(self) -> int:
        return sum(t.failed for t in self.targets)

    def format(self) -> str:
        limit = "none" if self.time_limit_s is None else f"{self.time_limit_s:g} s"
        lines = [f"fuzz: {self.inputs_per_target} inputs per target, seed {self.seed}, time limit {limit} per input",
                 f"  {'target':<18}{'inputs':>8}{'parsed':>8}{'rejected':>9}{'unexpected':>11}{'hangs':>6}"
                 f"{'slowest ms':>11}{'inputs/s':>10}{'wall s':>8}"]
        for t in self.targets:
            lines.append(f"  {t.target:<18}{t.inputs:>8}{t.ok:>8}{t.rejected:>9}{t.unexpected:>11}{t.timeouts:>6}"
                         f"{1000 * t.slowest_s:>11.1f}{t.inputs_per_s:>10.0f}{t.wall_s:>8.1f}")
        total_inputs = sum(t.inputs for t in self.targets)
        total_wall = sum(t.wall_s for t in self.targets)
        lines.append(f"  {'total':<18}{total_inputs:>8}{sum(t.ok for t in self.targets):>8}"
                     f"{sum(t.rejected for t in self.targets):>9}{sum(t.unexpected for t in self.targets):>11}"
                     f"{sum(t.timeouts for t in self.targets):>6}{'':>11}"
                     f"{(total_inputs / total_wall if total_wall else 0):>10.0f}{total_wall:>8.1f}")
        findings = [f for t in self.targets for f in t.findings]
        if findings:
            lines.append(f"findings ({len(findings)} distinct, {self.failed} inputs):")
            for f in findings:
                shown = f.minimized if f.minimized is not None else f.first_input
                where = f" -> {f.path}" if f.path else ""
                lines.append(f"  {f.target}: {f.description} [{f.signature}] x{f.count}; reproducer "
                             f"{len(shown)} bytes {_preview(shown)}{where}")
        else:
            lines.append("no unexpected exception, no hang")
        return "\n".join(lines)


def _preview(data: bytes, limit: int = 60) -> str:
    text = repr(data[:limit])
    return text + ("..." if len(data) > limit else "")
