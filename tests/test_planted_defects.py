"""Planted defects: each a small subclass of a part of the simulated unit (the STM32 firmware, its UART line, the
app's windowing, its use of each model, each output's timing and content), run through the contract suite's run
(`harness.run.contract.run_for_contract`: the scenario's own judgement and every contract check). The harness must
report every one as FAIL or ERROR and name its cause; the correct unit must pass everything.

None of these are the app simulator's built-in broken variants (`AppOptions.variant`, tests/test_contract.py): they
are written here the way a user would break a copy of the unit, by subclassing it, and installed where the run
builds its parts (`harness.run.chain.AppSim`, `Stm32Sim`, `TeeSink`). The drive is four minutes of urban
driving in two styles (tests/planted/short_drive.yaml), about 1.5 s of wall time a run on the simulated rig.
"""
from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pytest

import harness.run.chain as chain
from firmware_sim.phone.app import AppSim, WindowBuffer
from firmware_sim.stm32 import Stm32Sim
from firmware_sim.uart_sinks import TeeSink
from harness.inference.models import ModelSet
from harness.judge.contract import ERROR, FAIL, evaluate
from harness.rig.rigfile import BUILTIN_SIM_RIG
from harness.run.contract import run_for_contract
from harness.wire.events import AnomalyResult, BehaviourResult, FeatureDebug, FuelResult, ModelRef, RuleEvent
from harness.world.scenario import load_scenario

pytestmark = pytest.mark.sim

DRIVE = Path(__file__).parent / "planted" / "short_drive.yaml"
RESULTS = (FuelResult, AnomalyResult, BehaviourResult)



# --- the planted defects: small subclasses of the simulated unit's parts ------------------------------------------

class _Models:
    """The app's view of its models with one call replaced (the others delegate to the real `ModelSet`)."""

    def __init__(self, real: ModelSet, **replaced: Callable) -> None:
        self._real, self._replaced = real, replaced

    def __getattr__(self, name: str):
        if name in self._replaced:
            return self._replaced[name]
        return getattr(self._real, name)


def app_with_models(**make: Callable[[ModelSet], object]) -> type[AppSim]:
    """An app whose model calls `make` replaces: each value builds the replacement from the real `ModelSet`."""

    class App(AppSim):
        def __init__(self, port, models, **kwargs):
            super().__init__(port, _Models(models, **{name: build(models) for name, build in make.items()}),
                             **kwargs)

    return App


def app_rewriting(rewrite: Callable[[AppSim, object], object | None]) -> type[AppSim]:
    """An app whose every output line passes through `rewrite(app, event)` (None: the line is not written)."""

    class App(AppSim):
        def _write(self, event) -> None:
            event = rewrite(self, event)
            if event is not None:
                super()._write(event)

    return App


class ShiftedWindowApp(AppSim):
    """Windowing: the buffer hands out its context one sample behind (the window's rows shifted by one inside
    the buffer: the last row is the previous second's)."""

    class _Buffer(WindowBuffer):
        def add(self, t_s, row):
            context = super().add(t_s, row)
            if context is None:
                return None
            shifted = np.full_like(context, np.nan)
            shifted[1:] = context[:-1]
            return shifted

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._windows = self._Buffer(self._windows.window_s, self._windows.stride_s, self._windows.context_s)


class DroppingSamplesApp(AppSim):
    """Sample assembly: every 23rd sample is lost inside the app (never counted, never windowed)."""

    def _on_sample(self, t_s, row):
        self._seen = getattr(self, "_seen", 0) + 1
        if self._seen % 23:
            super()._on_sample(t_s, row)


class SkippingWindowsApp(AppSim):
    """Scoring: only every third window is scored and logged (a throttled inference loop)."""

    def _score(self, t_s, context):
        if int(round(t_s)) % 3 == 0:
            super()._score(t_s, context)


class HeldBackApp(AppSim):
    """Output timing: results are logged three samples after their window (correct `t`, delivered late)."""

    def _score(self, t_s, context):
        pending = getattr(self, "_pending", [])
        self._pending = pending
        pending.append((t_s, context))
        if len(pending) > 3:
            super()._score(*pending.pop(0))


