"""Trips as arrays, and the windows the models learn from.

A trip here is a `Trip`: the 1 Hz samples [T, 10] of the ten signals (NaN = no reading), the ground-truth fuel
rate, the driving style index per sample (the style its driving earns, `harness.world.driving_style`), the
per-sample anomaly type ('' when normal) and the labelled events.
Trips come from a `harness.world.dataset` directory (`load_split`) or straight from the plant
(`training.evaluate.eval_trips`).
No torch here: the tests use this module with the runtime dependencies only.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from harness.inference.features import WINDOW_S, context_windows, sliding_windows
from harness.wire.behaviour import STYLES
from harness.wire.signals import SIGNALS, LabelledEvent
from harness.world.dataset import read_trip
from harness.world.driving_style import window_labels


@dataclass
class Trip:
    name: str
    samples: np.ndarray  # [T, 10] float32, SIGNALS order
    fuel_rate_lph: np.ndarray  # [T]
    style: np.ndarray  # [T] int64 index into STYLES
    anomaly_type: np.ndarray  # [T] str, '' = normal, 'a+b' when two overlap
    events: list[LabelledEvent] = field(default_factory=list)
    trace_digest: str = ""  # the speed trace's digest (harness.world.cycles.SpeedProfile.digest), when known

    @property
    def duration_s(self) -> float:
        return float(len(self.samples))


def load_split(data_dir: Path, split: str) -> list[Trip]:
    """Every trip of `split` in a `harness.world.dataset` directory, with its events from the manifest."""
    manifest = json.loads((data_dir / "manifest.json").read_text())
    events = {t["file"]: t.get("events", []) for t in manifest["trips"]}
    meta = {t["file"]: t.get("trace_digest", "") for t in manifest["trips"]}
    trips = []
    for rel in manifest["splits"][split]:
        cols = read_trip(data_dir / rel)
        samples = np.stack([cols[name] for name in SIGNALS], axis=1).astype(np.float32)
        style = np.array([STYLES.index(s) for s in cols["driving_style"]], dtype=np.int64)
        trips.append(Trip(rel, samples, cols["fuel_rate_lph"].astype(np.float64), style,
                          cols["anomaly_type"].astype(str),
                          [LabelledEvent(e["type"], e["start_s"], e["end_s"], e["severity"], e.get("signal"))
                           for e in events[rel]], meta[rel]))
    return trips


@dataclass
class Windows:
    """Windows of several trips with what each window is labelled with."""

    x: np.ndarray  # [n, 60, 10] float32 (or [n, context_s, 10] when made with `context_s`: the last 60 rows)
    fuel_lph: np.ndarray  # [n] mean true fuel rate over the window
    fuel_seq: np.ndarray  # [n, 60] true fuel rate per second (float32)
    style: np.ndarray  # [n] the window's style: that of its last second (`harness.world.driving_style.window_labels`)
    style_purity: np.ndarray  # [n] share of the window's samples with that style (its stability)
    trip: np.ndarray  # [n] index of the trip in the list given
    end_s: np.ndarray  # [n] time of the window's last sample (s from trip start)
    clean: np.ndarray  # [n] bool: no sample of the window carries an anomaly label


def last_rows(w: Windows, window_s: int = WINDOW_S) -> Windows:
    """The same windows with `x` cut to its last `window_s` rows (a view): context inputs → model windows."""
    return Windows(**{**{k: getattr(w, k) for k in Windows.__dataclass_fields__}, "x": w.x[:, -window_s:]})


def make_windows(trips: list[Trip], stride_s: int = 1, window_s: int = WINDOW_S,
                 context_s: int | None = None) -> Windows:
    """Every window of `trips`; with `context_s`, `x` holds the anomaly model's longer inputs ending at each
    window's end (NaN before the trip's start), labels still from the window's own `window_s` samples."""
    parts: dict[str, list[np.ndarray]] = {k: [] for k in Windows.__dataclass_fields__}
    for k, trip in enumerate(trips):
        x = (sliding_windows(trip.samples, window_s, stride_s) if context_s is None
             else context_windows(trip.samples, context_s, window_s, stride_s))
        n = len(x)
        if n == 0:
            continue
        fuel_seq = sliding_windows(trip.fuel_rate_lph[:, None], window_s, stride_s)[:, :, 0]
        style, stability = window_labels(trip.style, window_s)
        anomalous = sliding_windows((trip.anomaly_type != "")[:, None].astype(np.int8), window_s, stride_s)
        parts["x"].append(np.ascontiguousarray(x, dtype=np.float32))
        parts["fuel_lph"].append(fuel_seq.mean(axis=1))
        parts["fuel_seq"].append(np.ascontiguousarray(fuel_seq, dtype=np.float32))
        parts["style"].append(style[::stride_s])
        parts["style_purity"].append(stability[::stride_s])
        parts["trip"].append(np.full(n, k))
        parts["end_s"].append(np.arange(n) * stride_s + window_s - 1.0)
        parts["clean"].append(anomalous[:, :, 0].sum(axis=1) == 0)
    if not parts["x"]:
        raise ValueError("no trip is as long as one window")
    return Windows(**{k: np.concatenate(v) for k, v in parts.items()})
