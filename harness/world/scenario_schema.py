"""The JSON Schema (draft 2020-12) of the scenario format, for editors (`dtg-hil scenario schema`, docs/scenarios.md).

Built from the definitions the validator (`harness.world.scenario`) reads: its key lists, choices and numeric
ranges. What a schema cannot say is left to the validator, which stays the authority: that a cycle CSV exists and
is readable, that anomaly windows fit in the route and do not overlap, that a sweep's anomaly indexes exist.
"""
from __future__ import annotations

from typing import Any

from harness.core.datafile import JSON_SCHEMA_DIALECT, number_schema, object_schema, pick_properties
from harness.wire.behaviour import STYLES
from harness.wire.signals import SIGNALS
from harness.world.anomalies import ANOMALY_TYPES, SENSOR_FAULT_TYPES
from harness.world.bus_faults import (
    BUS_FAULT_NUMBERS,
    BUS_FAULT_TYPES,
    COMMON_KEYS,
    MAX_CAN_ID,
    SILENCEABLE_SIGNALS,
    TYPE_KEYS,
)
from harness.world.cycles import BUNDLED_CYCLES, DRIVING, SEGMENT_KINDS
from harness.world.scenario import (
    ANOMALY_KEYS,
    ANOMALY_NUMBERS,
    CONDITION_KEYS,
    CONDITION_NUMBERS,
    EXPECT_FLAGS,
    EXPECT_KEYS,
    GENERATED_KEYS,
    GENERATED_NUMBERS,
    HILLINESS,
    ROUTE_KEYS,
    START_KEYS,
    START_NUMBERS,
    TOP_KEYS,
)
from harness.world.sweep import FROM_SEVERITY_KEYS, MAX_VARIANTS, SWEEP_EXPECT_KEYS, SWEEP_KEYS
from harness.world.vehicle import VEHICLES

SCHEMA_ID = "https://dtg-hil.invalid/schemas/scenario.json"


def _weights(choices) -> dict[str, Any]:
    return object_schema({k: number_schema(lo=0.0) for k in choices}, minProperties=1)


def _can_ids() -> dict[str, Any]:
    one = {"type": "integer", "minimum": 0, "maximum": MAX_CAN_ID}
    return {"anyOf": [one, {"type": "array", "items": one, "minItems": 1}]}


def _bus_fault(kind: str) -> dict[str, Any]:
    values = {
        "type": {"const": kind}, "ids": _can_ids(), "signal": {"enum": list(SILENCEABLE_SIGNALS)},
        "id": {"type": "integer", "minimum": 0, "maximum": MAX_CAN_ID},
        "data": {"type": "string", "pattern": "^([0-9a-fA-F]{2}){0,8}$"},
        **{key: number_schema(**limits) for key, limits in BUS_FAULT_NUMBERS.items()},
    }
    required = COMMON_KEYS + {"flood": ("id", "rate_hz"), "delay": ("delay_ms",),
                              "error_frames": ("rate_hz",)}.get(kind, ())
    return object_schema(pick_properties(values, COMMON_KEYS + TYPE_KEYS[kind]), required)


