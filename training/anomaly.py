"""The anomaly model candidates: physics features (with or without an MLP autoencoder), and the reference
family LSTM autoencoder (the z-score baseline is in `training.evaluate`, which the tests use without torch).

All three learn from normal training windows only. The threshold is placed afterwards, on the normal driving of
the validation trips (`training.evaluate.calibrate_threshold`), never on test data.
"""
from __future__ import annotations

import numpy as np
import torch
from torch.nn.functional import smooth_l1_loss

from training.anomaly_features import AnomalyFeatures
from training.anomaly_model import AnomalyModel
from training.channels import CHANNELS, Channels
from training.common import Clock, Progress, fit, predict
from training.data import Windows
from training.feature_catalogue import FEATURE_SCALE_FLOOR, FEATURES
from training.fuel import channel_stats
from training.nets import CROSS_CHANNELS, CrossPredictor, FeatureAE, FuelTCN, LstmAE

#: Residuals are expressed in multiples of this quantile of their spread on normal training windows.
RESIDUAL_QUANTILE = 0.999


def robust_scale(feats: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Median and a spread that is never 0 (MAD, floored by a quarter of the std and by each feature's
    `FEATURE_SCALE_FLOOR`)."""
    centre = np.median(feats, axis=0)
    mad = 1.4826 * np.median(np.abs(feats - centre), axis=0)
    return centre, np.maximum(np.maximum(mad, 0.25 * feats.std(axis=0)), FEATURE_SCALE_FLOOR)


def train_cross(train: Windows, fallback: np.ndarray, seed: int, epochs: int, progress: Progress,
                batch_size: int = 256, lr: float = 3e-3) -> CrossPredictor:
    """The rpm and throttle predictors, on normal training windows."""
    clock = Clock()
    channels = Channels(fallback, CROSS_CHANNELS)
    mean, std = channel_stats(channels, train.x)
    model = CrossPredictor(Channels(fallback, CROSS_CHANNELS, mean, std))
    rng = np.random.default_rng([seed, 0xC055])

    def loss_of(idx: np.ndarray) -> torch.Tensor:
        rpm_pred, rpm, thr_pred, thr = model(torch.from_numpy(train.x[idx]))
        return smooth_l1_loss(rpm_pred, rpm) + smooth_l1_loss(thr_pred, thr)

    return fit(model, loss_of, len(train.x), rng, epochs, batch_size, lr, progress,
               "anomaly  cross-signal predictor epoch {epoch}/{epochs}  loss {loss:.4f}", clock, one_cycle=False)


def train_anomaly(train: Windows, val_normal: Windows, fuel: FuelTCN, cross: CrossPredictor, fallback: np.ndarray,
                  fuel_proxy: np.ndarray, seed: int, epochs: int, use_ae: bool, progress: Progress,
                  batch_size: int = 256, lr: float = 2e-3) -> AnomalyModel:
    """`train` and `val_normal` hold the model's context inputs (`make_windows(..., context_s=CONTEXT_S)`);
    `fuel_proxy` is the consumption proxy's coefficients (`training.fuel_proxy.fit_fuel_proxy`)."""
    clock = Clock()
    extractor = AnomalyFeatures(fuel, fallback, cross).eval()
    extractor.fuel_proxy.copy_(torch.from_numpy(fuel_proxy).view(-1, 1))
    feats = predict(extractor, train.x)
    progress(f"anomaly  {len(FEATURES)} features of {len(feats)} normal training windows  {clock}")
    centre, scale = robust_scale(feats)
    ones = np.ones(len(FEATURES))
    bare = AnomalyModel(extractor, centre, scale, None, ones, ones)
    z = predict(bare.standardise, feats)
    ae = None
    if use_ae:
        ae = FeatureAE(len(FEATURES))
        rng = np.random.default_rng([seed, 0xAE])
        zt = torch.from_numpy(z.astype(np.float32))
        zv = torch.from_numpy(predict(bare.standardise, predict(extractor, val_normal.x)).astype(np.float32))

        def loss_of(idx: np.ndarray) -> torch.Tensor:
            # Huber: a few heavy-tailed normal windows must not decide what "normal" reconstructs to.
            return smooth_l1_loss(ae(zt[idx]), zt[idx])

        @torch.no_grad()
        def val_loss() -> float:
            return float(smooth_l1_loss(ae(zv), zv))

        ae = fit(ae, loss_of, len(z), rng, epochs, batch_size, lr, progress,
                 "anomaly  epoch {epoch:3d}/{epochs}  loss {loss:8.4f}  val {val:.4f}", clock, validate=val_loss)
    # The residuals of AnomalyModel.signed_residual, from the features already computed.
    z_raw = (feats - centre) / scale
    resid = z_raw - predict(ae, z.astype(np.float32)) if ae is not None else z_raw
    scale_hi = np.maximum(np.quantile(np.maximum(resid, 0.0), RESIDUAL_QUANTILE, axis=0), 0.5)
    scale_lo = np.maximum(np.quantile(np.maximum(-resid, 0.0), RESIDUAL_QUANTILE, axis=0), 0.5)
    return AnomalyModel(extractor, centre, scale, ae, scale_hi, scale_lo).eval()


def train_lstm_ae(train: Windows, val_normal: Windows, fallback: np.ndarray, seed: int, epochs: int,
                  progress: Progress, batch_size: int = 128, lr: float = 3e-3, hidden: int = 32) -> LstmAE:
    """The reference family, on the same preprocessed channels (NaN handling, GPS steps) as a fair comparison."""
    clock = Clock()
    channels = Channels(fallback, CHANNELS)
    mean, std = channel_stats(channels, train.x)
    model = LstmAE(Channels(fallback, CHANNELS, mean, std), hidden=hidden)
    rng = np.random.default_rng([seed, 0x157])
    return fit(model, lambda idx: model(torch.from_numpy(train.x[idx])).mean(), len(train.x), rng, epochs,
               batch_size, lr, progress, "lstm-ae  epoch {epoch:3d}/{epochs}  loss {loss:8.4f}  val {val:.4f}", clock,
               validate=lambda: float(predict(model, val_normal.x).mean()))
