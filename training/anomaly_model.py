"""`AnomalyModel`: the exported anomaly model, raw context → (score, per-signal scores), from the physics
features (`training.anomaly_features`), their standardisation and an optional autoencoder (`training.nets.FeatureAE`).

It does not choose the threshold (`training.evaluate.calibrate_threshold`) nor fit the centre and spreads
(`training.anomaly.train_anomaly`).
"""
from __future__ import annotations

import numpy as np
import torch
from torch import nn

from training.anomaly_features import AnomalyFeatures
from training.feature_catalogue import FEATURE_SIDES, NORMAL_SIDE_CLIP, signal_matrix
from training.nets import FeatureAE


class AnomalyModel(nn.Module):
    """Raw window → (score [B], signal_scores [B, 10]).

    z = (features - centre) / scale; the residual z - AE(clip(z)) (or z itself without an AE) is divided by its
    spread on normal training windows, separately above and below (`scale_hi`, `scale_lo`: a hot engine and a
    cold start are not equally normal); score = the largest scaled residual; a signal's score is the largest
    among the features that judge it. clip(z) is ±clip, and ±NORMAL_SIDE_CLIP on the side of a one-sided feature
    that is never anomalous (`FEATURE_SIDES`).
    """

    def __init__(self, features: AnomalyFeatures, centre: np.ndarray, scale: np.ndarray, ae: FeatureAE | None,
                 scale_hi: np.ndarray, scale_lo: np.ndarray, clip: float = 50.0):
        super().__init__()
        self.features = features
        self.ae = ae
        self.register_buffer("centre", torch.tensor(centre, dtype=torch.float32))
        self.register_buffer("scale", torch.tensor(scale, dtype=torch.float32))
        self.register_buffer("scale_hi", torch.tensor(scale_hi, dtype=torch.float32))
        self.register_buffer("scale_lo", torch.tensor(scale_lo, dtype=torch.float32))
        self.register_buffer("signals", torch.tensor(signal_matrix()))
        self.register_buffer("use_hi", torch.tensor((FEATURE_SIDES >= 0).astype(np.float32)))
        self.register_buffer("use_lo", torch.tensor((FEATURE_SIDES <= 0).astype(np.float32)))
        self.register_buffer("ae_lo", torch.tensor(np.where(FEATURE_SIDES > 0, -NORMAL_SIDE_CLIP, -clip),
                                                   dtype=torch.float32))
        self.register_buffer("ae_hi", torch.tensor(np.where(FEATURE_SIDES < 0, NORMAL_SIDE_CLIP, clip),
                                                   dtype=torch.float32))

    def _ae_input(self, z: torch.Tensor) -> torch.Tensor:
        return torch.minimum(torch.maximum(z, self.ae_lo), self.ae_hi)

    def standardise(self, feats: torch.Tensor) -> torch.Tensor:
        """(features - centre) / scale, clipped (see the class): the autoencoder's input."""
        return self._ae_input((feats - self.centre) / self.scale)

    def signed_residual(self, x: torch.Tensor) -> torch.Tensor:
        # Unclipped: many features are 0 in almost every normal window (tiny scale), and a clip before the
        # division by their normal spread would flatten a 35 degC/min coolant rise to a barely raised score.
        z = (self.features(x) - self.centre) / self.scale
        return z - self.ae(self._ae_input(z)) if self.ae is not None else z

    def residual(self, x: torch.Tensor) -> torch.Tensor:
        r = self.signed_residual(x)
        return torch.maximum(self.use_hi * r / self.scale_hi, -self.use_lo * r / self.scale_lo).clamp(min=0.0)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        r = self.residual(x)  # [B, F]
        per_signal = (r.unsqueeze(-1) * self.signals.unsqueeze(0)).max(dim=1).values  # [B, 10]
        return r.max(dim=1).values, per_signal
