"""The fuzz run's process-wide guards: an address-space cap, and a backstop for hangs no signal interrupts.

`memory_limit(extra_mb)` caps the address space (RLIMIT_AS) at its size now plus `extra_mb` for a block, so an
input that makes a parser allocate gigabytes is a `MemoryError` finding instead of a machine brought to its
knees. `Backstop` arms Python's faulthandler: a hang inside C code that ignores SIGALRM kills the process after
dumping every thread's traceback, leaving the input in flight on disk. Both change process-wide state and are
meant for the command line. Linux only (/proc, RLIMIT_AS): elsewhere `memory_limit` does nothing.
"""
from __future__ import annotations

import contextlib
import faulthandler
import math
import os
import resource
import time
from collections.abc import Iterator
from pathlib import Path

from harness.tools.proc import status_bytes

__all__ = ["Backstop", "memory_limit"]


@contextlib.contextmanager
def memory_limit(extra_mb: int | None) -> Iterator[None]:
    """Cap the address space at its current size plus `extra_mb` for the block (None: no cap)."""
    size = status_bytes("VmSize") if extra_mb else None
    if size is None:
        yield
        return
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    limit = size + extra_mb * 1024 * 1024
    if hard != resource.RLIM_INFINITY:
        limit = min(limit, hard)
    resource.setrlimit(resource.RLIMIT_AS, (limit, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_AS, (soft, hard))


class Backstop:
    """For a hang in C code that no signal interrupts: faulthandler kills the process after `timeout_s` without
    progress, dumping every thread's stack to `fatal.txt`; `in-flight.bin` then holds the input that hung."""

    def __init__(self, out: Path, timeout_s: float) -> None:
        self.timeout_s = timeout_s
        self.fatal_path, self.inflight_path = out / "fatal.txt", out / "in-flight.bin"
        self._fatal = self.fatal_path.open("w")
        self._inflight = os.open(self.inflight_path, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o644)
        self._armed_at = -math.inf

    def record(self, target: str, data: bytes) -> None:
        now = time.monotonic()
        if now - self._armed_at > 1.0:  # re-arming costs ~50 us: once a second is enough
            self._fatal.seek(0)
            self._fatal.write(f"fuzz target {target}: no progress for {self.timeout_s:g} s; the input is in "
                              f"{self.inflight_path}\n")
            self._fatal.flush()
            faulthandler.dump_traceback_later(self.timeout_s, exit=True, file=self._fatal)
            self._armed_at = now
        os.ftruncate(self._inflight, 0)
        os.pwrite(self._inflight, data, 0)

    def pause(self) -> None:
        """Disarm until the next `record` (shrinking findings is not fuzzing, and takes its own bounded time)."""
        faulthandler.cancel_dump_traceback_later()
        self._armed_at = -math.inf

    def close(self) -> None:
        faulthandler.cancel_dump_traceback_later()
        self._fatal.close()
        os.close(self._inflight)
        self.fatal_path.unlink(missing_ok=True)
        self.inflight_path.unlink(missing_ok=True)
