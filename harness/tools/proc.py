"""What the kernel says about this process's memory, from /proc/self/status (Linux only).

Used by the soak benchmark (resident set size, `VmRSS`) and the fuzzer (address space, `VmSize`, which its
memory cap is set relative to). Where /proc is not available the figures are None: callers decide what that
means. Never raises.
"""
from __future__ import annotations

from pathlib import Path

STATUS = Path("/proc/self/status")


def status_bytes(key: str) -> int | None:
    """The `key` line of /proc/self/status (a size in kB, e.g. ``VmRSS``), in bytes; None when there is no such
    file or line."""
    try:
        with STATUS.open() as status:
            for line in status:
                if line.startswith(f"{key}:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None
