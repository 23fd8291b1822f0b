"""Project-wide pytest hook-up: the dtg-hil plugin (rig options, scenario items, `sim`/`hil` markers)."""

pytest_plugins = ("harness.plugin",)
