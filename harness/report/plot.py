"""Plots of a drive: the ten signals against scenario time with each anomaly's window shaded.

Renders off-screen (matplotlib's Agg backend) to PNG; no display is needed.
"""
from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.ticker import AutoLocator, MaxNLocator  # noqa: E402

from harness.wire.events import AnomalyResult, BehaviourResult, FuelResult, RuleEvent  # noqa: E402
from harness.wire.signals import SIGNALS, UNITS, Trace  # noqa: E402
from harness.world.anomalies import ANOMALY_TYPES  # noqa: E402

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
    for ax, (name, reading, truth) in zip(axes, channels, strict=False):
        ax.plot(minutes, reading, lw=0.8, color="#1f4e79", label="reading")
        if truth is not None and not np.allclose(np.nan_to_num(reading), np.nan_to_num(truth), atol=0.5, rtol=0.02):
            ax.plot(minutes, truth, lw=0.8, ls="--", color="#888888", label="truth")
            ax.legend(loc="upper right", fontsize=7)
        label = "fuel_rate (truth)" if name == "fuel_rate" else name
        ax.set_ylabel(f"{label}\n[{UNITS[name]}]", fontsize=8)
        ax.tick_params(labelsize=7)
        ax.grid(alpha=0.3)
        _shade(ax, trace)
    seen: dict[str, object] = {}
    for event in trace.events:
        name = event.type if event.signal is None else f"{event.type} ({event.signal})"
        seen.setdefault(name, plt.Rectangle((0, 0), 1, 1, color=anomaly_colour(event.type), alpha=0.4))
    if seen:
        fig.legend(list(seen.values()), list(seen), loc="upper right", fontsize=8, ncol=min(4, len(seen)))
    return _save(fig, axes, title, out)


def _save(fig, axes, title: str, out: Path) -> Path:
    axes[-1].set_xlabel("scenario time [min]")
    fig.suptitle(title, x=0.01, ha="left", fontsize=11)
    # Fixed margins in inches, not tight_layout: it measures every tick label of every axis, half the plot's cost.
    height_in = fig.get_figheight()
    fig.subplots_adjust(left=0.075, right=0.99, bottom=0.5 / height_in, top=1.0 - 0.55 / height_in, hspace=0.12)
    # Four value ticks an axis are enough on panels 2 inches high, and each tick is a few artists to build and
    # draw; a light PNG compression (the files are a fifth larger) costs a tenth of the default's time.
    for ax in axes:
        if type(ax.yaxis.get_major_locator()) is AutoLocator:  # not the score's symlog, not the style's labels
            ax.yaxis.set_major_locator(MaxNLocator(4))
    fig.savefig(out, dpi=80, pil_kwargs={"compress_level": 1})
    plt.close(fig)
    return out


RUN_SIGNALS = ("vehicle_speed", "engine_rpm", "coolant_temp", "fuel_level", "acceleration_x")


def _shade(ax, trace: Trace) -> None:
    for event in trace.events:
        ax.axvspan(event.start_s / 60.0, event.end_s / 60.0, color=anomaly_colour(event.type), alpha=0.25)


def render_run(trace: Trace, events: list, out: Path, title: str, fuel_truth=None) -> Path:
    """A run at a glance: key signals, anomaly score vs threshold with alarms and rule events, fuel vs truth."""
    out.parent.mkdir(parents=True, exist_ok=True)
    fig, axes = plt.subplots(len(RUN_SIGNALS) + 3, 1, figsize=(13, 2.0 * (len(RUN_SIGNALS) + 3)), sharex=True)
    minutes = trace.t_s / 60.0
    for ax, name in zip(axes, RUN_SIGNALS, strict=False):
        ax.plot(minutes, trace.signals[name], lw=0.8, color="#1f4e79")
        ax.set_ylabel(f"{name}\n[{UNITS[name]}]", fontsize=8)
        _shade(ax, trace)
    anomalies = [e for e in events if isinstance(e, AnomalyResult)]
    ax = axes[len(RUN_SIGNALS)]
    if anomalies:
        t = np.array([e.t_s for e in anomalies]) / 60.0
        score = np.array([e.score for e in anomalies])
        ax.plot(t, score, lw=0.8, color="#333333", label="anomaly score")
        ax.plot(t, [e.threshold for e in anomalies], lw=1.0, ls="--", color="#c00000", label="threshold")
        alarms = np.array([e.alarm for e in anomalies])
        ax.plot(t[alarms], score[alarms], "o", ms=2.5, color="#c00000", label="alarm")
        ax.set_yscale("symlog", linthresh=max(float(anomalies[0].threshold), 1e-3))
    rules = [e for e in events if isinstance(e, RuleEvent)]
    for e in rules:
        ax.axvline(e.t_s / 60.0, color=anomaly_colour(e.type) if e.type in ANOMALY_TYPES else "#888888", lw=1.0)
    ax.set_ylabel("anomaly score\n(rule events: lines)", fontsize=8)
    ax.legend(loc="upper right", fontsize=7)
    _shade(ax, trace)
    ax = axes[len(RUN_SIGNALS) + 1]
    fuel = [e for e in events if isinstance(e, FuelResult)]
    if fuel:
        t = np.array([e.t_s for e in fuel])
        ax.plot(t / 60.0, [e.fuel_rate_lph for e in fuel], lw=0.8, color="#1f4e79", label="predicted (60 s mean)")
        if fuel_truth is not None:
            ax.plot(t / 60.0, [fuel_truth(x) for x in t], lw=0.8, ls="--", color="#888888", label="truth")
        ax.legend(loc="upper right", fontsize=7)
    ax.set_ylabel("fuel rate\n[L/h]", fontsize=8)
    ax = axes[len(RUN_SIGNALS) + 2]
    behaviour = [e for e in events if isinstance(e, BehaviourResult)]
    if behaviour:
        ax.plot([e.t_s / 60.0 for e in behaviour], [e.label for e in behaviour], ".", ms=2, color="#1f4e79",
                label="predicted")
    if trace.style is not None:
        ax.plot(minutes, trace.style, lw=0.8, color="#888888", label="driver")
    ax.set_yticks([0, 1, 2], ["normal", "eco", "aggressive"], fontsize=7)
    ax.legend(loc="upper right", fontsize=7)
    ax.set_ylabel("driving style", fontsize=8)
    for ax in axes:
        ax.tick_params(labelsize=7)
        ax.grid(alpha=0.3)
    return _save(fig, axes, title, out)
