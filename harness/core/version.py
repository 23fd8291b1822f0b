"""Which dtg-hil this is: the installed package's version and, in a git checkout, its commit (for reports).

Never raises: outside a checkout, or without git, the commit is None.
"""
from __future__ import annotations

import subprocess
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

#: The folder the `harness` package lives in: the checkout, for an editable install.
CHECKOUT = Path(__file__).resolve().parents[2]


def dtg_hil_version() -> str:
    """The installed distribution's version, or "unknown" when the package runs uninstalled (PYTHONPATH)."""
    try:
        return version("dtg-hil")
    except PackageNotFoundError:
        return "unknown (not installed)"


def git_commit(folder: Path = CHECKOUT) -> str | None:
    """The commit checked out in `folder` (12 hex digits, "+dirty" with uncommitted changes), or None."""
    try:
        head = subprocess.run(["git", "-C", str(folder), "rev-parse", "--short=12", "HEAD"], capture_output=True,
                              text=True, timeout=5)
        if head.returncode != 0:
            return None
        dirty = subprocess.run(["git", "-C", str(folder), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.SubprocessError):
        return None
    return head.stdout.strip() + ("+dirty" if dirty.returncode == 0 and dirty.stdout.strip() else "")
