"""The ``rig`` fuzz target: ``load_rig`` on the input written to a file.

Documented rejection: `RigError`. Examples are the bundled rig files and generated ones; structure-aware
inputs are `harness.tools.fuzz.yamlfile` on a valid rig tree (a profile, a CAN interface, the STM32 side
simulated or real with either codec, an Android side simulated or over adb, a GNSS feed, a models manifest, a
time scale).
"""
from __future__ import annotations

import random
from pathlib import Path
from typing import Any

from harness.rig.rigfile import RigError, load_rig
from harness.tools.fuzz.yamlfile import datafile_examples, run_load, structured_yaml, yaml_target

__all__ = ["TARGET", "rig_tree"]


def rig_tree(rng: random.Random) -> dict:
    """A valid rig as data: a profile, a CAN interface, the STM32, Android and GNSS sides, models, time scale."""
    tree: dict[str, Any] = {"name": rng.choice(("bench-1", "loopback", "fuzz"))}
    profile = rng.choice(("obd2", "j1939"))
    if rng.random() < 0.8:
        tree["profile"] = profile
    if rng.random() < 0.8:
        interface = rng.choice(("virtual", "pcan", "slcan", "socketcan", "kvaser", "socketcand"))
        tree["can"] = {"interface": interface,
                       "channel": rng.choice(("simulated", "PCAN_USBBUS1", "can0", "vcan0", "/dev/ttyACM0"))}
        if rng.random() < 0.6:
            tree["can"]["bitrate"] = 500000 if profile == "obd2" else 250000
    stm32_kind = rng.choice(("simulated", "real"))
    tree["stm32"] = {"kind": stm32_kind, "codec": rng.choice(("dtg-link-v2", "raw-can-v1"))}
    if rng.random() < 0.5:
        tree["stm32"]["uart_tap"] = rng.choice(("simulated", "/dev/ttyUSB0"))
    if rng.random() < 0.3:
        tree["stm32"]["baudrate"] = rng.choice((921600, 115200))
    if rng.random() < 0.7:
        android_kind = rng.choice(("simulated", "adb"))
        tree["android"] = {"kind": android_kind}
        if android_kind == "adb":
            tree["android"].update(serial=rng.choice(("simulated", "R58M12345")), apk="dtg-app.apk",
                                   package="com.dtg.edgeai")
    if rng.random() < 0.7:
        gnss_kind = rng.choice(("none", "simulated", "nmea"))
        tree["gnss"] = {"kind": gnss_kind}
        if gnss_kind == "nmea":
            tree["gnss"].update(port=rng.choice(("simulated", "/dev/ttyUSB1")), baudrate=9600)
    if rng.random() < 0.3:
        tree["models"] = "models/manifest.json"
    if rng.random() < 0.5:
        tree["time_scale"] = 1 if stm32_kind == "real" else rng.choice((1, 20, 100))
    return tree


def prepare_sources(workdir: Path) -> None:
    """The folders a rig file's `stm32.sources` names, as the bundled rigs name them from `rigs/` (the fuzzed file
    is `rigs/fuzz-rig.yaml` of the work folder)."""
    (workdir / "rigs").mkdir(exist_ok=True)
    (workdir / "firmware_sim" / "dtg_firmware").mkdir(parents=True, exist_ok=True)


TARGET = yaml_target("rig", "harness.rig.rigfile.load_rig on a file", (RigError,),
                     run_load(load_rig, "rigs/fuzz-rig.yaml"), datafile_examples("rigs", rig_tree, seed=13),
                     structured_yaml(rig_tree, ("cans", "uart", "adb", "gps", "timescale")), prepare=prepare_sources)
