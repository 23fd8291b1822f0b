"""The unit's contract checks: does the app run the real models on the real data, and say so readably?

The reference system passed its own checks while its app ran stub engines, read its behaviour model's output
as "always class 0", computed features differently from training and disagreed with the firmware on the CRC.
Each check here looks for one of those, on any build of the unit, from what the harness can observe: the
bytes on the UART tap, the EdgeAI lines the app logs, and the model files the harness installed.

- `check_link` — the firmware's frames on the tap decode with the rig's declared codec (CRC variant and byte
  order, zero padding, ID width), and the app's own decoder (its `status` counters) accepts them too. A CRC
  mismatch names the registered variant that does match (`harness.wire.link.identify_crc`), if any.
- `check_model_parity` — for every window the app scored, the harness rebuilds that window from the tap's
  bytes and runs the installed ONNX files itself (same feature order, in-graph normalisation, the manifest's
  threshold); the app's outputs must agree within `PARITY_TOLERANCES`. The behaviour model is run on the
  features the app logged for that window (feature parity judges those). A mismatch is diagnosed by trying
  the known mistakes (two signals swapped, inputs normalised twice, speed in m/s, features in another order)
  and by the shape of the error (a small consistent drift: a quantised or float16 copy; no pattern: a stub).
- `check_feature_parity` — the 18 behaviour features the app logged (`features` lines) against
  `harness.inference.features.behaviour_features` on the harness's window; names population std, swapped features or a
  window off by one second when one of them explains the difference.
- `check_readability` — the installed models' outputs are plain tensors of the documented shapes; the app's
  behaviour label is the argmax of the probabilities it reports, probabilities are probabilities, and its
  classes cover more than one class over a scenario designed to produce all three.
- `check_liveness` — a metamorphic check over two runs that differ only in driving style (or a fault): each
  model's outputs must change.

Every check returns a `Verdict`: pass, fail (with a message naming the cause, and a short `cause` tag), or
inconclusive (nothing to judge: e.g. the app decoded no frames at all, which `check_link` fails). Checks
are pure functions of their inputs; `run_for_contract` runs a scenario so that those inputs exist (the UART tap
stand-in added on a rig whose STM32 is simulated, the app started with its `features` debug lines).

What the checks do not do: judge detection quality (the scenario items do), look inside the app, or tell a
stub from a model the harness has never seen (both are "not the installed model").
"""
from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from firmware_sim.phone.app import SampleAssembler, WindowBuffer
from harness.inference.features import BEHAVIOUR_FEATURES, CONTEXT_S, WINDOW_S, behaviour_features
from harness.inference.models import CONTRACT, MODEL_NAMES, ModelSet, open_session
from harness.wire.events import (
    BEHAVIOUR_CLASSES,
    AnomalyResult,
    AppStatus,
    BehaviourResult,
    Event,
    FeatureDebug,
    FuelResult,
)
from harness.wire.link import CRC_VARIANTS, codec_names, get_codec, identify_crc
from harness.wire.signals import SIGNALS

__all__ = [
    "CHECKS", "FAIL", "INCONCLUSIVE", "PASS", "PARITY_TOLERANCES", "ContractRun", "ReferenceWindows", "Tolerance",
    "Verdict", "check_feature_parity", "check_link", "check_liveness", "check_model_parity", "check_readability",
    "evaluate", "reference_windows",
]

CHECKS: tuple[str, ...] = ("link", "model-parity", "feature-parity", "readability", "liveness")
PASS, FAIL, INCONCLUSIVE = "pass", "fail", "inconclusive"


@dataclass(frozen=True)
class Verdict:
    """One contract check's finding. `cause` is a short tag of the diagnosed cause (None when it passed)."""

    check: str
    status: str  # PASS, FAIL or INCONCLUSIVE
    message: str
    cause: str | None = None

    @property
    def passed(self) -> bool:
        return self.status == PASS

    @property
    def failed(self) -> bool:
        return self.status == FAIL

    def __str__(self) -> str:
        return f"{self.check}: {self.status.upper()}: {self.message}"


@dataclass(frozen=True)
class Tolerance:
    """|reported - expected| <= atol + rtol * |expected|, in the output's unit."""

    atol: float
    rtol: float
    unit: str

    def close(self, reported: np.ndarray, expected: np.ndarray) -> np.ndarray:
        return np.abs(np.asarray(reported, float) - np.asarray(expected, float)) <= (
            self.atol + self.rtol * np.abs(np.asarray(expected, float)))


