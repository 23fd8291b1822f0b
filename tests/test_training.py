"""Training: the quick CLI run writes three loadable models and a valid manifest; training is deterministic."""
from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from harness.features import CONTEXT_S, WINDOW_S  # noqa: E402
from harness.models import MODEL_NAMES, ModelSet, load_manifest  # noqa: E402
from training.common import make_deterministic  # noqa: E402
from training.data import make_windows  # noqa: E402
from training.evaluate import eval_trips  # noqa: E402
from training.fuel import train_fuel  # noqa: E402

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
