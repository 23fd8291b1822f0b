"""Datasets for training and evaluating the unit's models, made by the same plant and injectors as scenarios.

Trips are split by trip, never by window: the train split is normal driving only (the anomaly detector learns
what normal looks like), validation and test trips carry labelled anomalies. Every trip has its own speed
trace; the real drive cycles are held out for the test split, and the build refuses to write a dataset in which
any speed trace appears in two splits. Each trip is written at 1 Hz (what the unit samples) as CSV with the ten
signal readings as the app receives them (signals the OBD-II bus carries at the bus's resolution, then every
signal at the resolution of the link's sample record), the
ground-truth fuel rate, the driving style and per-sample anomaly labels; `manifest.json` records the seed,
the generator version, every trip's vehicle, route, trace digest and events, and a hash of the whole dataset.
Output is byte-identical for the same seed.
"""
from __future__ import annotations

import hashlib
import json
import sys
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from harness.wire.behaviour import STYLES
from harness.wire.dbc import as_received
from harness.wire.link import as_sampled
from harness.wire.nmea import as_received_nmea
from harness.wire.signals import SIGNALS, Trace
from harness.world.anomalies import random_schedule
from harness.world.cycles import GENERATOR_VERSION, SEGMENT_KINDS, SpeedProfile, generate_trip, load_cycle
from harness.world.vehicle import VEHICLES, PlantConditions, get_vehicle, simulate

DATASET_VERSION = f"dtg-dataset/6 ({GENERATOR_VERSION})"
#: The bus the unit reads: readings it carries are written at that bus's resolution (`harness.wire.dbc.as_received`).
BUS_PROFILE = "obd2"
SPLITS = ("train", "val", "test")
#: Real cycles kept out of training entirely: the test split drives them.
HELD_OUT_CYCLES = ("udds", "wltc_class3b")
COLUMNS = ("t_s",) + SIGNALS + ("fuel_rate_lph", "driving_style", "anomaly", "anomaly_type")
_FORMATS = {"latitude": "{:.7f}", "longitude": "{:.7f}", "t_s": "{:.1f}"}
#: Dirichlet concentration of a drawn trip's segment mix, per kind: congestion (`stop_go`) is in fewer trips'
#: driving, and rarely most of one.
MIX_CONCENTRATION = {"urban": 1.0, "rural": 1.0, "highway": 1.0, "stop_go": 0.5}
#: A drawn trip's terrain: `PlantConditions.hilliness` uniform in 0 (flat) .. this; at 1 the steepest stretches
#: reach `harness.world.route.MAX_GRADE`.
MAX_DRAWN_HILLINESS = 1.0
#: The share of drawn trips that start with a warm engine (stopped a little while ago: coolant uniform in
#: `WARM_START_C`); the others start cold, at ambient.
WARM_START_P = 0.4
WARM_START_C = (60.0, 90.0)


@dataclass(frozen=True)
class TripSpec:
    split: str
    index: int
    vehicle: str
    seed: int
    route: str  # "generated" or a bundled cycle name
    duration_s: float
    mix: dict[str, float] | None
    styles: dict[str, float] | None
    anomalies: int
    ambient_c: float
    hilliness: float = PlantConditions.hilliness
    start_coolant_c: float | None = None  # None: a cold start at ambient


def draw_mix(rng: np.random.Generator) -> tuple[dict[str, float], dict[str, float]]:
    """A drawn trip's segment mix (`MIX_CONCENTRATION`) and driving-style mix (most trips lean to one style)."""
    weights = rng.dirichlet([MIX_CONCENTRATION[kind] for kind in SEGMENT_KINDS])
    style_weights = rng.dirichlet(np.full(len(STYLES), 0.7))
    return ({kind: round(float(w), 3) for kind, w in zip(SEGMENT_KINDS, weights, strict=True)},
            {style: round(float(w), 3) for style, w in zip(STYLES, style_weights, strict=True)})


def draw_start(rng: np.random.Generator) -> tuple[float, float | None]:
    """A drawn trip's hilliness (`MAX_DRAWN_HILLINESS`) and coolant temperature at key-on (`WARM_START_P`)."""
    hilliness = round(float(rng.uniform(0.0, MAX_DRAWN_HILLINESS)), 2)
    warm = rng.random() < WARM_START_P
    coolant = round(float(rng.uniform(*WARM_START_C)), 1)
    return hilliness, coolant if warm else None


def plan_trips(seed: int, train: int, val: int, test: int, duration_s: float) -> list[TripSpec]:
    """Which trips each split gets; seeds are drawn so that no two trips share a generated trace.

    Each trip draws its vehicle, segment and style mix (`draw_mix`), ambient temperature, terrain and cold or
    warm start (`draw_start`; the held-out cycles' trips too)."""
    rng = np.random.default_rng([seed, 0xDA7A])
    start_rng = np.random.default_rng([seed, 0xDA7A, 1])
    seeds = rng.choice(2**31 - 1, size=train + val + test + len(HELD_OUT_CYCLES), replace=False)
    specs: list[TripSpec] = []
    counts = {"train": train, "val": val, "test": test}
    k = 0
    for split in SPLITS:
        for i in range(counts[split]):
            mix, styles = draw_mix(rng)
            specs.append(TripSpec(split, i, str(rng.choice(list(VEHICLES))), int(seeds[k]), "generated",
                                  duration_s, mix, styles, 0 if split == "train" else int(rng.integers(2, 5)),
                                  round(float(rng.uniform(-5.0, 35.0)), 1), *draw_start(start_rng)))
            k += 1
    for j, cycle in enumerate(HELD_OUT_CYCLES):
        specs.append(TripSpec("test", test + j, str(rng.choice(list(VEHICLES))), int(seeds[k]), cycle,
                              0.0, None, None, 2, round(float(rng.uniform(-5.0, 35.0)), 1), *draw_start(start_rng)))
        k += 1
    return specs


