"""The fuel model: a small dilated causal TCN, regressing the window's mean true fuel rate (L/h)."""
from __future__ import annotations

import numpy as np
import torch

from harness.wire.signals import SIGNALS
from harness.world.anomalies import DRIFT_SPAN
from training.channels import Channels
from training.common import Clock, Progress, fit, predict
from training.data import Windows
from training.evaluate import r2_score
from training.nets import FUEL_CHANNELS, FuelTCN


def channel_stats(channels: Channels, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    raw = predict(channels.raw_channels, x)  # [n, C, T]
    mean = raw.mean(axis=(0, 2))
    std = raw.std(axis=(0, 2))
    return mean, np.where(std > 1e-6, std, 1.0)


_SPAN = np.array([DRIFT_SPAN[s] for s in SIGNALS], dtype=np.float32)


def corrupt(x: np.ndarray, rng: np.random.Generator, share: float = 0.3) -> np.ndarray:
    """A copy of windows [n, T, 10] with one sensor fault (spikes, dropout, stuck, drift) in `share` of them.

    Teaches the fuel model to keep its estimate when one reading goes bad (the anomaly model flags it).
    """
    x = x.copy()
    n, t, _ = x.shape
    for i in np.flatnonzero(rng.random(n) < share):
        s = int(rng.integers(len(SIGNALS)))
        kind = int(rng.integers(4))
        if kind == 0:
            hit = rng.random(t) < rng.uniform(0.03, 0.15)
            x[i, hit, s] += rng.choice([-1.0, 1.0], hit.sum()) * _SPAN[s] * rng.uniform(0.5, 2.0)
        elif kind == 1:
            x[i, rng.random(t) < rng.uniform(0.1, 1.0), s] = np.nan
        elif kind == 2:
            t0 = int(rng.integers(t))
            x[i, t0:, s] = x[i, t0, s]
        else:
            t0 = int(rng.integers(t))
            x[i, t0:, s] += np.linspace(0.0, 1.0, t - t0) * rng.choice([-1.0, 1.0]) * _SPAN[s] * rng.uniform(0.2, 1.0)
    return x


def train_fuel(train: Windows, val: Windows, fallback: np.ndarray, seed: int, epochs: int, width: int,
               progress: Progress, batch_size: int = 128, lr: float = 3e-3) -> FuelTCN:
    clock = Clock()
    channels = Channels(fallback, FUEL_CHANNELS)
    mean, std = channel_stats(channels, train.x)
    channels = Channels(fallback, FUEL_CHANNELS, mean, std)
    model = FuelTCN(channels, width=width)
    rng = np.random.default_rng([seed, 0xF0E1])
    seq_all = torch.from_numpy(train.fuel_seq)

    def loss_of(idx: np.ndarray) -> torch.Tensor:
        xb, yb = torch.from_numpy(corrupt(train.x[idx], rng)), seq_all[idx]
        per_s = model.per_second(xb)
        # The window mean is the target; the per-second truth teaches the network where the fuel goes.
        return ((per_s.mean(1) - yb.mean(1)) ** 2).mean() + 0.3 * ((per_s - yb) ** 2).mean()

    def val_r2() -> float:
        return r2_score(val.fuel_lph, predict(model, val.x)[:, 0])

    return fit(model, loss_of, len(train.x), rng, epochs, batch_size, lr, progress,
               "fuel     epoch {epoch:3d}/{epochs}  loss {loss:8.4f}  val R2 {val:.4f}", clock,
               validate=val_r2, higher_is_better=True)