#: Per model: how far the app's output may be from the harness's run of the same ONNX file on the same window.
#: The app runs float32 graphs with onnxruntime (or another runtime on the phone); different kernels change the
#: last bits, never 1 %. A float16 or int8 copy of the fuel model moves it by up to 1.2 L/h (manifest,
#: quantisation), far beyond these.
PARITY_TOLERANCES: dict[str, Tolerance] = {
    "fuel": Tolerance(atol=0.01, rtol=1e-3, unit="L/h"),
    "anomaly": Tolerance(atol=1e-4, rtol=1e-3, unit="score units"),
    "behaviour": Tolerance(atol=1e-3, rtol=0.0, unit="probability"),
}
#: Features are float32 statistics of the same window: only the last bits may differ.
FEATURE_TOLERANCE = Tolerance(atol=1e-4, rtol=1e-4, unit="feature units")
#: Windows the app scored that the harness cannot find in its rebuild, beyond which parity is not judged.
MAX_UNMATCHED_FRACTION = 0.05
#: How many mismatching windows a diagnosis tries each known mistake on.
DIAGNOSIS_WINDOWS = 8


# --- the harness's own view of the windows ---------------------------------------------------------------------

@dataclass
class ReferenceWindows:
    """The anomaly model's input [CONTEXT_S, 10] for every second the harness rebuilt from the UART's bytes
    (the last WINDOW_S rows are the fuel and behaviour window), keyed by the window's last sample time in ms."""

    contexts: dict[int, np.ndarray]
    source: str

    def context(self, t_s: float) -> np.ndarray | None:
        return self.contexts.get(int(round(t_s * 1000)))

    def window(self, t_s: float) -> np.ndarray | None:
        context = self.context(t_s)
        return None if context is None else context[-WINDOW_S:]

    def __len__(self) -> int:
        return len(self.contexts)


def reference_windows(uart: bytes, codec: str, profile: str) -> ReferenceWindows:
    """Rebuild the app's inputs from the UART's bytes: decode with the declared codec, rebuild 1 Hz samples and
    slide the windows with stride 1 s, by the rule every app follows (docs/events.md; `firmware_sim.phone.app` holds
    its implementation, `SampleAssembler` and `WindowBuffer`, which the app simulator runs as well)."""
    decoder = get_codec(codec).decoder()
    records = [item.record for item in decoder.feed(uart)] + [item.record for item in decoder.finish()]
    assembler = SampleAssembler(codec, profile)
    buffer = WindowBuffer(WINDOW_S, 1, CONTEXT_S)
    contexts = {}
    for record in records:
        for t_s, row in assembler.feed(record):
            context = buffer.add(t_s, row)
            if context is not None:
                contexts[int(round(t_s * 1000))] = context
    return ReferenceWindows(contexts, f"the UART tap's bytes decoded as {codec}")


# --- running a scenario for the checks -------------------------------------------------------------------------

@dataclass
class ContractRun:
    """One scenario run with what the checks need: its events, the tap's bytes and the harness's windows."""

    name: str
    events: list[Event]
    uart: bytes | None
    codec: str
    reference: ReferenceWindows | None
    result: object | None = None  # the harness.judge.result.RunResult, when it came from run_scenario

    @classmethod
    def from_events(cls, name: str, events: Sequence[Event], uart: bytes | None, codec: str,
                    profile: str = "obd2") -> ContractRun:
        reference = reference_windows(uart, codec, profile) if uart is not None else None
        return cls(name, list(events), uart, codec, reference)


# --- helpers ---------------------------------------------------------------------------------------------------

def _of(events: Iterable[Event], cls: type) -> list:
    return [e for e in events if isinstance(e, cls)]


def _last_status(events: Sequence[Event]) -> AppStatus | None:
    return next((e for e in reversed(events) if isinstance(e, AppStatus)), None)


def _app_decoded_nothing(events: Sequence[Event]) -> bool:
    """True when the app rebuilt no sample from the link: nothing downstream of the link can be judged."""
    if any(isinstance(e, (FuelResult, AnomalyResult, BehaviourResult, FeatureDebug)) for e in events):
        return False
    status = _last_status(events)
    return status is None or status.samples_received == 0


def _blocked(check: str, events: Sequence[Event]) -> Verdict | None:
    if _app_decoded_nothing(events):
        return Verdict(check, INCONCLUSIVE, "the app rebuilt no samples from the link, so it scored no windows: "
                                            "nothing to compare (the link check says why)")
    return None


def _fmt(value: float) -> str:
    return f"{value:.4g}"


def _swap(n: int, i: int, j: int) -> list[int]:
    order = list(range(n))
    order[i], order[j] = j, i
    return order


def _standardised(context: np.ndarray) -> np.ndarray:
    with np.errstate(all="ignore"):
        mean, std = np.nanmean(context, axis=0), np.nanstd(context, axis=0)
    return ((context - mean) / np.where(std > 0, std, 1.0)).astype(np.float32)


