"""The JSON Schema (draft 2020-12) of the rig file format, for editors (`dtg-hil rig schema`, docs/rig.md).

Built from the definitions the validator (`harness.rig.rigfile`) reads: its key lists and choices. What a schema
cannot say is left to the validator, which stays the authority: that a codec can carry the profile's CAN IDs,
that the bitrate matches the profile, that a real STM32 runs at 1x, the placeholders of a command template.
"""
from __future__ import annotations

from typing import Any

from harness.core.datafile import JSON_SCHEMA_DIALECT, number_schema, object_schema, pick_properties
from harness.rig.bench import COMMANDS, FIRMWARE_KEYS, PLACEHOLDERS
from harness.rig.rigfile import (
    ANDROID_KEYS,
    ANDROID_KINDS,
    BAUDRATE_RANGE,
    GNSS_KEYS,
    GNSS_KINDS,
    PROFILES,
    STM32_KEYS,
    STM32_KINDS,
    TOP_KEYS,
)
from harness.wire.link import codec_names

SCHEMA_ID = "https://dtg-hil.invalid/schemas/rig.json"


def _command(field: str, what: str) -> dict[str, Any]:
    names = ", ".join("{" + name + "}" for name in PLACEHOLDERS[field])
    return {"type": "string", "minLength": 1,
            "description": f"kind real: {what}; one command line, run without a shell; placeholders {names}"}


def rig_schema() -> dict[str, Any]:
    """The rig file format as a JSON Schema (draft 2020-12)."""
    text = {"type": "string"}
    baudrate = number_schema(lo=BAUDRATE_RANGE[0], hi=BAUDRATE_RANGE[1], integer=True)
    firmware = {
        "image": {"type": "string", "description": "the image, relative to the rig file"},
        "flash": {"anyOf": [{"const": "pyocd"}, _command("firmware.flash", "flashes")]},
        "target": text, "probe": text,
    }
    commands = {"reset": "resets the unit", "power": "switches its power",
                "uart_relay": "switches the relay on its UART's TX line"}
    stm32_properties = {
        "kind": {"enum": list(STM32_KINDS)}, "codec": {"enum": list(codec_names())}, "uart_tap": text,
        "baudrate": baudrate,
        "sources": {"type": "string", "description": "kind host: the folder of the firmware's C sources, relative to "
                                                     "the rig file"},
        "firmware": object_schema(pick_properties(firmware, FIRMWARE_KEYS)),
        "sensors": {"type": "string", "description": "kind real: the serial port of the bench's sensor stimulator "
                                                     "(brake pressure, acceleration)"},
        **{key: _command(key, commands[key]) for key in COMMANDS},
    }
    stm32 = object_schema(pick_properties(stm32_properties, STM32_KEYS),
                          allOf=[{"if": {"properties": {"kind": {"const": "host"}}, "required": ["kind"]},
                                  "then": {"required": ["sources"]}},
                                 {"if": {"properties": {"kind": {"not": {"const": "real"}}}},
                                  "then": {"not": {"anyOf": [{"required": [key]}
                                                             for key in ("firmware", *COMMANDS)]}}}])
    android_properties = {
        "kind": {"enum": list(ANDROID_KINDS)}, "serial": text, "apk": text, "package": text,
        "port": {"type": "string", "description": "a real STM32: the serial port the app reads the unit's UART on"},
    }
    android = object_schema(pick_properties(android_properties, ANDROID_KEYS),
                            **{"if": {"properties": {"kind": {"const": "adb"}}, "required": ["kind"]},
                               "then": {"required": ["package"]}})
    gnss_properties = {"kind": {"enum": list(GNSS_KINDS)}, "port": text, "baudrate": baudrate}
    gnss = object_schema(pick_properties(gnss_properties, GNSS_KEYS),
                         **{"if": {"properties": {"kind": {"const": "nmea"}}, "required": ["kind"]},
                            "then": {"required": ["port"]}})
    top = object_schema(pick_properties({
        "name": text, "profile": {"enum": list(PROFILES)},
        "can": {"type": "object", "description": "python-can settings (interface, channel, bitrate, ...); what is "
                                                 "left out comes from python-can's own configuration",
                "properties": {"interface": text, "bitrate": {"type": "integer", "minimum": 1}}},
        "stm32": stm32, "android": android, "gnss": gnss,
        "models": {"type": "string", "description": "models manifest, relative to the rig file"},
        "time_scale": number_schema(lo=0.0, lo_open=True),
        "rig_loss_max_pct": number_schema(lo=0.0, hi=100.0),
    }, TOP_KEYS))
    return {"$schema": JSON_SCHEMA_DIALECT, "$id": SCHEMA_ID, "title": "dtg-hil rig file",
            "description": "A rig for dtg-hil (docs/rig.md)", **top}
