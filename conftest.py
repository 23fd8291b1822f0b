"""This repository's own test hook-up. The dtg-hil plugin itself is the installed package's `pytest11` entry point
(pyproject.toml), as in any folder of a user's; a checkout used without being installed (only on PYTHONPATH) loads
it from here instead."""
from importlib.metadata import entry_points

if not any(entry.value == "harness.plugin" for entry in entry_points(group="pytest11")):
    pytest_plugins = ("harness.plugin",)