def _window_mistakes() -> list[tuple[str, str, Callable[[np.ndarray], np.ndarray]]]:
    """(cause tag, description, transform of a [n, 10] input) for the known ways an app mangles its input."""
    out = []
    for i, j in itertools.combinations(range(len(SIGNALS)), 2):
        order = _swap(len(SIGNALS), i, j)
        out.append(("feature-order", f"swapped feature order: the app feeds {SIGNALS[i]} where the model reads "
                                     f"{SIGNALS[j]} and vice versa (manifest feature_order: {', '.join(SIGNALS)})",
                    lambda c, order=order: c[:, order]))
    out.append(("normalisation", "wrong normalisation: the app standardises the window itself, but the graph "
                                 "normalises its raw input (manifest in_graph)", _standardised))
    speed = SIGNALS.index("vehicle_speed")

    def metres_per_second(c: np.ndarray) -> np.ndarray:
        c = c.copy()
        c[:, speed] /= 3.6
        return c

    out.append(("units", "wrong units: the app feeds vehicle_speed in m/s, the model reads km/h", metres_per_second))
    return out


def _diagnose_outputs(reported: np.ndarray, expected: np.ndarray, inputs: list[np.ndarray],
                      run_model: Callable[[np.ndarray], float], tolerance: Tolerance,
                      mistakes: list[tuple[str, str, Callable[[np.ndarray], np.ndarray]]]) -> tuple[str, str]:
    """Why the app's outputs differ from the model's on the same inputs: (cause tag, explanation)."""
    bad = np.flatnonzero(~tolerance.close(reported, expected))
    picks = bad[np.linspace(0, len(bad) - 1, min(DIAGNOSIS_WINDOWS, len(bad))).astype(int)]
    for cause, text, transform in mistakes:
        if all(tolerance.close(reported[k], run_model(transform(inputs[k]))) for k in picks):
            return cause, f"consistent with {text} (matches on {len(picks)}/{len(picks)} windows tried)"
    error = reported - expected
    # "small": a few per cent of the output's typical size (a quantised copy moves it that much, a stub far more)
    scale = max(float(np.median(np.abs(expected))), float(np.std(expected)), 1e-9)
    if len(reported) >= 3 and np.std(reported) > 0 and np.std(expected) > 0:
        correlation = float(np.corrcoef(reported, expected)[0, 1])
    else:
        correlation = float("nan")
    if correlation > 0.98 and float(np.median(np.abs(error))) < 0.05 * scale:
        return "drift", (f"the outputs follow the model closely (correlation {correlation:.4f}) but drift beyond "
                         f"the tolerance: consistent with a float16/int8 (quantised) or otherwise altered copy of "
                         f"the model, or a different runtime's numerics")
    return "stub", (f"no known input mistake explains them and they do not follow the model (correlation "
                    f"{_fmt(correlation)}): the app does not run this model on this window (a stub engine, "
                    f"a heuristic, or another model)")


# --- the checks ------------------------------------------------------------------------------------------------

def _crc_candidates(uart: bytes, codec: str) -> list[tuple[bytes, int, int]]:
    """(covered bytes, carried CRC, width) of every frame-shaped candidate in `uart`, whatever its CRC."""
    out = []
    if codec == "raw-can-v1":
        pos = uart.find(0xAA)
        while 0 <= pos <= len(uart) - 15:
            if uart[pos + 14] == 0x55 and uart[pos + 3] <= 8:
                out.append((uart[pos + 1:pos + 12], (uart[pos + 12] << 8) | uart[pos + 13], 16))
                pos = uart.find(0xAA, pos + 15)
            else:
                pos = uart.find(0xAA, pos + 1)
    else:
        pos = uart.find(b"\xd7\x47\x02")
        while 0 <= pos <= len(uart) - 17:
            end = pos + 13 + uart[pos + 4]
            if end + 4 > len(uart):
                break
            out.append((uart[pos + 2:end], int.from_bytes(uart[end:end + 4], "big"), 32))
            pos = uart.find(b"\xd7\x47\x02", end + 4)
    return out


def _expected_crc(codec: str) -> str:
    return "crc16-modbus" if codec == "raw-can-v1" else "crc32-iso-hdlc"


def _name_crc(uart: bytes, codec: str) -> str:
    candidates = _crc_candidates(uart, codec)
    if not candidates:
        return "no frame-shaped data at all"
    counts: dict[str, int] = {}
    for data, carried, width in candidates[:2000]:
        for name in identify_crc(data, carried, width) or ["none"]:
            counts[name] = counts.get(name, 0) + 1
    best, n = max(counts.items(), key=lambda kv: kv[1])
    tried = min(len(candidates), 2000)
    if best == "none":
        return f"no registered CRC variant matches ({n}/{tried} frame-shaped candidates: corruption or framing?)"
    variant = CRC_VARIANTS[best.split(" ")[0]]
    order = " sent low byte first (byte-swapped)" if "byte-swapped" in best else ""
    return f"{n}/{tried} frames carry {variant.title}{order}"


