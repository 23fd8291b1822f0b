"""The fuzz targets, by name, in run order: one module per parser, registered here.

Adding a target is a module that defines a `FuzzTarget` (`harness.tools.fuzz.target`) and one line below.

>>> target_names()
['link-raw-can-v1', 'link-dtg-link-v2', 'nmea', 'events', 'scenario', 'scenario-data', 'rig']
"""
from __future__ import annotations

from harness.tools.fuzz import events, link_dtg_link_v2, link_raw_can_v1, nmea, rig, scenario
from harness.tools.fuzz.target import FuzzTarget

__all__ = ["TARGETS", "get_target", "target_names"]

TARGETS: dict[str, FuzzTarget] = {
    t.name: t
    for t in (
        link_raw_can_v1.TARGET,
        link_dtg_link_v2.TARGET,
        nmea.TARGET,
        events.TARGET,
        scenario.TARGET,
        scenario.DATA_TARGET,
        rig.TARGET,
    )
}


def target_names() -> list[str]:
    """The fuzz targets, in run order."""
    return list(TARGETS)


def get_target(name: str) -> FuzzTarget:
    """The target called `name`; ValueError listing the choices otherwise."""
    try:
        return TARGETS[name]
    except KeyError:
        raise ValueError(f"unknown fuzz target {name!r}; expected one of: {', '.join(TARGETS)}") from None