def run_trip(spec: TripSpec) -> tuple[SpeedProfile, Trace]:
    if spec.route == "generated":
        profile = generate_trip(spec.seed, spec.duration_s, spec.mix, name=f"{spec.split}-{spec.index:03d}",
                                styles=spec.styles, driving="varied")
    else:
        profile = load_cycle(spec.route).repeated(2)
    rng = np.random.default_rng([spec.seed, 0x5C4ED])
    anomalies = random_schedule(rng, profile.duration_s, spec.anomalies) if spec.anomalies else []
    conditions = PlantConditions(ambient_c=spec.ambient_c, start_fuel_pct=float(rng.uniform(30.0, 95.0)),
                                 start_coolant_c=spec.start_coolant_c, hilliness=spec.hilliness)
    trace = simulate(profile, get_vehicle(spec.vehicle), anomalies, spec.seed, conditions)
    return profile, trace


def trip_rows(trace: Trace) -> str:
    """The trip at 1 Hz as CSV text (fixed formatting, so the bytes depend only on the values)."""
    sampled = trace.resample()
    readings = as_sampled(as_received_nmea(as_received(BUS_PROFILE, sampled.signals)))
    labels = {kind: sampled.label_mask(kind) for kind in sorted({event.type for event in sampled.events})}
    lines = [",".join(COLUMNS)]
    columns = {"t_s": sampled.t_s, **readings, "fuel_rate_lph": sampled.aux["fuel_rate"]}
    style = sampled.style if sampled.style is not None else np.zeros(len(sampled.t_s), dtype=np.int64)
    for i in range(len(sampled.t_s)):
        cells = []
        for name in COLUMNS[:-3]:
            value = float(columns[name][i])
            cells.append("" if value != value else _FORMATS.get(name, "{:.4f}").format(value))
        cells.append(STYLES[style[i]])
        active = [kind for kind, mask in labels.items() if mask[i]]
        cells += ["1" if active else "0", "+".join(sorted(active))]
        lines.append(",".join(cells))
    return "\n".join(lines) + "\n"


def build_dataset(out_dir: Path, seed: int, train: int = 24, val: int = 8, test: int = 8,
                  trip_duration_s: float = 1800.0,
                  progress: Callable[[str], None] | None = None) -> dict:
    """Generate and write the dataset; returns the manifest."""
    report = progress or (lambda message: print(message, file=sys.stderr, flush=True))
    specs = plan_trips(seed, train, val, test, trip_duration_s)
    out_dir.mkdir(parents=True, exist_ok=True)
    trips = []
    digests: dict[str, str] = {}
    dataset_hash = hashlib.sha256()
    for n, spec in enumerate(specs, start=1):
        profile, trace = run_trip(spec)
        digest = profile.digest()
        if digest in digests and digests[digest] != spec.split:
            raise RuntimeError(f"speed trace {digest} appears in splits {digests[digest]} and {spec.split}")
        digests[digest] = spec.split
        rel = f"{spec.split}/trip_{spec.index:03d}.csv"
        (out_dir / spec.split).mkdir(exist_ok=True)
        data = trip_rows(trace).encode()
        (out_dir / rel).write_bytes(data)
        dataset_hash.update(rel.encode() + b"\0" + hashlib.sha256(data).digest())
        trips.append({
            "file": rel, **{k: v for k, v in asdict(spec).items() if k not in ("index", "anomalies")},
            "duration_s": profile.duration_s, "trace_digest": digest, "sha256": hashlib.sha256(data).hexdigest(),
            "events": [asdict(event) for event in trace.events],
        })
        report(f"[{n}/{len(specs)}] {rel}: {spec.vehicle}, {spec.route}, {profile.duration_s:.0f} s, "
               f"{len(trace.events)} anomalies")
    manifest = {
        "version": DATASET_VERSION,
        "seed": seed,
        "sample_rate_hz": 1.0,
        "bus_profile": BUS_PROFILE,
        "columns": list(COLUMNS),
        "held_out_cycles": list(HELD_OUT_CYCLES),
        "splits": {split: [t["file"] for t in trips if t["split"] == split] for split in SPLITS},
        "trips": trips,
        "dataset_sha256": dataset_hash.hexdigest(),
    }
    (out_dir / "manifest.json").write_text(json.dumps(manifest, indent=1, sort_keys=True) + "\n")
    return manifest


def read_trip(path: Path) -> dict[str, np.ndarray]:
    """A dataset trip file as columns (numbers as float arrays, NaN for no reading; style and type as text)."""
    lines = path.read_text().splitlines()
    header = lines[0].split(",")
    if tuple(header) != COLUMNS:
        raise ValueError(f"{path}: unexpected columns {header}; expected {list(COLUMNS)}")
    rows = [line.split(",") for line in lines[1:]]
    out: dict[str, np.ndarray] = {}
    for j, name in enumerate(header):
        if name in ("anomaly_type", "driving_style"):
            out[name] = np.array([row[j] for row in rows])
        else:
            out[name] = np.array([float(row[j]) if row[j] else np.nan for row in rows])
    return out