def _v1_padding_and_ids(uart: bytes) -> tuple[int, int, int]:
    """(frames with DLC < 8, of which non-zero padding, frames whose ID field exceeds 11 bits) of raw-can-v1."""
    from harness.wire.link import crc16_modbus

    short = padded_wrong = wide = 0
    pos = uart.find(0xAA)
    while 0 <= pos <= len(uart) - 15:
        if uart[pos + 14] == 0x55 and crc16_modbus(uart[pos + 1:pos + 12]) == (uart[pos + 12] << 8) | uart[pos + 13]:
            dlc = uart[pos + 3]
            if ((uart[pos + 1] << 8) | uart[pos + 2]) > 0x7FF:
                wide += 1
            if dlc < 8:
                short += 1
                if any(uart[pos + 4 + dlc:pos + 12]):
                    padded_wrong += 1
            pos = uart.find(0xAA, pos + 15)
        else:
            pos = uart.find(0xAA, pos + 1)
    return short, padded_wrong, wide


def check_link(run: ContractRun) -> Verdict:
    """The firmware's frames decode with the declared codec, and the app's decoder accepts them as well."""
    check, codec = "link", run.codec
    expected = CRC_VARIANTS[_expected_crc(codec)].title
    notes: list[str] = []
    tap_frames = None
    if run.uart is None:
        notes.append("no UART tap on this rig: the firmware's side is not checked")
    else:
        decoder = get_codec(codec).decoder()
        decoder.feed(run.uart)
        decoder.finish()
        stats = decoder.stats
        tap_frames = stats.frames_decoded
        if stats.frames_decoded == 0 or stats.crc_errors > max(2, 0.001 * stats.frames_decoded):
            found = _name_crc(run.uart, codec)
            others = []
            for other in codec_names():
                if other != codec:
                    alt = get_codec(other).decoder()
                    alt.feed(run.uart)
                    alt.finish()
                    if alt.stats.frames_decoded > 10 * max(alt.stats.crc_errors, 1):
                        others.append(other)
            where = f"; the bytes decode as {' / '.join(others)}: the rig file's stm32.codec is wrong" if others else ""
            return Verdict(check, FAIL, f"the firmware's frames on the UART tap fail the declared {codec} "
                                        f"({expected}): {stats.frames_decoded} decoded, {stats.crc_errors} CRC "
                                        f"errors; {found}{where}", "firmware-crc")
        if stats.malformed_frames:
            return Verdict(check, FAIL, f"{stats.malformed_frames} of the firmware's frames pass the CRC but are "
                                        f"malformed for {codec} (e.g. an ID wider than the codec's ID field, "
                                        f"DLC > 8)", "id-width")
        if codec == "raw-can-v1":
            short, padded_wrong, wide = _v1_padding_and_ids(run.uart)
            if padded_wrong:
                return Verdict(check, FAIL, f"{padded_wrong} of {short} raw-can-v1 frames with DLC < 8 are padded "
                                            f"with non-zero bytes (the contract pads with 0x00)", "padding")
        notes.append(f"{stats.frames_decoded} firmware frames on the tap pass {codec} ({expected}), "
                     f"{stats.crc_errors} CRC errors")
    status = _last_status(run.events)
    if status is None:
        return Verdict(check, FAIL, "the app logged no status line: its decoder's counters (samples_received, link) "
                                    "cannot be compared with the firmware's frames (docs/events.md, kind status); "
                                    + "; ".join(notes), "no-status")
    link = dict(status.link)
    decoded, crc_errors = link.get("frames_decoded"), link.get("crc_errors", 0)
    # The app's last status line may predate the run's end (a phone's last lines can miss the collection), so
    # its counters are judged by their own ratio, not against the tap's total.
    if tap_frames and decoded is not None and (decoded == 0 or crc_errors > max(2, 0.001 * (decoded + crc_errors))):
        return Verdict(check, FAIL, f"the app's decoder counted {crc_errors} CRC errors and decoded {decoded} "
                                    f"frames, while all {tap_frames} of the firmware's frames on the tap pass the "
                                    f"declared {expected}: the app checks a different CRC variant (or byte order) "
                                    f"than the firmware sends ({codec} specifies {expected})", "app-crc")
    if status.samples_received == 0:
        return Verdict(check, FAIL, f"the app rebuilt no samples from the link (its status: {status.samples_received} "
                                    f"samples, link counters {link or 'not reported'}); " + "; ".join(notes),
                       "app-no-samples")
    if decoded is None:
        notes.append("the app's status lines carry no link counters (frames_decoded, crc_errors): its decoder is "
                     "judged by its samples only")
    else:
        notes.append(f"the app decoded {decoded} frames with {crc_errors} CRC errors")
    return Verdict(check, PASS, "; ".join(notes) + f"; {status.samples_received} samples rebuilt")


def _model_identity(events: Sequence[Event], models: ModelSet) -> list[str]:
    problems = []
    manifest = models.manifest
    for cls, name in ((FuelResult, "fuel"), (AnomalyResult, "anomaly"), (BehaviourResult, "behaviour")):
        installed = manifest.models[name].sha256
        for ref in {e.model for e in _of(events, cls)}:
            if ref.name != name or not installed.startswith(ref.sha256):
                problems.append(f"{name}: the app reports model '{ref.name}' sha256 {ref.sha256}, the harness "
                                f"installed {installed[:16]}: a stale or different model file")
            elif ref.version is not None and ref.version != manifest.version:
                problems.append(f"{name}: the app reports models version {ref.version}, the manifest's is "
                                f"{manifest.version}: a stale manifest")
    return problems