def _late_stamp(app, event):
    """Output content: every result claims the window that ended 3 s earlier."""
    return replace(event, t_s=event.t_s - 3.0) if isinstance(event, (*RESULTS, FeatureDebug)) else event


def _early_rule_events(app, event):
    """Rule events stamped 4 s before the sample that fired them (the results stay right)."""
    return replace(event, t_s=event.t_s - 4.0) if isinstance(event, RuleEvent) else event


def _silent_after_2_min(app, event):
    """The app stops logging anything after two minutes of samples (it keeps running)."""
    return None if event.t_s is not None and event.t_s > 120 else event


def _stale_fuel_hash(app, event):
    """The fuel result names another model file's hash (a stale model shipped in the APK)."""
    return replace(event, model=ModelRef("fuel", "0123456789abcdef", event.model.version)) \
        if isinstance(event, FuelResult) else event


def _second_best_label(app, event):
    """The behaviour label is read as the second most probable class."""
    if not isinstance(event, BehaviourResult):
        return event
    label = int(np.argsort(event.probabilities)[-2])
    return replace(event, label=label, class_name=("normal", "eco", "aggressive")[label])


def _features_rounded(app, event):
    """The features line is logged rounded to whole units."""
    return replace(event, features=tuple(float(round(f)) for f in event.features)) \
        if isinstance(event, FeatureDebug) else event


def _wrong_threshold(models):
    """The anomaly model applied with 0.8 x the manifest's threshold (and its alarm from that)."""
    return models.threshold * 0.8


def _anomaly_on_own_threshold(models):
    threshold = models.threshold * 0.8

    def anomaly(context):
        result = models.anomaly(context)
        return dataclasses.replace(result, alarm=result.score > threshold)

    return anomaly


class SwappedRpmFirmware(Stm32Sim):
    """Forwarding: the firmware swaps the two data bytes of the rpm answer (PID 0x0C) it forwards."""

    def _forward(self, frame):
        data = frame.data
        if frame.can_id == 0x7E8 and len(data) >= 5 and data[1] == 0x41 and data[2] == 0x0C:
            frame = replace(frame, data=data[:3] + bytes((data[4], data[3])) + data[5:])
        super()._forward(frame)


class DroppingFramesFirmware(Stm32Sim):
    """Forwarding: the firmware silently drops every 40th CAN frame (neither forwarded nor counted)."""

    def _forward(self, frame):
        self._n = getattr(self, "_n", 0) + 1
        if self._n % 40:
            super()._forward(frame)


class SpeedInMsFirmware(Stm32Sim):
    """Sampling: the firmware's sample records carry the speed in m/s (the contract says km/h)."""

    def _sample(self, t_s):
        record = super()._sample(t_s)
        values = list(record.values)
        if values[0] is not None:
            values[0] = values[0] / 3.6
        return replace(record, values=tuple(values))


class SwappedCrcFirmware(Stm32Sim):
    """Link: raw-can-v1 frames with their CRC sent low byte first."""

    def _flush(self):
        out = self._out
        for pos in range(0, len(out) - 14, 15):
            out[pos + 12], out[pos + 13] = out[pos + 13], out[pos + 12]
        super()._flush()


class BitFlipFirmware(Stm32Sim):
    """Link: a noisy UART line, one bit flipped in every 300th byte the firmware writes (the app and the tap
    both see it)."""

    def _flush(self):
        out = self._out
        self._written = getattr(self, "_written", 0)
        for pos in range(len(out)):
            if (self._written + pos) % 300 == 150:
                out[pos] ^= 0x10
        self._written += len(out)
        super()._flush()


class NoisyTapSink(TeeSink):
    """The harness's own UART tap is noisy: one bit flipped in every 300th byte reaching the tap; the app's
    line is clean (the unit is correct)."""

    def __init__(self, primary, *observers, names=None):
        super().__init__(primary, *[_Noisy(o) for o in observers], names=names)


