"""The unit's three ONNX models as the app runs them: manifest validation, sessions, inference, benchmarks.

`load_manifest(path)` reads `models/manifest.json`, checks every field the app and harness rely on, and checks
each model file's sha256 (a mismatch names the model). `ModelSet.open(path)` opens one onnxruntime session per
model (CPU, 1 intra-op thread, as on the device) and offers:

- `fuel(window) -> float` — mean fuel rate (L/h) over the window;
- `anomaly(window) -> AnomalyResult` — score, alarm (`score > threshold`), per-signal scores;
- `behaviour(features) -> (label, probabilities)` — class index into `classes` and the three probabilities;
  `behaviour_window(window)` computes the features with `harness.inference.features.behaviour_features` first.

A window is float32 [60, 10] (or [1, 60, 10]) of raw readings in `harness.wire.signals.SIGNALS` order, NaN for a
missing reading: normalisation and missing-value handling are inside the graphs.

`bench_models(manifest_path)` measures p50/p99 latency (1 thread, batch 1, after warm-up) and size per model,
beside the reference system's figures; `format_bench(rows)` renders them as a table.

What this module does not do: windowing a live stream, or any rule-based event detection (the app does that).
"""
from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from harness.core.datafile import FileTooLarge, read_limited
from harness.core.errors import DtgHilError
from harness.inference.features import CONTEXT_S, WINDOW_S, behaviour_features
from harness.wire.signals import SIGNALS

MODEL_NAMES = ("fuel", "anomaly", "behaviour")
#: The models bundled with dtg-hil: `models/manifest.json` beside the `harness` package it is installed from (an
#: editable install, `pip install -e`, keeps it there), found from this file and never from the current folder.
BUNDLED_MANIFEST = Path(__file__).resolve().parents[2] / "models" / "manifest.json"
#: Input and output names and shapes of the model contract (docs/models.md).
CONTRACT: dict[str, dict[str, dict[str, list[int]]]] = {
    "fuel": {"inputs": {"window": [1, WINDOW_S, len(SIGNALS)]}, "outputs": {"fuel_rate_lph": [1, 1]}},
    "anomaly": {"inputs": {"window": [1, CONTEXT_S, len(SIGNALS)]},
                "outputs": {"score": [1], "signal_scores": [1, len(SIGNALS)]}},
    "behaviour": {"inputs": {"features": [1, 18]}, "outputs": {"label": [1], "probabilities": [1, 3]}},
}
#: The reference system's figures (issue 4, shared/DESIGN.md).
REFERENCE: dict[str, dict[str, object]] = {
    "fuel": {"family": "TCN [64,128,256]", "bytes_max": 4 * 1024 * 1024, "ms_max": 25.0,
             "quality": "R2 0.943 (random window split)"},
    "anomaly": {"family": "LSTM-AE 2x128", "bytes_max": 3 * 1024 * 1024, "ms_max": 35.0,
                "quality": "F1 0.588 (P 1.0, R 0.417)"},
    "behaviour": {"family": "LightGBM (ZipMap)", "bytes_max": 10 * 1024 * 1024, "ms_max": 15.0,
                  "quality": "output unreadable by its app"},
}
REFERENCE_TOTAL = {"bytes": int(2.33 * 1024 * 1024), "ms_per_window": 1.82}


class ManifestError(DtgHilError, ValueError):
    """The manifest or a model file is missing, malformed, or does not match."""


@dataclass(frozen=True)
class ModelEntry:
    name: str
    path: Path
    sha256: str
    bytes: int
    opset: int
    inputs: list[dict]
    outputs: list[dict]
    window_s: int
    stride_s: int
    budgets: dict
    metrics: dict
    threshold: float | None = None
    classes: tuple[str, ...] | None = None
    raw: dict = field(default_factory=dict, repr=False)


@dataclass(frozen=True)
class Manifest:
    path: Path
    version: str
    training_seed: int
    dataset: dict
    models: dict[str, ModelEntry]
    rule_based_types: tuple[str, ...]
    raw: dict = field(default_factory=dict, repr=False)