def _pair_with_reference(results: list, reference: ReferenceWindows) -> tuple[list, list, int]:
    kept, contexts = [], []
    for result in results:
        context = reference.context(result.t_s)
        if context is not None:
            kept.append(result)
            contexts.append(context)
    return kept, contexts, len(results) - len(kept)


def check_model_parity(run: ContractRun, models: ModelSet,
                       tolerances: dict[str, Tolerance] = PARITY_TOLERANCES) -> Verdict:
    """Every window the app scored, rerun by the harness on the installed ONNX files: the outputs must agree."""
    check = "model-parity"
    blocked = _blocked(check, run.events)
    if blocked:
        return blocked
    if run.reference is None:
        return Verdict(check, INCONCLUSIVE, "no UART tap on this rig: the harness cannot rebuild the windows the app "
                                            "scored (add a tap: rig file stm32.uart_tap)")
    problems, causes, summary = [], [], []
    for problem in _model_identity(run.events, models):
        problems.append(problem)
        causes.append("stale-model")
    fuel_events = _of(run.events, FuelResult)
    anomaly_events = _of(run.events, AnomalyResult)
    behaviour_events = _of(run.events, BehaviourResult)
    if not (fuel_events and anomaly_events and behaviour_events):
        missing = [k for k, v in (("fuel", fuel_events), ("anomaly", anomaly_events),
                                  ("behaviour", behaviour_events)) if not v]
        return Verdict(check, FAIL, f"the app logged no {', '.join(missing)} results although it decoded the link",
                       "no-results")

    def judge(name: str, results: list, get_reported: Callable, get_expected: Callable, get_input: Callable,
              run_model: Callable, mistakes: list) -> None:
        tolerance = tolerances[name]
        kept, contexts, unmatched = _pair_with_reference(results, run.reference)
        if unmatched > MAX_UNMATCHED_FRACTION * len(results) or not kept:
            problems.append(f"{name}: {unmatched} of {len(results)} windows the app scored are not among the "
                            f"{len(run.reference)} the harness rebuilt from the tap (sample times disagree)")
            causes.append("window-alignment")
            return
        inputs = [get_input(r, c) for r, c in zip(kept, contexts, strict=False)]
        reported = np.array([get_reported(r) for r in kept], dtype=float)
        expected = np.array([get_expected(x) for x in inputs], dtype=float)
        ok = tolerance.close(reported, expected)
        if ok.all():
            summary.append(f"{name} {len(kept)} windows (max |error| {_fmt(np.max(np.abs(reported - expected)))} "
                           f"{tolerance.unit})")
            return
        k = int(np.flatnonzero(~ok)[0])
        cause, why = _diagnose_outputs(reported, expected, inputs, run_model, tolerance, mistakes)
        problems.append(f"{name}: {int((~ok).sum())}/{len(kept)} windows outside the tolerance "
                        f"({tolerance.atol:g} + {tolerance.rtol:g} x |expected| {tolerance.unit}); e.g. at "
                        f"t={kept[k].t_s:g} s the app reported {_fmt(reported[k])}, the model gives "
                        f"{_fmt(expected[k])} on the same window; {why}")
        causes.append(cause)

    window_mistakes = _window_mistakes()
    judge("fuel", fuel_events, lambda r: r.fuel_rate_lph, lambda w: models.fuel(w),
          lambda r, c: c[-WINDOW_S:], lambda w: models.fuel(w), window_mistakes)
    judge("anomaly", anomaly_events, lambda r: r.score, lambda c: models.anomaly(c).score,
          lambda r, c: c, lambda c: models.anomaly(c).score, window_mistakes)
    threshold = models.threshold
    thresholds = {e.threshold for e in anomaly_events}
    if any(abs(t - threshold) > 1e-6 * max(abs(threshold), 1.0) for t in thresholds):
        problems.append(f"anomaly: the app applies threshold(s) {', '.join(map(_fmt, sorted(thresholds)))}, the "
                        f"manifest's is {_fmt(threshold)}: a wrong or stale threshold")
        causes.append("threshold")
    wrong_alarm = [e for e in anomaly_events if e.alarm != (e.score > threshold)]
    if wrong_alarm:
        problems.append(f"anomaly: on {len(wrong_alarm)}/{len(anomaly_events)} windows the app's alarm disagrees "
                        f"with the manifest's rule score > threshold ({_fmt(threshold)}), e.g. t={wrong_alarm[0].t_s:g} "
                        f"s: score {_fmt(wrong_alarm[0].score)}, alarm {wrong_alarm[0].alarm}")
        causes.append("threshold")

    # The behaviour model reads the app's own features where it logged them (feature parity judges those).
    app_features = {int(round(e.t_s * 1000)): np.array(e.features, dtype=np.float32)
                    for e in _of(run.events, FeatureDebug)}

    def behaviour_input(result: BehaviourResult, context: np.ndarray) -> np.ndarray:
        logged = app_features.get(int(round(result.t_s * 1000)))
        return logged if logged is not None else behaviour_features(context[-WINDOW_S:])

    feature_mistakes = [("feature-order", f"swapped feature order: the app feeds the model {BEHAVIOUR_FEATURES[i]} "
                                          f"and {BEHAVIOUR_FEATURES[j]} in each other's place",
                         lambda f, order=_swap(len(BEHAVIOUR_FEATURES), i, j): f[order])  # noqa: B008 (bound per pair)
                        for i, j in itertools.combinations(range(len(BEHAVIOUR_FEATURES)), 2)]
    # one probability per class: judge each window by its largest difference
    tolerance = tolerances["behaviour"]
    kept, contexts, unmatched = _pair_with_reference(behaviour_events, run.reference)
    if unmatched > MAX_UNMATCHED_FRACTION * len(behaviour_events) or not kept:
        problems.append(f"behaviour: {unmatched} of {len(behaviour_events)} windows the app scored are not among "
                        f"those the harness rebuilt from the tap")
        causes.append("window-alignment")
    else:
        inputs = [behaviour_input(r, c) for r, c in zip(kept, contexts, strict=False)]
        reported = np.array([r.probabilities for r in kept], dtype=float)
        expected = np.array([models.behaviour(x)[1] for x in inputs], dtype=float)
        worst = np.max(np.abs(reported - expected), axis=1)
        if (worst <= tolerance.atol).all():
            source = "the app's logged features" if app_features else "the harness's features"
            summary.append(f"behaviour {len(kept)} windows on {source} (max |error| {_fmt(worst.max())})")
        else:
            bad = np.flatnonzero(worst > tolerance.atol)
            picks = bad[np.linspace(0, len(bad) - 1, min(DIAGNOSIS_WINDOWS, len(bad))).astype(int)]
            why = None
            for cause, text, transform in feature_mistakes:
                if all(np.max(np.abs(reported[k] - models.behaviour(transform(inputs[k]))[1])) <= tolerance.atol
                       for k in picks):
                    why = (cause, f"consistent with {text}")
                    break
            if why is None:
                flat_r, flat_e = reported[:, 2] - reported[:, 1], expected[:, 2] - expected[:, 1]
                why = _diagnose_outputs(flat_r, flat_e, inputs, lambda f: 0.0,
                                        Tolerance(tolerance.atol, 0.0, tolerance.unit), [])
            k = int(bad[0])
            problems.append(f"behaviour: {len(bad)}/{len(kept)} windows' probabilities differ by more than "
                            f"{tolerance.atol:g}; e.g. at t={kept[k].t_s:g} s the app reported "
                            f"[{', '.join(map(_fmt, reported[k]))}], the model gives "
                            f"[{', '.join(map(_fmt, expected[k]))}] on the same features; {why[1]}")
            causes.append(why[0])
    if problems:
        return Verdict(check, FAIL, "; ".join(problems), causes[0])
    return Verdict(check, PASS, "the app's outputs match the installed models on " + ", ".join(summary))


