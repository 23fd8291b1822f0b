"""The learned networks, each reading a raw window through `training.channels.Channels` so that everything the
device must do to a raw window is inside the exported graph.

- `FuelTCN`: dilated causal Conv1d stack on the `FUEL_CHANNELS`, a per-second fuel rate head, averaged over the
  window.
- `CrossPredictor`: per-second rpm and throttle predicted from the other signals (an input of the anomaly
  features, `training.anomaly_features`).
- `FeatureAE`: a small MLP autoencoder over standardised anomaly features (`training.anomaly_model`).
- `LstmAE`: the reference family (LSTM autoencoder over `Channels`), kept for the side-by-side comparison.

The physics-consistency features and the anomaly scoring are not here (`training.anomaly_features`,
`training.anomaly_model`).
"""
from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from training.channels import Channels, take

#: What the fuel model looks at (position, altitude, coolant and tank level carry no fuel information here that
#: speed, accelerometer, rpm and pedals do not, and they are where GPS jumps and spikes live).
FUEL_CHANNELS: tuple[str, ...] = ("speed_ms", "rpm_k", "throttle_pct", "brake_bar", "accel_x_ms2", "speed_step_ms",
                                  "missing_vehicle_speed", "missing_engine_rpm", "missing_throttle_position",
                                  "missing_brake_pressure", "missing_acceleration_x")


class CausalConv(nn.Module):
    def __init__(self, c_in: int, c_out: int, kernel: int, dilation: int):
        super().__init__()
        self.pad = (kernel - 1) * dilation
        self.conv = nn.Conv1d(c_in, c_out, kernel, dilation=dilation)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(F.pad(x, (self.pad, 0)))


class FuelTCN(nn.Module):
    """Dilated causal TCN → per-second fuel rate → mean over the window (L/h)."""

    def __init__(self, channels: Channels, width: int = 32, dilations: tuple[int, ...] = (1, 2, 4, 8),
                 kernel: int = 3, scale_lph: float = 10.0):
        super().__init__()
        self.channels = channels
        self.inp = nn.Conv1d(len(channels.names), width, 1)
        self.blocks = nn.ModuleList([CausalConv(width, width, kernel, d) for d in dilations])
        self.head = nn.Conv1d(width, 1, 1)
        self.scale = scale_lph

    def per_second(self, x: torch.Tensor) -> torch.Tensor:
        h = F.relu(self.inp(self.channels(x)))
        for block in self.blocks:
            h = h + F.relu(block(h))
        return self.head(h)[:, 0, :] * self.scale  # [B, T]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.per_second(x).mean(dim=1, keepdim=True)  # [B, 1]


#: Inputs of the cross-signal predictor; each head is blind to the signal it predicts.
CROSS_CHANNELS: tuple[str, ...] = ("speed_ms", "accel_x_ms2", "speed_step_ms", "brake_bar", "rpm_k", "throttle_pct")
_RPM_INPUTS = [0, 1, 2, 5]  # speed, accelerometer, speed step, throttle
_THR_INPUTS = [0, 1, 2, 3, 4]  # speed, accelerometer, speed step, brake, rpm
CROSS_RPM, CROSS_THR = CROSS_CHANNELS.index("rpm_k"), CROSS_CHANNELS.index("throttle_pct")


class CrossPredictor(nn.Module):
    """Per-second rpm and throttle predicted from the other signals (learned on normal driving).

    Drift or a stuck pedal sensor, or an engine held at high rpm, leave a residual that the plain statistics of
    each signal cannot show. Returns standardised (predicted, actual) for rpm and throttle, [B, T] each.
    """

    def __init__(self, channels: Channels, width: int = 16):
        super().__init__()
        self.channels = channels

        def net(n_in: int) -> nn.Sequential:
            return nn.Sequential(nn.Conv1d(n_in, width, 5, padding=2), nn.ReLU(), nn.Conv1d(width, width, 1),
                                 nn.ReLU(), nn.Conv1d(width, 1, 1))
        self.rpm_net, self.thr_net = net(len(_RPM_INPUTS)), net(len(_THR_INPUTS))

    def residuals(self, x: torch.Tensor) -> torch.Tensor:
        """actual - predicted, standardised [B, 2, T] (rpm, throttle)."""
        c = self.channels(x)
        pred = torch.cat([self.rpm_net(take(c, _RPM_INPUTS)), self.thr_net(take(c, _THR_INPUTS))], dim=1)
        return take(c, [CROSS_RPM, CROSS_THR]) - pred

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        c = self.channels(x)
        rpm_pred = self.rpm_net(c[:, _RPM_INPUTS])[:, 0]
        thr_pred = self.thr_net(c[:, _THR_INPUTS])[:, 0]
        return rpm_pred, c[:, CROSS_RPM], thr_pred, c[:, CROSS_THR]


class FeatureAE(nn.Module):
    def __init__(self, n: int, hidden: int = 32, latent: int = 8):
        super().__init__()
        self.enc = nn.Sequential(nn.Linear(n, hidden), nn.ReLU(), nn.Linear(hidden, latent), nn.ReLU())
        self.dec = nn.Sequential(nn.Linear(latent, hidden), nn.ReLU(), nn.Linear(hidden, n))

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.dec(self.enc(z))


class LstmAE(nn.Module):
    """The reference family: LSTM encoder → latent → LSTM decoder reconstructing the standardised channels."""

    def __init__(self, channels: Channels, hidden: int = 32, latent: int = 16):
        super().__init__()
        self.channels = channels
        c = len(channels.names)
        self.enc = nn.LSTM(c, hidden, batch_first=True)
        self.to_latent = nn.Linear(hidden, latent)
        self.dec = nn.LSTM(latent, hidden, batch_first=True)
        self.out = nn.Linear(hidden, c)

    def reconstruct(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        seq = self.channels(x).transpose(1, 2)  # [B, T, C]
        _, (h, _) = self.enc(seq)
        latent = self.to_latent(h[-1])
        rep = latent.unsqueeze(1).expand(-1, seq.shape[1], -1)
        y, _ = self.dec(rep)
        return seq, self.out(y)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        seq, rec = self.reconstruct(x)
        return ((seq - rec) ** 2).mean(dim=(1, 2))