class _Noisy:
    def __init__(self, sink) -> None:
        self._sink, self._n = sink, 0

    def write(self, data):
        data = bytearray(data)
        for pos in range(len(data)):
            if (self._n + pos) % 300 == 150:
                data[pos] ^= 0x10
        self._n += len(data)
        return self._sink.write(bytes(data))

    def __getattr__(self, name):
        return getattr(self._sink, name)


@dataclass(frozen=True)
class Defect:
    """One planted defect: what it replaces, and what the harness must report."""

    name: str
    parts: dict  # attribute of harness.run.chain -> its replacement
    causes: tuple[str, ...]  # (check:cause) the contract must report (FAIL, or ERROR for the harness's own fault)
    words: tuple[str, ...] = ()  # in the failing verdict's message
    codec: str = "dtg-link-v2"
    run_fails: tuple[str, ...] = ()  # criteria of the run's own judgement that must fail (or "error": no verdict)


DEFECTS = [
    Defect("window shifted one sample in the buffer", {"AppSim": ShiftedWindowApp},
           ("model-parity:time-shift",), ("time shift of -1 s",)),
    Defect("app drops every 23rd sample", {"AppSim": DroppingSamplesApp},
           ("link:lost-samples",), ("the app lost 13 samples",), run_fails=("error",)),
    Defect("app scores every third window", {"AppSim": SkippingWindowsApp},
           ("reporting:coverage",), ("fuel 0.33",), run_fails=("coverage",)),
    Defect("results held back 3 samples", {"AppSim": HeldBackApp},
           ("reporting:late-results",), ("3.00 s after the sample time",), run_fails=("result_late_s",)),
    Defect("results stamped with the window 3 s earlier", {"AppSim": app_rewriting(_late_stamp)},
           ("model-parity:time-shift", "reporting:late-results"), ("time shift of +3 s",),
           run_fails=("result_late_s",)),
    Defect("rule events stamped 4 s early", {"AppSim": app_rewriting(_early_rule_events)},
           ("reporting:late-results",), ("event 4.00 s after",), run_fails=("result_late_s",)),
    Defect("app stops logging after 2 minutes", {"AppSim": app_rewriting(_silent_after_2_min)},
           ("reporting:silence",), ("no EdgeAI lines since t=120 s", "the device stopped logging")),
    Defect("fuel output scaled by 1.25", {"AppSim": app_with_models(fuel=lambda m: lambda w: m.fuel(w) * 1.25)},
           ("model-parity:scale-factor",), ("scaled by 1.25",)),
    Defect("anomaly threshold 0.8 x the manifest's",
           {"AppSim": app_with_models(threshold=_wrong_threshold, anomaly=_anomaly_on_own_threshold)},
           ("model-parity:threshold",), ("wrong or stale threshold",), run_fails=("models_as_installed",)),
    Defect("anomaly model fed speed in m/s",
           {"AppSim": app_with_models(anomaly=lambda m: lambda c: m.anomaly(
               np.concatenate([c[:, :1] / 3.6, c[:, 1:]], axis=1)))},
           ("model-parity:units",), ("vehicle_speed in m/s",)),
    Defect("fuel model fed rpm and throttle swapped",
           {"AppSim": app_with_models(fuel=lambda m: lambda w: m.fuel(w[:, [0, 2, 1, 3, 4, 5, 6, 7, 8, 9]]))},
           ("model-parity:feature-order",), ("engine_rpm where the model reads throttle_position",)),
    Defect("behaviour model fed two features swapped",
           {"AppSim": app_with_models(behaviour=lambda m: lambda f: m.behaviour(np.asarray(f)[[1, 0] + list(
               range(2, 18))]))},
           ("model-parity:feature-order",), ("speed_mean_kmh and speed_std_kmh",)),
    Defect("fuel result names a stale model file", {"AppSim": app_rewriting(_stale_fuel_hash)},
           ("model-parity:stale-model",), ("stale or different model file",), run_fails=("models_as_installed",)),
    Defect("behaviour label is the second best class", {"AppSim": app_rewriting(_second_best_label)},
           ("readability:label-misread",), ("misread",), run_fails=("behaviour_accuracy",)),
    Defect("features logged rounded", {"AppSim": app_rewriting(_features_rounded)},
           ("feature-parity:features",), ("differ from the harness's extractor",)),
    Defect("firmware swaps the rpm answer's bytes", {"Stm32Sim": SwappedRpmFirmware},
           ("link:firmware-forwarding",), ("data bytes 3 and 4 swapped",), run_fails=("uart_tap_vs_can_log",)),
    Defect("firmware drops every 40th frame", {"Stm32Sim": DroppingFramesFirmware},
           ("link:firmware-forwarding",), ("CAN frames sent never reached the UART",),
           run_fails=("uart_tap_vs_can_log",)),
    Defect("firmware samples speed in m/s", {"Stm32Sim": SpeedInMsFirmware},
           ("link:firmware-sampling",), ("vehicle_speed", "median ratio 0.2778, a scale factor")),
    Defect("firmware sends the CRC low byte first", {"Stm32Sim": SwappedCrcFirmware},
           ("link:firmware-crc",), ("CRC-16/MODBUS sent low byte first",), codec="raw-can-v1"),
    Defect("bit flips on the UART line", {"Stm32Sim": BitFlipFirmware},
           ("link:link-corruption",), ("CRC-16/MODBUS", "corrupted on the line"), codec="raw-can-v1",
           run_fails=("error",)),
    Defect("the harness's UART tap is noisy (unit correct)", {"TeeSink": NoisyTapSink},
           ("link:tap-noise", "model-parity:tap-noise", "feature-parity:tap-noise"), ("the tap",)),
]