def check_feature_parity(run: ContractRun, tolerance: Tolerance = FEATURE_TOLERANCE) -> Verdict:
    """The 18 features the app logged, against the harness's extractor on the harness's window."""
    check = "feature-parity"
    blocked = _blocked(check, run.events)
    if blocked:
        return blocked
    if run.reference is None:
        return Verdict(check, INCONCLUSIVE, "no UART tap on this rig: the harness cannot rebuild the windows")
    logged = _of(run.events, FeatureDebug)
    if not logged:
        return Verdict(check, FAIL, "the app logged no `features` lines: a testable build logs the 18 behaviour "
                                    "features and their window (docs/contract.md)", "no-features")
    kept, contexts, unmatched = _pair_with_reference(logged, run.reference)
    if unmatched > MAX_UNMATCHED_FRACTION * len(logged) or not kept:
        return Verdict(check, FAIL, f"{unmatched} of {len(logged)} `features` windows are not among those the "
                                    f"harness rebuilt from the tap", "window-alignment")
    wrong_start = [e for e in kept if abs(e.window_start_t_s - (e.t_s - WINDOW_S + 1)) > 0.5]
    if wrong_start:
        e = wrong_start[0]
        return Verdict(check, FAIL, f"{len(wrong_start)} `features` lines give a window of other than {WINDOW_S} "
                                    f"samples, e.g. {e.window_start_t_s:g}..{e.t_s:g} s", "window-length")
    reported = np.array([e.features for e in kept], dtype=float)
    expected = np.array([behaviour_features(c[-WINDOW_S:]) for c in contexts], dtype=float)
    both_nan = np.isnan(reported) & np.isnan(expected)
    close = tolerance.close(reported, expected) | both_nan
    if close.all():
        return Verdict(check, PASS, f"{len(kept)} windows' 18 features match the harness's extractor (sample std, "
                                    f"training order)")
    bad_rows = np.flatnonzero(~close.all(axis=1))
    per_feature = (~close).sum(axis=0)
    worst = [BEHAVIOUR_FEATURES[i] for i in np.argsort(-per_feature) if per_feature[i]][:6]
    picks = bad_rows[np.linspace(0, len(bad_rows) - 1, min(DIAGNOSIS_WINDOWS, len(bad_rows))).astype(int)]

    def explained(alternative: Callable[[int], np.ndarray]) -> bool:
        return all((tolerance.close(reported[k], alternative(k)) | np.isnan(reported[k])).all() for k in picks)

    cause, why = "features", "no known mistake (population std, swapped features, a shifted window) explains it"
    if explained(lambda k: behaviour_features(contexts[k][-WINDOW_S:], ddof=0)):
        cause, why = "population-std", ("the app uses the population standard deviation (ddof=0) where training "
                                        "uses the sample standard deviation (ddof=1)")
    else:
        for i, j in itertools.combinations(range(len(BEHAVIOUR_FEATURES)), 2):
            order = _swap(len(BEHAVIOUR_FEATURES), i, j)
            if explained(lambda k: expected[k][order]):  # noqa: B023 (called at once, inside the loop)
                cause, why = "feature-order", (f"the app logs {BEHAVIOUR_FEATURES[i]} and {BEHAVIOUR_FEATURES[j]} in "
                                               f"each other's place (training feature order differs)")
                break
        else:
            for shift in (-1, 1):
                shifted = [run.reference.window(e.t_s + shift) for e in kept]
                if all(shifted[k] is not None for k in picks) and explained(
                        lambda k: behaviour_features(shifted[k])):  # noqa: B023 (called at once)
                    cause, why = "window-offset", f"the app's window is shifted by {shift:+d} s"
                    break
    k = int(bad_rows[0])
    i = int(np.flatnonzero(~close[k])[0])
    return Verdict(check, FAIL, f"{len(bad_rows)}/{len(kept)} windows' features differ from the harness's extractor "
                                f"(mostly {', '.join(worst)}); e.g. at t={kept[k].t_s:g} s "
                                f"{BEHAVIOUR_FEATURES[i]} is {_fmt(reported[k, i])}, the extractor gives "
                                f"{_fmt(expected[k, i])}: {why}", cause)