def sha256_file(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def _get(obj: dict, key: str, kind: type | tuple, where: str, path: Path):
    if not isinstance(obj, dict) or key not in obj:
        raise ManifestError(f"{path}: {where}{key}: missing")
    value = obj[key]
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        names = kind.__name__ if isinstance(kind, type) else " or ".join(k.__name__ for k in kind)
        raise ManifestError(f"{path}: {where}{key}: expected {names}, got {type(value).__name__} {value!r}")
    return value


def load_manifest(path: Path | str, check_files: bool = True) -> Manifest:
    """Read and validate a models manifest; with `check_files`, check every model file's size and sha256."""
    path = Path(path)
    try:
        raw = json.loads(read_limited(path, "manifest"))
    except FileTooLarge as exc:
        raise ManifestError(str(exc)) from None
    except OSError as exc:
        raise ManifestError(f"{path}: cannot read the manifest: {exc.strerror}") from None
    except json.JSONDecodeError as exc:
        raise ManifestError(f"{path}:{exc.lineno}: not JSON: {exc.msg}") from None
    version = str(_get(raw, "version", (str, int), "", path))
    seed = _get(raw, "training_seed", int, "", path)
    dataset = _get(raw, "dataset", dict, "", path)
    _get(dataset, "sha256", str, "dataset.", path)
    _get(dataset, "seed", int, "dataset.", path)
    _get(dataset, "version", str, "dataset.", path)
    models_raw = _get(raw, "models", dict, "", path)
    rule_based = tuple(_get(raw, "rule_based_types", list, "", path))
    missing = [m for m in MODEL_NAMES if m not in models_raw]
    if missing:
        raise ManifestError(f"{path}: models.{missing[0]}: missing; expected models {', '.join(MODEL_NAMES)}")
    models = {}
    for name in MODEL_NAMES:
        m = models_raw[name]
        where = f"models.{name}."
        file = Path(_get(m, "file", str, where, path))
        entry = ModelEntry(
            name=name, path=(path.parent / file) if not file.is_absolute() else file,
            sha256=_get(m, "sha256", str, where, path), bytes=_get(m, "bytes", int, where, path),
            opset=_get(m, "opset", int, where, path), inputs=_get(m, "inputs", list, where, path),
            outputs=_get(m, "outputs", list, where, path), window_s=_get(m, "window_s", int, where, path),
            stride_s=_get(m, "stride_s", int, where, path), budgets=_get(m, "budgets", dict, where, path),
            metrics=_get(m, "metrics", dict, where, path),
            threshold=float(_get(m, "threshold", (int, float), where, path)) if name == "anomaly" else None,
            classes=tuple(_get(m, "classes", list, where, path)) if name == "behaviour" else None,
            raw=m,
        )
        if len(entry.sha256) != 64 or any(c not in "0123456789abcdef" for c in entry.sha256):
            raise ManifestError(f"{path}: {where}sha256: expected 64 lowercase hex digits, got {entry.sha256!r}")
        for kind in ("inputs", "outputs"):
            declared = {io.get("name"): io.get("shape") for io in getattr(entry, kind)}
            if declared != CONTRACT[name][kind]:
                raise ManifestError(f"{path}: {where}{kind}: expected {CONTRACT[name][kind]}, got {declared}")
        if check_files:
            if not entry.path.is_file():
                raise ManifestError(f"{path}: {where}file: model '{name}' file {entry.path} does not exist")
            actual = sha256_file(entry.path)
            if actual != entry.sha256:
                raise ManifestError(f"{path}: model '{name}' ({entry.path.name}): sha256 mismatch: manifest says "
                                    f"{entry.sha256}, file has {actual}")
            size = entry.path.stat().st_size
            if size != entry.bytes:
                raise ManifestError(f"{path}: model '{name}' ({entry.path.name}): manifest says {entry.bytes} "
                                    f"bytes, file has {size}")
        models[name] = entry
    return Manifest(path, version, seed, dataset, models, rule_based, raw)


def open_session(path: Path):
    """An onnxruntime CPU session with 1 intra-op and 1 inter-op thread, as the device runs it."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    options.log_severity_level = 3
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


@dataclass(frozen=True)
class AnomalyResult:
    score: float
    alarm: bool
    signal_scores: dict[str, float]

    @property
    def worst_signal(self) -> str:
        return max(self.signal_scores, key=self.signal_scores.get)


def _window(window: np.ndarray, length_s: int = WINDOW_S) -> np.ndarray:
    w = np.asarray(window, dtype=np.float32)
    if w.shape == (length_s, len(SIGNALS)):
        w = w[None]
    if w.shape != (1, length_s, len(SIGNALS)):
        raise ValueError(f"a window is [{length_s}, {len(SIGNALS)}] (or [1, {length_s}, {len(SIGNALS)}]) of "
                         f"{', '.join(SIGNALS)}; got shape {w.shape}")
    return w


class ModelSet:
    """The three models of a manifest, ready to run one window at a time."""

    def __init__(self, manifest: Manifest):
        self.manifest = manifest
        self._sessions = {}
        for name, entry in manifest.models.items():
            try:
                self._sessions[name] = open_session(entry.path)
            except Exception as exc:  # noqa: BLE001 - onnxruntime's own types (InvalidProtobuf, Fail, ...)
                raise ManifestError(f"{manifest.path}: model '{name}' ({entry.path}): onnxruntime cannot load it "
                                    f"(sha256 {entry.sha256}, as the manifest says): {exc}") from None
        self.threshold = float(manifest.models["anomaly"].threshold)
        self.classes = manifest.models["behaviour"].classes
        self._closed = False

    @classmethod
    def open(cls, manifest_path: Path | str) -> ModelSet:
        return cls(load_manifest(manifest_path))

    def _run(self, name: str, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        if self._closed:
            raise RuntimeError(f"ModelSet for {self.manifest.path} is closed")
        return self._sessions[name].run(None, feeds)

    def fuel(self, window: np.ndarray) -> float:
        """Mean fuel rate (L/h) over the window."""
        return float(self._run("fuel", {"window": _window(window)})[0][0, 0])

    def anomaly(self, context: np.ndarray) -> AnomalyResult:
        """Score the anomaly model's input: the last CONTEXT_S samples, NaN before the trip's first."""
        score, per_signal = self._run("anomaly", {"window": _window(context, CONTEXT_S)})
        value = float(score[0])
        per_signal_scores = dict(zip(SIGNALS, per_signal[0].astype(float).tolist(), strict=False))
        return AnomalyResult(value, value > self.threshold, per_signal_scores)

    def behaviour(self, features: np.ndarray) -> tuple[int, np.ndarray]:
        """(class index into `classes`, probabilities [3]) from the 18 features of `behaviour_features`."""
        f = np.asarray(features, dtype=np.float32).reshape(1, -1)
        if f.shape != (1, 18):
            raise ValueError("behaviour takes the 18 features of harness.inference.features.behaviour_features; "
                             f"got {f.shape}")
        label, probabilities = self._run("behaviour", {"features": f})
        return int(label[0]), probabilities[0]

    def behaviour_window(self, window: np.ndarray) -> tuple[int, np.ndarray]:
        return self.behaviour(behaviour_features(_window(window)[0]))

    def close(self) -> None:
        self._sessions.clear()
        self._closed = True

    def __enter__(self) -> ModelSet:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


@dataclass(frozen=True)
class BenchRow:
    model: str
    bytes: int
    p50_ms: float
    p99_ms: float
    bytes_max: int
    p99_ms_max: float
    reference_bytes_max: int
    reference_ms_max: float
    runs: int

    @property
    def within_budget(self) -> bool:
        return self.bytes <= self.bytes_max and self.p99_ms <= self.p99_ms_max


def bench_example_inputs(seed: int = 0) -> dict[str, dict[str, np.ndarray]]:
    """A plausible drive (cruising at 50 km/h): a window, the anomaly model's context ending with it, and its
    behaviour features: inputs for latency runs."""
    rng = np.random.default_rng(seed)
    t = np.arange(CONTEXT_S, dtype=np.float64)
    speed = 50.0 + 3.0 * np.sin(t / 9.0)
    window = np.stack([
        speed, speed * 38.0, 20.0 + 5.0 * np.sin(t / 7.0), np.zeros_like(t), 88.0 + rng.normal(0, 0.1, len(t)),
        60.0 - t * 0.002 + rng.normal(0, 0.1, len(t)), np.gradient(speed / 3.6) + rng.normal(0, 0.05, len(t)),
        37.5665 + np.cumsum(speed / 3.6) / 111_195.0, np.full_like(t, 126.978), 100.0 + t * 0.05,
    ], axis=1).astype(np.float32)
    return {"fuel": {"window": window[None, -WINDOW_S:]}, "anomaly": {"window": window[None]},
            "behaviour": {"features": behaviour_features(window[-WINDOW_S:])[None]}}


def bench_session(session, feeds: dict[str, np.ndarray], runs: int = 2000, warmup: int = 200) -> tuple[float, float]:
    """p50 and p99 latency (ms) of `session.run` with `feeds`, after `warmup` runs."""
    for _ in range(warmup):
        session.run(None, feeds)
    times = np.empty(runs)
    for i in range(runs):
        start = time.perf_counter()
        session.run(None, feeds)
        times[i] = time.perf_counter() - start
    return float(np.percentile(times, 50) * 1e3), float(np.percentile(times, 99) * 1e3)


def bench_models(manifest_path: Path | str, runs: int = 2000, warmup: int = 200) -> list[BenchRow]:
    """Latency (onnxruntime, 1 thread, batch 1, after warm-up) and size of each model of a manifest."""
    manifest = load_manifest(manifest_path)
    inputs = bench_example_inputs()
    rows = []
    for name in MODEL_NAMES:
        entry = manifest.models[name]
        p50, p99 = bench_session(open_session(entry.path), inputs[name], runs, warmup)
        rows.append(BenchRow(name, entry.path.stat().st_size, p50, p99, int(entry.budgets.get("bytes_max", 0)),
                             float(entry.budgets.get("p99_ms_max", float("nan"))),
                             int(REFERENCE[name]["bytes_max"]), float(REFERENCE[name]["ms_max"]), runs))
    return rows


def format_bench(rows: list[BenchRow]) -> str:
    """The bench rows as a table, with the reference system's budgets and totals beside them."""
    lines = [f"{'model':<10}{'size KiB':>10}{'budget KiB':>11}{'p50 ms':>9}{'p99 ms':>9}{'budget ms':>10}  "
             f"{'ok':<4}{'reference':>28}"]
    for r in rows:
        ref = REFERENCE[r.model]
        lines.append(f"{r.model:<10}{r.bytes / 1024:>10.1f}{r.bytes_max / 1024:>11.0f}{r.p50_ms:>9.3f}{r.p99_ms:>9.3f}"
                     f"{r.p99_ms_max:>10.2f}  {'yes' if r.within_budget else 'NO':<4}"
                     f"{ref['family'] + f' <={r.reference_bytes_max // 2**20} MB <={r.reference_ms_max:g} ms':>28}")
    total_bytes = sum(r.bytes for r in rows)
    total_ms = sum(r.p50_ms for r in rows)
    reference = f"reference {REFERENCE_TOTAL['bytes'] / 2**20:.2f} MB, {REFERENCE_TOTAL['ms_per_window']} ms/window"
    lines.append(f"{'total':<10}{total_bytes / 1024:>10.1f}{'':>11}{total_ms:>9.3f}{'':>9}{'':>10}  {'':<4}"
                 f"{reference:>28}")
    lines.append(f"({rows[0].runs if rows else 0} runs per model after warm-up, onnxruntime CPU, 1 thread, batch 1; "
                 f"total ms = sum of p50s, the models run one after the other)")
    return "\n".join(lines)


def print_bench(rows: list[BenchRow]) -> None:
    print(format_bench(rows))
