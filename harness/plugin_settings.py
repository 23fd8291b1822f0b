"""The pytest plugin's settings, each resolved in one place: the command line, then the environment, then the ini
file (`[tool.pytest.ini_options]` of pyproject.toml, `pytest.ini`, ...), then the default (docs/rig.md, "Settings").

Everything is checked when the session starts, before any item runs: a bad rig file, models manifest or option
ends the session with pytest's usage error (exit 4) and one line per problem, `file:line: field: message`, never a
traceback per item. Paths in the ini file are relative to the ini file's folder; on the command line and in
`DTG_RIG`, to the current folder.
"""
from __future__ import annotations

import math
import os
import sys
from dataclasses import dataclass, replace
from pathlib import Path

import pytest

from harness.inference.models import BUNDLED_MANIFEST, ManifestError, load_manifest
from harness.rig.lab import LabError, LabSpec, parse_lab_arg
from harness.rig.rigfile import RigConfig, RigError, load_rig, time_scale_problem

#: (ini name, help) of every setting the ini file may hold.
INI = (
    ("dtg_rig", "rig file (YAML); --rig and $DTG_RIG take precedence; default: the built-in simulated rig"),
    ("dtg_models", "models manifest the simulated app runs; --dtg-models takes precedence; default: the rig "
                   "file's models, else the bundled models"),
    ("dtg_artifacts", "folder for each session's artifacts (DIR/<session time>/); --dtg-artifacts takes "
                      "precedence; default: reports"),
    ("dtg_time_scale", "at most this many scenario seconds per wall second; --dtg-time-scale takes precedence; "
                       "default: the rig file's time_scale"),
    ("dtg_progress_s", "wall seconds between a running scenario's progress lines; --dtg-progress-s takes "
                       "precedence; default: 1 on a terminal, 10 otherwise"),
)
#: Most problems one start-up error lists (a rig file with many is fixed a few at a time anyway).
MAX_PROBLEM_LINES = 3
DEFAULT_ARTIFACTS = "reports"


@dataclass(frozen=True)
class Settings:
    rig: RigConfig | None  # with --dtg-models and --dtg-time-scale applied; None: a labgrid place (`lab`)
    artifacts_root: Path  # each session's folder goes under it
    progress_s: float | None  # wall seconds between progress lines; None: none (pytest -q)
    #: A labgrid place (`harness.rig.lab`): acquired when the first item runs (by each xdist worker for itself),
    #: then `changes` applied to the rig its resources make.
    lab: LabSpec | None = None
    changes: dict | None = None


def _ini(config: pytest.Config, name: str) -> tuple[str | None, str]:
    """An ini setting's value (None when unset) and where it came from, for messages."""
    value = str(config.getini(name) or "").strip()
    where = str(config.inipath) if config.inipath is not None else "ini"
    return (value or None), f"{where}: {name}"


def _ini_path(config: pytest.Config, value: str) -> Path:
    path = Path(value).expanduser()
    return path if path.is_absolute() or config.inipath is None else config.inipath.parent / path


def _number(text: str | float, where: str, *, allow_inf: bool = False) -> float:
    try:
        value = float(text)
    except ValueError:
        raise pytest.UsageError(f"{where}: expected a number; got {text!r}") from None
    if not value > 0 or (math.isinf(value) and not allow_inf) or math.isnan(value):
        raise pytest.UsageError(f"{where}: must be a number > 0; got {text!r}")
    return value


def one_line_error(error: Exception) -> str:
    """A data file's problems as at most MAX_PROBLEM_LINES lines (`file:line: field: message`)."""
    lines = str(error).splitlines() or [type(error).__name__]
    if len(lines) > MAX_PROBLEM_LINES:
        lines = lines[:MAX_PROBLEM_LINES] + [f"... and {len(lines) - MAX_PROBLEM_LINES} more problems"]
    return "\n".join(lines)


def _rig(config: pytest.Config) -> tuple[RigConfig | None, LabSpec | None]:
    """The rig file's rig, or the labgrid place `--rig labgrid:...` (or a rig file's `lab:` section) names."""
    path, where = config.getoption("dtg_rig"), "--rig"
    if path is None and os.environ.get("DTG_RIG"):
        path, where = os.environ["DTG_RIG"], "DTG_RIG"
    if path is None:
        value, where = _ini(config, "dtg_rig")
        path = None if value is None else _ini_path(config, value)
    try:
        lab = parse_lab_arg(None if path is None else str(path))
        return (None, lab) if lab is not None else (load_rig(path), None)
    except (RigError, LabError) as error:
        raise pytest.UsageError(f"{one_line_error(error)}  (rig from {where})") from None


