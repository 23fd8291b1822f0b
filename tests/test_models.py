"""The committed models (models/manifest.json) against their contract and budgets, on a held-out set.

The held-out set is generated here from seeds and speed traces training never used (`HELD_OUT_SEED` with
`training.evaluate.eval_trips`, plus the real cycles UDDS and WLTC 3b, which training keeps out of its train and
validation splits); the test checks that none of its traces is among the training trips' traces.
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import onnx
import pytest

from harness.inference.features import (
    BEHAVIOUR_FEATURES,
    EARTH_RADIUS_M,
    MIN_STEP_FOR_HEADING_M,
    WINDOW_S,
    _stats,
    behaviour_features,
    fuel_level_slope_pct_per_min,
    lateral_proxy,
)
from harness.inference.models import (
    CONTRACT,
    MODEL_NAMES,
    ManifestError,
    ModelSet,
    bench_models,
    format_bench,
    load_manifest,
)
from harness.wire.behaviour import STYLES
from harness.wire.signals import SIGNALS
from training.data import make_windows
from training.evaluate import (
    MODEL_TYPES,
    FuelLinearBaseline,
    ZScoreBaseline,
    anomaly_report,
    eval_trips,
    macro_f1,
    r2_score,
    score_trips,
)

MODELS = Path(__file__).resolve().parents[1] / "models"
MANIFEST = MODELS / "manifest.json"
HELD_OUT_SEED = 20_251_126  # not a training seed; eval_trips' default salt is not one training uses
ONE_MB = 1_048_576

pytestmark = pytest.mark.skipif(not MANIFEST.exists(), reason="models/manifest.json not committed yet")


@pytest.fixture(scope="module")
def manifest():
    return load_manifest(MANIFEST)


@pytest.fixture(scope="module")
def models(manifest):
    with ModelSet(manifest) as m:
        yield m


@pytest.fixture(scope="module")
def held_out(manifest):
    trips = eval_trips(HELD_OUT_SEED, 8, duration_s=3600.0, per_trip=7)
    training_traces = set(manifest.dataset["train_val_trace_digests"])
    assert not {t.trace_digest for t in trips} & training_traces, "a held-out trace was used in training"
    return trips


@pytest.fixture(scope="module")
def held_out_windows(held_out):
    return make_windows(held_out, stride_s=1)


# ------------------------------------------------------------------------------------------ contract


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_model_loads_with_contract_io_and_size(manifest, name):
    import onnxruntime as ort

    entry = manifest.models[name]
    assert entry.path.stat().st_size <= ONE_MB
    sess = ort.InferenceSession(str(entry.path), providers=["CPUExecutionProvider"])
    got_in = {i.name: (i.shape, i.type) for i in sess.get_inputs()}
    got_out = {o.name: (o.shape, o.type) for o in sess.get_outputs()}
    assert {k: v[0] for k, v in got_in.items()} == CONTRACT[name]["inputs"]
    assert {k: v[0] for k, v in got_out.items()} == CONTRACT[name]["outputs"]
    assert all(t == "tensor(float)" for _, t in got_in.values())
    for out_name, (_, kind) in got_out.items():  # plain tensors: no ZipMap, no sequence of maps
        assert kind == ("tensor(int64)" if out_name == "label" else "tensor(float)"), (out_name, kind)


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_model_metadata(manifest, name):
    meta = {p.key: p.value for p in onnx.load(str(manifest.models[name].path)).metadata_props}
    for key in ("feature_order", "units", "window_s", "stride_s", "model_version", "training_seed", "dataset_sha256"):
        assert key in meta, key
    assert meta["dataset_sha256"] == manifest.dataset["sha256"]
    assert int(meta["training_seed"]) == manifest.training_seed
    assert json.loads(meta["feature_order"]) == list(SIGNALS)
    if name == "anomaly":
        assert float(meta["threshold"]) == pytest.approx(manifest.models["anomaly"].threshold, rel=1e-12)
    if name == "behaviour":
        assert json.loads(meta["classes"]) == list(STYLES) == list(manifest.models["behaviour"].classes)
        assert json.loads(meta["behaviour_features"]) == list(BEHAVIOUR_FEATURES)


def test_manifest_hash_mismatch_names_the_model(tmp_path):
    for f in MODELS.iterdir():
        shutil.copy(f, tmp_path / f.name)
    raw = json.loads((tmp_path / "manifest.json").read_text())
    raw["models"]["behaviour"]["sha256"] = "0" * 64
    (tmp_path / "manifest.json").write_text(json.dumps(raw))
    with pytest.raises(ManifestError, match="model 'behaviour'.*sha256 mismatch"):
        load_manifest(tmp_path / "manifest.json")
    del raw["models"]["fuel"]["opset"]
    (tmp_path / "manifest.json").write_text(json.dumps(raw))
    with pytest.raises(ManifestError, match=r"manifest.json: models\.fuel\.opset: missing"):
        load_manifest(tmp_path / "manifest.json")


def test_manifest_lists_rule_based_types_and_exclusions(manifest):
    assert set(manifest.rule_based_types) == {"harsh_braking", "aggressive_acceleration", "erratic_driving",
                                              "excessive_idling"}
    anomaly = manifest.models["anomaly"].raw
    assert set(anomaly["types"]) == set(MODEL_TYPES)
    assert "stuck_value/brake_pressure" in anomaly["excluded_faults"]


def test_model_set_runs_a_window_with_missing_readings(models, held_out):
    context = held_out[0].samples[360:660].copy()
    context[-50:-30, 2] = np.nan  # throttle drops out
    window = context[-WINDOW_S:]
    fuel = models.fuel(window)
    assert np.isfinite(fuel) and 0.0 <= fuel < 120.0
    with pytest.raises(ValueError, match=r"a window is \[300, 10\]"):
        models.anomaly(window)
    result = models.anomaly(context)
    assert result.alarm and result.worst_signal == "throttle_position"
    label, probs = models.behaviour_window(window)
    assert label in range(3) and probs.shape == (3,) and probs.sum() == pytest.approx(1.0, abs=1e-5)


def test_bench_models_reports_every_model():
    rows = bench_models(MANIFEST, runs=50, warmup=10)
    assert [r.model for r in rows] == list(MODEL_NAMES)
    assert all(r.p50_ms > 0 and r.bytes <= ONE_MB for r in rows)
    assert "reference" in format_bench(rows)


# ------------------------------------------------------------------------------------------ features


def test_behaviour_features_use_sample_std_and_skip_missing():
    rng = np.random.default_rng(3)
    window = rng.normal(50.0, 5.0, (60, 10)).astype(np.float32)
    window[:, 7] = 37.5 + np.arange(60) * 1e-4
    window[:, 8] = 127.0
    f = behaviour_features(window)
    assert f.shape == (len(BEHAVIOUR_FEATURES),) == (18,) and f.dtype == np.float32
    assert f[1] == pytest.approx(np.std(window[:, 0], ddof=1), rel=1e-5)  # not the population std
    window[5:9, 0] = np.nan
    g = behaviour_features(window)
    assert g[0] == pytest.approx(np.nanmean(window[:, 0]), rel=1e-5)
    assert np.isfinite(g[:15]).all()
    window[:, 0] = np.nan
    assert np.isnan(behaviour_features(window)[0])


@pytest.mark.parametrize("ddof", [0, 1])
def test_window_statistics_equal_numpys_bit_for_bit(ddof):
    # _stats skips np.mean/np.std's argument handling: the figures (the models' inputs) must not move by one bit
    rng = np.random.default_rng(ddof)
    for n in [*range(0, 8), 59, 60, 61] * 40:
        x = rng.normal(rng.normal(0.0, 100.0), 10.0 ** rng.integers(-3, 5), n)
        x[rng.random(n) < 0.1] = np.nan
        present = x[~np.isnan(x)]
        expected = [np.mean(present) if len(present) else np.nan,
                    np.std(present, ddof=ddof) if len(present) >= 2 else np.nan,
                    np.max(present) if len(present) else np.nan, np.min(present) if len(present) else np.nan]
        got = _stats(x, "mean", "std", "max", "min", ddof=ddof)
        assert [repr(float(v)) for v in got] == [repr(float(v)) for v in expected], (n, x)
        column = np.stack([x, x[::-1]], axis=1)[:, 0]  # a window's column: a strided view, NaN-free or not
        assert [repr(float(v)) for v in _stats(column, "mean", "std", "max", "min", ddof=ddof)] == \
            [repr(float(v)) for v in expected], (n, x)


def _plain_fuel_slope(fuel_level):
    level = np.asarray(fuel_level, dtype=np.float64)
    t = np.arange(len(level), dtype=np.float64)
    ok = ~np.isnan(level)
    if ok.sum() < 2:
        return float("nan")
    t, level = t[ok], level[ok]
    tc = t - t.mean()
    return float(np.sum(tc * (level - level.mean())) / np.sum(tc * tc) * 60.0)


def _plain_lateral_proxy(window):
    lat = np.asarray(window[:, SIGNALS.index("latitude")], dtype=np.float64)
    lon = np.asarray(window[:, SIGNALS.index("longitude")], dtype=np.float64)
    north = np.radians(np.diff(lat)) * EARTH_RADIUS_M
    east = np.radians(np.diff(lon)) * EARTH_RADIUS_M * np.cos(np.radians(lat[1:]))
    step_m, heading = np.hypot(north, east), np.arctan2(east, north)
    rate = np.angle(np.exp(1j * np.diff(heading)))
    slow = (step_m[1:] < MIN_STEP_FOR_HEADING_M) | (step_m[:-1] < MIN_STEP_FOR_HEADING_M)
    rate = np.where(slow & ~np.isnan(rate), 0.0, rate)
    return window[1:-1, SIGNALS.index("vehicle_speed")] / 3.6 * rate


def test_fuel_slope_and_lateral_proxy_equal_the_plain_numpy_formulas_bit_for_bit():
    # Both skip np.mean/np.sum/np.diff/np.angle's argument handling: the behaviour model's inputs must not move
    rng = np.random.default_rng(11)
    for k in range(300):
        window = rng.uniform(0.0, 120.0, (60, 10))
        window[:, SIGNALS.index("latitude")] = 37.5 + np.cumsum(rng.uniform(-2e-4, 2e-4, 60)) * (k % 3)
        window[:, SIGNALS.index("longitude")] = 127.0 + np.cumsum(rng.uniform(-2e-4, 2e-4, 60)) * (k % 2)
        window[:, SIGNALS.index("fuel_level")] = 60.0 - np.cumsum(rng.uniform(0.0, 0.02, 60))
        window[rng.random((60, 10)) < (k % 5) / 20.0] = np.nan
        fuel = window[:, SIGNALS.index("fuel_level")]
        assert repr(fuel_level_slope_pct_per_min(fuel)) == repr(_plain_fuel_slope(fuel)), k
        assert lateral_proxy(window).tobytes() == _plain_lateral_proxy(window).tobytes(), k


# ------------------------------------------------------------------------------------------ held-out quality


def test_fuel_r2_on_held_out_trips(manifest, models, held_out_windows):
    w = held_out_windows
    pred = np.array([models.fuel(x) for x in w.x])
    r2 = r2_score(w.fuel_lph, pred)
    base = FuelLinearBaseline(manifest.models["fuel"].raw["baseline"]["coef"],
                              manifest.models["fuel"].raw["baseline"]["fill"])
    base_r2 = r2_score(w.fuel_lph, base(w.x))
    assert r2 >= 0.95, f"fuel R2 {r2:.4f} (baseline {base_r2:.4f})"
    assert r2 > base_r2


@pytest.fixture(scope="module")
def behaviour_scores(manifest, models, held_out_windows):
    w = held_out_windows
    sub = slice(None, None, 2)
    pred = np.array([models.behaviour_window(x)[0] for x in w.x[sub]])
    base = np.full(len(pred), manifest.models["behaviour"].raw["baseline"]["class"])
    return macro_f1(w.style[sub], pred), macro_f1(w.style[sub], base)


#: Regression floor for the behaviour model: what it measures today on this held-out set, less a margin. Model
#: 1.1.0 against the labels its driving earns (docs/models.md, "Driving styles"), on varied driving: 0.769 over
#: every window (0.818 on the generated trips' stable windows without an anomaly, 0.53 on the cycles', where a
#: style seen in a few % of windows weighs as much as the main one); model 1.0.0 scored 0.93 against the
#: generator's intended styles on trip-gen/2 driving, a different question.
BEHAVIOUR_F1_FLOOR = 0.72


def test_behaviour_beats_baseline_on_held_out_trips(behaviour_scores):
    f1, base_f1 = behaviour_scores
    assert f1 > base_f1 and f1 >= BEHAVIOUR_F1_FLOOR, f"behaviour macro-F1 {f1:.4f} (baseline {base_f1:.4f})"


@pytest.mark.xfail(reason="issue 21: the behaviour model of 1.1.0 and 1.2.0 scores 0.769 here against the earned "
                          "style labels on varied driving (target 0.90): eco against normal while holding a speed "
                          "rests on a speed wander below the 1 km/h OBD-II step; see docs/models.md, 'Known limits'",
                   strict=False)
def test_behaviour_macro_f1_target_on_held_out_trips(behaviour_scores):
    f1, base_f1 = behaviour_scores
    assert f1 >= 0.90, f"behaviour macro-F1 {f1:.4f} (baseline {base_f1:.4f})"


@pytest.fixture(scope="module")
def anomaly_reports(manifest, models, held_out):
    scores = lambda x: np.array([models.anomaly(w).score for w in x])  # noqa: E731
    report = anomaly_report(score_trips(held_out, scores), models.threshold)
    raw = manifest.models["anomaly"].raw["baseline"]
    base = anomaly_report(score_trips(held_out, ZScoreBaseline(raw["mean"], raw["std"])), raw["threshold"])
    summary = (f"event AUROC {report['event_auroc']}, recall {report['event_recall_per_type']} "
               f"({report['event_recall']:.3f}), {report['false_alarms_per_hour']:.2f} FA/h; baseline min AUROC "
               f"{base['min_event_auroc']:.3f}, recall {base['event_recall']:.3f}")
    return report, base, summary


#: Regression floors for the anomaly model on this held-out set (8 one-hour trips and two cycles: about 10
#: events per type): today's figures less a margin. Today (model 1.2.0): recall 0.983 at 0.23 false alarms per
#: hour, every fuel leak found; the one type below full recall is the drift (8 of 9). Model 1.1.0 had 0.983 at 0.69
#: (7 of 8 leaks), model 1.0.0 fuel leaks at 0.88 and spike noise at 0.94 event AUROC (docs/models.md, "Known
#: limits").
ANOMALY_AUROC_FLOOR, ANOMALY_RECALL_FLOOR, ANOMALY_FA_PER_H_CEILING = 0.85, 0.93, 1.0


def test_anomaly_beats_baseline(anomaly_reports):
    report, base, summary = anomaly_reports
    assert set(report["event_auroc"]) == set(MODEL_TYPES), summary
    assert report["min_event_auroc"] > base["min_event_auroc"], summary
    assert report["event_recall"] > base["event_recall"], summary
    assert report["min_event_auroc"] >= ANOMALY_AUROC_FLOOR and report["event_recall"] >= ANOMALY_RECALL_FLOOR, summary
    assert report["false_alarms_per_hour"] <= ANOMALY_FA_PER_H_CEILING, summary


def test_anomaly_event_auroc_target_per_type(anomaly_reports):
    report, _, summary = anomaly_reports
    assert min(report["event_auroc"].values()) >= 0.95, summary


def test_anomaly_event_recall_target(anomaly_reports):
    report, _, summary = anomaly_reports
    assert report["event_recall"] >= 0.95 and report["false_alarms_per_hour"] <= 1.0, summary