def _output_types(models: ModelSet) -> list[str]:
    """Problems with the installed ONNX files' outputs: each must be a plain tensor of the documented shape."""
    problems = []
    for name in MODEL_NAMES:
        session = open_session(models.manifest.models[name].path)
        outputs = {o.name: o for o in session.get_outputs()}
        for output_name, shape in CONTRACT[name]["outputs"].items():
            output = outputs.get(output_name)
            if output is None:
                problems.append(f"{name}: no output '{output_name}' (it has {', '.join(outputs)})")
            elif not output.type.startswith("tensor("):
                problems.append(f"{name}: output '{output_name}' is {output.type}, not a plain tensor (a ZipMap or "
                                f"sequence output that apps misread)")
            elif len(output.shape) != len(shape) or any(isinstance(got, int) and got != want
                                                         for got, want in zip(output.shape, shape, strict=False)):
                problems.append(f"{name}: output '{output_name}' has shape {output.shape}, documented {shape}")
        extra = set(outputs) - set(CONTRACT[name]["outputs"])
        if extra:
            problems.append(f"{name}: undocumented outputs {', '.join(sorted(extra))}")
    return problems


def check_readability(run: ContractRun, models: ModelSet) -> Verdict:
    """Plain tensor outputs of the documented shapes; labels read correctly; more than one class reported."""
    check = "readability"
    problems = _output_types(models)
    if problems:
        return Verdict(check, FAIL, "; ".join(problems), "output-type")
    blocked = _blocked(check, run.events)
    if blocked:
        return blocked
    results = _of(run.events, BehaviourResult)
    if not results:
        return Verdict(check, FAIL, "the app logged no behaviour results although it decoded the link", "no-results")
    probabilities = np.array([r.probabilities for r in results], dtype=float)
    labels = np.array([r.label for r in results])
    sums = probabilities.sum(axis=1)
    if (probabilities < -1e-6).any() or (probabilities > 1 + 1e-6).any() or (np.abs(sums - 1) > 1e-3).any():
        k = int(np.flatnonzero((np.abs(sums - 1) > 1e-3) | (probabilities < -1e-6).any(axis=1)
                               | (probabilities > 1 + 1e-6).any(axis=1))[0])
        return Verdict(check, FAIL, f"behaviour: the reported probabilities are not probabilities, e.g. "
                                    f"[{', '.join(map(_fmt, probabilities[k]))}] at t={results[k].t_s:g} s (sum "
                                    f"{_fmt(sums[k])}): the app reads raw scores or the wrong output", "probabilities")
    argmax = probabilities.argmax(axis=1)
    counts = {BEHAVIOUR_CLASSES[c]: int((argmax == c).sum()) for c in range(len(BEHAVIOUR_CLASSES))}
    given = ", ".join(f"{name} {n}" for name, n in counts.items() if n)
    distinct = sorted(set(labels.tolist()))
    wrong_name = [r for r in results if r.class_name != BEHAVIOUR_CLASSES[r.label]]
    if wrong_name:
        return Verdict(check, FAIL, f"behaviour: {len(wrong_name)} results name class '{wrong_name[0].class_name}' "
                                    f"for label {wrong_name[0].label}", "label-misread")
    disagree = int((labels != argmax).sum())
    if len(distinct) < 2:
        only = BEHAVIOUR_CLASSES[distinct[0]]
        return Verdict(check, FAIL, f"behaviour: reported class {distinct[0]} ({only}) for {len(results)}/"
                                    f"{len(results)} windows of a scenario designed to produce all three, while the "
                                    f"model's own probabilities (as the app reported them) give "
                                    f"{sum(1 for n in counts.values() if n)} classes ({given}): "
                                    + ("a ZipMap/label misread: the app reads the class from the wrong output"
                                       if disagree else "the model or its input never leaves one class"),
                       "label-misread" if disagree else "one-class")
    if disagree:
        return Verdict(check, FAIL, f"behaviour: on {disagree}/{len(results)} windows the reported label is not the "
                                    f"most probable class of the reported probabilities: a ZipMap/label misread",
                       "label-misread")
    return Verdict(check, PASS, f"the installed models' outputs are plain tensors of the documented shapes; the "
                                f"app reported {len(distinct)} classes over {len(results)} windows ({given}), each "
                                f"label the argmax of its probabilities")


