"""A running scenario's progress line: scenario time against its length, speed, events and alarms so far.

In a pytest process that writes to a terminal, one line is rewritten in place through pytest's terminal reporter
while the scenario runs, and left showing its last state when the item ends. When the output is not a terminal
(a CI log, `make sim | tee`), each update is a plain line, at most every `--dtg-progress-s` (10 s by default).
A pytest-xdist worker has no terminal of its own (its terminal reporter writes nowhere): it writes plain lines,
prefixed with its name (`[gw0]`), to its standard error, which it shares with the controller's. Nothing under
`pytest -q`. The cadence is `harness.run.watch.Watch.tick`'s: at most once per period of wall time.
"""
from __future__ import annotations

import sys
from contextlib import nullcontext

import pytest

from harness.run.watch import RunProgress


class ProgressLine:
    """The progress of one scenario item, written where its pytest process can show it."""

    def __init__(self, config: pytest.Config, name: str):
        self.name = name
        self.worker = getattr(config, "workerinput", {}).get("workerid")
        self.reporter = config.pluginmanager.getplugin("terminalreporter")
        self.capture = config.pluginmanager.getplugin("capturemanager")
        self.in_place = self.worker is None and self.reporter is not None and self.reporter.isatty()
        self.showing = False

    def __call__(self, progress: RunProgress) -> None:
        text = progress.line(self.name)
        with self.capture.global_and_fixture_disabled() if self.capture is not None else nullcontext():
            if self.worker is not None or self.reporter is None:
                prefix = f"[{self.worker}] " if self.worker else ""
                sys.stderr.write(f"{prefix}{text}\n")
                sys.stderr.flush()
            elif self.in_place:
                if not self.showing:
                    self.reporter.ensure_newline()
                self.reporter.rewrite(f"  {text}", erase=True)
            else:
                self.reporter.write_line(f"  {text}")
        self.showing = True

    def close(self) -> None:
        """The item ended: a line rewritten in place stays, ended, so that pytest's own output goes below it."""
        if self.in_place and self.showing:
            with self.capture.global_and_fixture_disabled() if self.capture is not None else nullcontext():
                self.reporter.write("\n")
