"""Training: the quick CLI run writes three loadable models and a valid manifest; training is deterministic; the
anomaly graph's heat-balance feature."""
from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from harness.inference.features import CONTEXT_S, WINDOW_S, context_windows  # noqa: E402
from harness.inference.models import MODEL_NAMES, ModelSet, load_manifest  # noqa: E402
from training.anomaly_features import AnomalyFeatures  # noqa: E402
from training.channels import COL, Channels  # noqa: E402
from training.common import make_deterministic  # noqa: E402
from training.data import make_windows  # noqa: E402
from training.evaluate import eval_trips  # noqa: E402
from training.feature_catalogue import FEATURES  # noqa: E402
from training.fuel import train_fuel  # noqa: E402
from training.nets import CROSS_CHANNELS, CrossPredictor, FuelTCN  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def test_quick_training_writes_three_models_and_a_manifest(tmp_path):
    start = time.monotonic()
    done = subprocess.run([sys.executable, "-m", "training", "--quick", "--out", str(tmp_path / "m")], cwd=ROOT,
                          capture_output=True, text=True, timeout=600)
    wall_s = time.monotonic() - start
    assert done.returncode == 0, done.stderr[-3000:]
    # The 3-minute budget is a figure to read, not a timed assertion (CI machines are noisy).
    print(f"python -m training --quick took {wall_s:.0f} s")
    assert "fuel     epoch" in done.stderr and "done" in done.stderr  # progress lines
    manifest = load_manifest(tmp_path / "m" / "manifest.json")  # checks every file's sha256 and size
    assert sorted(p.name for p in (tmp_path / "m").glob("*.onnx")) == sorted(f"{n}.onnx" for n in MODEL_NAMES)
    assert manifest.raw["quick"] is True
    loco = manifest.raw["leave_one_cycle_out"]  # each bundled cycle a split, judged against issue 21's targets
    assert list(loco["splits"]) == ["generated", "udds", "wltc_class1", "wltc_class3b"]
    assert "leave-one-cycle-out" in done.stderr and loco["calibration_cycles"] == []
    assert loco["cycles_together"]["overall"]["events"] > 0 and "recall" in loco["cycles_together"]["targets_met"]
    context = np.tile(np.array([50, 2000, 20, 0, 88, 60, 0, 37.5, 127.0, 100], dtype=np.float32), (CONTEXT_S, 1))
    context[:100] = np.nan  # the first seconds of a trip
    window = context[-WINDOW_S:]
    with ModelSet(manifest) as models:
        assert np.isfinite(models.fuel(window))
        assert np.isfinite(models.anomaly(context).score)
        label, probs = models.behaviour_window(window)
        assert 0 <= label < 3 and probs.shape == (3,)


def test_fuel_training_is_deterministic_for_a_seed():
    trips = eval_trips(7, 2, duration_s=400.0, cycles=(), per_trip=1)
    windows = make_windows(trips, stride_s=20)
    fallback = np.nanmean(np.concatenate([t.samples for t in trips]), axis=0)
    params = []
    for _ in range(2):
        make_deterministic(5)
        model = train_fuel(windows, windows, fallback, seed=5, epochs=1, width=8, progress=lambda m: None)
        params.append(torch.cat([p.detach().flatten() for p in model.parameters()]))
    assert torch.equal(params[0], params[1])


class _FixedFuelRate(torch.nn.Module):
    """Stands in for the fuel TCN: every window burns `lph`."""

    def __init__(self, lph: float):
        super().__init__()
        self.lph = lph

    def forward(self, x):
        return torch.full((x.shape[0], 1), self.lph)


def _cold_not_warming(coolant: np.ndarray, lph: float) -> float:
    fallback = np.array([50, 2000, 20, 0, 88, 60, 0, 37.5, 127.0, 100], dtype=np.float32)
    extractor = AnomalyFeatures(FuelTCN(Channels(fallback)), fallback,
                                CrossPredictor(Channels(fallback, CROSS_CHANNELS))).eval()
    extractor.fuel = _FixedFuelRate(lph)
    context = np.tile(fallback, (CONTEXT_S, 1))
    context[-WINDOW_S:, COL] = coolant
    with torch.no_grad():
        feats = extractor(torch.from_numpy(context[None]))
    return float(feats[0, FEATURES.index("coolant_cold_not_warming")])


@pytest.mark.parametrize("coolant, lph, expected", [
    (np.full(WINDOW_S, 70.0), 8.0, 8.0 - 5.2),  # held at 70 degC under 8 L/h: short of 1 degC/min per L/h - 5.2
    (70.0 - 0.08 * np.arange(WINDOW_S), 8.0, 8.0 - 5.2 + 4.8),  # falling 4.8 degC/min: short by that much more
    (60.0 + 0.1 * np.arange(WINDOW_S), 8.0, 0.0),  # warming up at 6 degC/min: what a burning engine does
    (np.full(WINDOW_S, 90.0), 8.0, 0.0),  # warm: the thermostat holds it, flat is normal
    (np.full(WINDOW_S, 70.0), 0.8, 0.0),  # idling: too little heat to promise a rise
    (np.full(WINDOW_S, np.nan), 8.0, 0.0),  # no coolant reading: the dropout features judge that
])
def test_a_cold_coolant_reading_that_does_not_warm_under_load_is_flagged(coolant, lph, expected):
    assert _cold_not_warming(coolant, lph) == pytest.approx(expected, abs=1e-3)


def test_the_shipped_models_are_the_current_graph_code_with_their_trained_weights():
    """training.reexport rebuilds the torch models from the shipped files: the current feature code with those
    weights must give the shipped graphs' outputs, on drives with every anomaly type (NaN gaps, spikes...)."""
    from training.reexport import rebuild

    fuel, anomaly = rebuild(ROOT / "models")
    with ModelSet(load_manifest(ROOT / "models" / "manifest.json")) as models:
        trip = eval_trips(3, 1, 1200.0, per_trip=6)[0]
        windows = context_windows(trip.samples)[::40]
        with torch.no_grad():
            scores = anomaly(torch.from_numpy(windows.astype(np.float32)))[0].numpy()
            lph = fuel(torch.from_numpy(windows[:, -WINDOW_S:].astype(np.float32)))[:, 0].numpy()
        shipped = np.array([models.anomaly(w).score for w in windows])
        shipped_lph = np.array([models.fuel(w[-WINDOW_S:]) for w in windows])
    assert len(windows) >= 25 and np.isnan(windows).any()
    np.testing.assert_allclose(scores, shipped, atol=1e-3)
    np.testing.assert_allclose(lph, shipped_lph, atol=1e-3)


def test_reexport_refuses_graphs_it_cannot_read_back(tmp_path):
    import onnx
    from onnx import numpy_helper

    from training.reexport import ReexportError, rebuild

    models = tmp_path / "models"
    models.mkdir()
    for name in ("fuel", "anomaly"):
        (models / f"{name}.onnx").write_bytes((ROOT / "models" / "fuel.onnx").read_bytes())
    with pytest.raises(ReexportError, match="anomaly.onnx: no initializer for the fitted 'centre'"):
        rebuild(models)
    # A constant of the code (the excursion floors) that is not what this tree builds: retrain, not re-export.
    graph = onnx.load(str(ROOT / "models" / "anomaly.onnx"))
    floor = next(i for i in graph.graph.initializer if i.name == "model.features.excursion_floor")
    floor.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(floor) * 2, floor.name))
    onnx.save(graph, str(models / "anomaly.onnx"))
    with pytest.raises(ReexportError, match="features.excursion_floor differs from what this tree's code builds"):
        rebuild(models)