def _series(events: Sequence[Event]) -> dict[str, dict[int, np.ndarray]]:
    out: dict[str, dict[int, np.ndarray]] = {"fuel": {}, "anomaly": {}, "behaviour": {}}
    for e in events:
        key = int(round(e.t_s * 1000)) if isinstance(e, (FuelResult, AnomalyResult, BehaviourResult)) else None
        if isinstance(e, FuelResult):
            out["fuel"][key] = np.array([e.fuel_rate_lph])
        elif isinstance(e, AnomalyResult):
            out["anomaly"][key] = np.array([e.score])
        elif isinstance(e, BehaviourResult):
            out["behaviour"][key] = np.array(e.probabilities)
    return out


#: The least mean change per window that counts as "the output changed", per model.
LIVENESS_MIN_CHANGE: dict[str, float] = {"fuel": 0.05, "anomaly": 1e-4, "behaviour": 0.01}


def check_liveness(run_a: ContractRun, run_b: ContractRun, change: str) -> Verdict:
    """Metamorphic: two runs whose inputs differ (`change` says how) must give different outputs, per model."""
    check = "liveness"
    for run in (run_a, run_b):
        blocked = _blocked(check, run.events)
        if blocked:
            return Verdict(check, INCONCLUSIVE, f"{run.name}: {blocked.message}")
    if run_a.reference is not None and run_b.reference is not None:
        common = sorted(set(run_a.reference.contexts) & set(run_b.reference.contexts))
        if common and all(np.array_equal(run_a.reference.contexts[t], run_b.reference.contexts[t], equal_nan=True)
                          for t in common):
            return Verdict(check, INCONCLUSIVE, f"the two runs' inputs did not differ ({change}): nothing to compare")
    a, b = _series(run_a.events), _series(run_b.events)
    dead, live = [], []
    for name in ("fuel", "anomaly", "behaviour"):
        times = sorted(set(a[name]) & set(b[name]))
        if len(times) < 10:
            dead.append(f"{name}: only {len(times)} windows scored in both runs")
            continue
        change_per_window = np.array([np.max(np.abs(a[name][t] - b[name][t])) for t in times])
        mean_change = float(change_per_window.mean())
        if mean_change < LIVENESS_MIN_CHANGE[name]:
            dead.append(f"{name}: the app's output hardly changed (mean |change| {_fmt(mean_change)} over "
                        f"{len(times)} windows, at least {LIVENESS_MIN_CHANGE[name]:g} expected) although the input "
                        f"did ({change}): it does not follow its input (a constant stub, a cached or frozen result)")
        else:
            live.append(f"{name} mean |change| {_fmt(mean_change)} over {len(times)} windows")
    if dead:
        return Verdict(check, FAIL, "; ".join(dead), "frozen-output")
    return Verdict(check, PASS, f"the outputs follow the input ({change}): " + ", ".join(live))


def evaluate(run_a: ContractRun, run_b: ContractRun | None, models: ModelSet, change: str = "") -> dict[str, Verdict]:
    """Every contract check on `run_a` (liveness against `run_b`, when given), by check name."""
    verdicts = {
        "link": check_link(run_a),
        "model-parity": check_model_parity(run_a, models),
        "feature-parity": check_feature_parity(run_a),
        "readability": check_readability(run_a, models),
    }
    if run_b is not None:
        verdicts["liveness"] = check_liveness(run_a, run_b, change)
    return verdicts
