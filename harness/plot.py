"""Plots of a drive: the ten signals against scenario time with each anomaly's window shaded.

Renders off-screen (matplotlib's Agg backend) to PNG; no display is needed.
"""
from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from harness.anomalies import ANOMALY_TYPES  # noqa: E402
from harness.signals import SIGNALS, UNITS, Trace  # noqa: E402

_COLOURS = plt.get_cmap("tab20").colors


def anomaly_colour(anomaly_type: str) -> tuple[float, float, float]:
    return _COLOURS[ANOMALY_TYPES.index(anomaly_type) % len(_COLOURS)]


def render_trace(trace: Trace, out: Path, title: str) -> Path:
    """Write a PNG of the ten signals (readings, with truth dashed where a fault makes them differ)."""
    out.parent.mkdir(parents=True, exist_ok=True)
    minutes = trace.t_s / 60.0
    fig, axes = plt.subplots(len(SIGNALS) + 1, 1, figsize=(13, 2.0 * (len(SIGNALS) + 1)), sharex=True)
    channels = [(name, trace.signals[name], trace.truth[name]) for name in SIGNALS]
    channels.append(("fuel_rate", trace.aux["fuel_rate"], None))
    for ax, (name, reading, truth) in zip(axes, channels):
        ax.plot(minutes, reading, lw=0.8, color="#1f4e79", label="reading")
        if truth is not None and not np.allclose(np.nan_to_num(reading), np.nan_to_num(truth), atol=0.5, rtol=0.02):
            ax.plot(minutes, truth, lw=0.8, ls="--", color="#888888", label="truth")
            ax.legend(loc="upper right", fontsize=7)
        label = "fuel_rate (truth)" if name == "fuel_rate" else name
        ax.set_ylabel(f"{label}\n[{UNITS[name]}]", fontsize=8)
        ax.tick_params(labelsize=7)
        ax.grid(alpha=0.3)
        for event in trace.events:
            ax.axvspan(event.start_s / 60.0, event.end_s / 60.0, color=anomaly_colour(event.type), alpha=0.25)
    seen: dict[str, object] = {}
    for event in trace.events:
        name = event.type if event.signal is None else f"{event.type} ({event.signal})"
        seen.setdefault(name, plt.Rectangle((0, 0), 1, 1, color=anomaly_colour(event.type), alpha=0.4))
    if seen:
        fig.legend(list(seen.values()), list(seen), loc="upper right", fontsize=8, ncol=min(4, len(seen)))
    axes[-1].set_xlabel("scenario time [min]")
    fig.suptitle(title, x=0.01, ha="left", fontsize=11)
    fig.tight_layout(rect=(0, 0, 1, 0.97))
    fig.savefig(out, dpi=80)
    plt.close(fig)
    return out