def _run(defect: Defect, models: ModelSet, tmp_path: Path, monkeypatch):
    for attribute, replacement in defect.parts.items():
        monkeypatch.setattr(chain, attribute, replacement)
    rig = dataclasses.replace(BUILTIN_SIM_RIG, codec=defect.codec)
    return run_for_contract(load_scenario(DRIVE), rig, models, tmp_path)


@pytest.mark.parametrize("codec", ["dtg-link-v2", "raw-can-v1"])
def test_the_correct_unit_passes_everything(codec, models, tmp_path):
    run = run_for_contract(load_scenario(DRIVE), dataclasses.replace(BUILTIN_SIM_RIG, codec=codec), models,
                           tmp_path)
    verdicts = evaluate(run, None, models)
    assert all(v.passed for v in verdicts.values()), "\n".join(map(str, verdicts.values()))
    assert run.error is None and run.result.verdict == "PASS", run.result.judgement.summary()


@pytest.mark.parametrize("defect", DEFECTS, ids=[d.name for d in DEFECTS])
def test_a_planted_defect_is_reported_with_its_cause(defect, models, tmp_path, monkeypatch):
    run = _run(defect, models, tmp_path, monkeypatch)
    verdicts = evaluate(run, None, models)
    report = "\n".join(map(str, verdicts.values())) + f"\nrun: {run.error or run.result.judgement.summary()}"
    flagged = [v for v in verdicts.values() if v.status in (FAIL, ERROR)]
    run_failed = run.error is not None or run.result.verdict != "PASS"
    assert flagged or run_failed, f"a false pass:\n{report}"
    for expected in defect.causes:
        check, cause = expected.split(":")
        assert verdicts[check].status in (FAIL, ERROR) and verdicts[check].cause == cause, report
    if defect.words:
        messages = " ".join(v.message for v in flagged)
        assert all(word in messages for word in defect.words), report
    if "tap-noise" in " ".join(defect.causes):  # the harness's fault: no check may blame the unit
        assert not [v for v in verdicts.values() if v.status == FAIL], report
    for name in defect.run_fails:
        if name == "error":
            assert run.error is not None or run.result.verdict == "ERROR", report
        else:
            failed = {c.name for c in run.result.judgement.failures}
            assert name in failed, report