def resolve_settings(config: pytest.Config) -> Settings:
    """Every setting from the command line, the environment, the ini file or its default, checked."""
    rig, lab = _rig(config)
    changes: dict = {}
    models = config.getoption("dtg_models")
    if models is not None:
        changes["models"] = Path(models)
    elif (value := _ini(config, "dtg_models"))[0] is not None:
        changes["models"] = _ini_path(config, value[0])
    scale = config.getoption("dtg_time_scale")
    if scale is not None:
        changes["time_scale"] = _number(scale, "--dtg-time-scale", allow_inf=True)
    elif (value := _ini(config, "dtg_time_scale"))[0] is not None:
        changes["time_scale"] = _number(value[0], value[1], allow_inf=True)
    rig = replace(rig, **changes) if changes and rig is not None else rig
    problem = time_scale_problem(rig) if rig is not None else None
    if problem is not None:
        where = ("--dtg-time-scale" if scale is not None else _ini(config, "dtg_time_scale")[1]) \
            if "time_scale" in changes else f"{rig.path}: time_scale"
        raise pytest.UsageError(f"{where}: {problem}")
    try:
        load_manifest(rig.models if rig is not None else changes.get("models", BUNDLED_MANIFEST))
    except ManifestError as error:
        raise pytest.UsageError(one_line_error(error)) from None

    artifacts = config.getoption("dtg_artifacts")
    if artifacts is not None:
        root = Path(artifacts)
    elif (value := _ini(config, "dtg_artifacts"))[0] is not None:
        root = _ini_path(config, value[0])
    else:
        root = Path(DEFAULT_ARTIFACTS)

    progress = config.getoption("dtg_progress_s")
    if progress is not None:
        progress_s = _number(progress, "--dtg-progress-s")
    elif (value := _ini(config, "dtg_progress_s"))[0] is not None:
        progress_s = _number(value[0], value[1])
    else:
        progress_s = 1.0 if sys.stdout.isatty() else 10.0
    quiet = config.getoption("verbose") < 0
    return Settings(rig=rig, artifacts_root=root, progress_s=None if quiet else progress_s, lab=lab, changes=changes)


def add_options(parser: pytest.Parser, default_time_scale: float) -> None:
    """The `dtg` option group and the ini settings (`pytest --help` lists both)."""
    group = parser.getgroup("dtg", "dtg-hil rig and scenarios (docs/rig.md, 'Settings')")
    group.addoption("--rig", dest="dtg_rig", default=None, metavar="FILE",
                    help="rig file (YAML) naming the bench to run on, or labgrid:PLACE / labgrid:TAG=VALUE,... (a "
                         "place of a labgrid lab, docs/lab.md); default: $DTG_RIG, else the ini file's dtg_rig, else "
                         "the built-in simulated rig")
    group.addoption("--dtg-lab-wait", type=float, default=60.0, metavar="S",
                    help="with a labgrid rig: wait up to S seconds for a place someone else holds; default: 60")
    group.addoption("--dtg-time-scale", dest="dtg_time_scale", default=None, metavar="X",
                    help="at most this many scenario seconds per wall second on a simulated rig (on virtual time "
                         "it only paces, for demos: results are the same at any value); default: dtg_time_scale, "
                         f"else the rig file's time_scale (built-in rig: {default_time_scale:g}, as fast as the CPU "
                         "allows)")
    group.addoption("--dtg-models", dest="dtg_models", default=None, metavar="MANIFEST",
                    help="models manifest the simulated app runs (write --dtg-models=PATH: pytest takes a separate "
                         "path argument for its rootdir); default: dtg_models, else the rig file's models, else the "
                         "bundled models")
    group.addoption("--dtg-artifacts", dest="dtg_artifacts", default=None, metavar="DIR",
                    help="folder for each run's artifacts, under DIR/<session time>/; default: dtg_artifacts, "
                         f"else {DEFAULT_ARTIFACTS}")
    group.addoption("--dtg-progress-s", dest="dtg_progress_s", default=None, metavar="S",
                    help="wall seconds between a running scenario's progress lines (none under -q); default: "
                         "dtg_progress_s, else 1 on a terminal and 10 otherwise")
    for name, help_text in INI:
        parser.addini(name, help_text, type="string", default="")