def scenario_schema() -> dict[str, Any]:
    """The scenario format as a JSON Schema (draft 2020-12)."""
    anomaly = object_schema(
        {"type": {"enum": list(ANOMALY_TYPES)}, "signal": {"enum": list(SIGNALS)},
         **{key: number_schema(**limits) for key, limits in ANOMALY_NUMBERS.items()}},
        ("type", "at_s"),
        # A sensor fault names the signal it acts on; any other anomaly acts on the vehicle and names none.
        **{"if": {"properties": {"type": {"enum": list(SENSOR_FAULT_TYPES)}}},
           "then": {"required": ["signal"]}, "else": {"not": {"required": ["signal"]}}},
    )
    assert set(anomaly["properties"]) == set(ANOMALY_KEYS)
    generated = object_schema(
        {"mix": _weights(SEGMENT_KINDS), "styles": _weights(STYLES), "driving": {"enum": list(DRIVING)},
         **{key: number_schema(**limits) for key, limits in GENERATED_NUMBERS.items()}},
        ("duration_s",))
    route = object_schema(pick_properties({
        "cycle": {"type": "string", "minLength": 1,
                  "description": f"a bundled cycle ({', '.join(BUNDLED_CYCLES)}) or a time_s,speed_kmh CSV path "
                                 "relative to the scenario file",
                  "examples": list(BUNDLED_CYCLES)},
        "repeat": number_schema(lo=1, integer=True),
        "generated": generated,
        "recording": {"type": "string", "minLength": 1, "description": "a BLF or ASC CAN log"},
        "start": object_schema({k: number_schema(**v) for k, v in START_NUMBERS.items()}),
        "hilliness": number_schema(**HILLINESS),
    }, ROUTE_KEYS), oneOf=[{"required": [one]} for one in ("cycle", "generated", "recording")],
        dependentSchemas={"repeat": {"required": ["cycle"]}})
    assert set(route["properties"]["start"]["properties"]) == set(START_KEYS)
    assert set(generated["properties"]) == set(GENERATED_KEYS)
    expect = {key: number_schema(lo=lo, hi=hi) for key, (lo, hi) in EXPECT_KEYS.items()}
    expect["recall_min"] = {"anyOf": [expect["recall_min"], object_schema(
        {kind: number_schema(lo=0.0, hi=1.0) for kind in ANOMALY_TYPES})]}
    expect.update({flag: {"type": "boolean"} for flag in EXPECT_FLAGS})
    sweep = object_schema(pick_properties({
        "severity": {"type": "array", "minItems": 1, "uniqueItems": True,
                     "items": number_schema(**ANOMALY_NUMBERS["severity"])},
        "seed": {"type": "array", "minItems": 1, "uniqueItems": True, "items": number_schema(lo=0, integer=True)},
        "vehicle": {"type": "array", "minItems": 1, "uniqueItems": True, "items": {"enum": list(VEHICLES)}},
        "anomalies": {"type": "array", "minItems": 1, "uniqueItems": True, "items": number_schema(lo=0, integer=True)},
        "expect": object_schema({"recall_at_max_severity_min": number_schema(lo=0.0, hi=1.0),
                                 "recall_drop_events_max": number_schema(lo=0.0),
                                 "recall_from_severity_min": object_schema(
                                     {"severity": number_schema(lo=0.0, hi=1.0, lo_open=True),
                                      "recall": number_schema(lo=0.0, hi=1.0)}, FROM_SEVERITY_KEYS)}),
    }, SWEEP_KEYS), anyOf=[{"required": [axis]} for axis in ("severity", "seed", "vehicle")],
        description=f"at most {MAX_VARIANTS} variants")
    assert set(sweep["properties"]["expect"]["properties"]) == set(SWEEP_EXPECT_KEYS)
    top = object_schema(pick_properties({
        "name": {"type": "string"}, "description": {"type": "string"}, "vehicle": {"enum": list(VEHICLES)},
        "seed": number_schema(lo=0, integer=True), "route": route,
        "conditions": object_schema(pick_properties({k: number_schema(**v) for k, v in CONDITION_NUMBERS.items()},
                                                    CONDITION_KEYS)),
        "anomalies": {"type": "array", "items": anomaly},
        "expect": object_schema(expect),
        "sweep": sweep,
        "bus_faults": {"type": "array", "items": {"oneOf": [_bus_fault(kind) for kind in BUS_FAULT_TYPES]}},
    }, TOP_KEYS), ("route",))
    return {"$schema": JSON_SCHEMA_DIALECT, "$id": SCHEMA_ID, "title": "dtg-hil scenario",
            "description": "A driving scenario for dtg-hil (docs/scenarios.md)", **top}
