"""The harness's own view of the windows the app scored, rebuilt from the UART tap's bytes, and a scenario run
with what the checks need (`ContractRun`).

The windows are rebuilt from the documented contract alone (docs/contract.md, "How the harness rebuilds the
app's windows"; docs/events.md; docs/link.md), by code written apart from the app simulator: nothing here is
imported from `firmware_sim`, so a defect in the app's own sample assembly or windowing cannot hide in the
reference that judges it. The rule:

- samples: with dtg-link-v2 the firmware's sample records, at their `t_ms`; with raw-can-v1 one sample per OBD-II
  poll cycle, numbered 0, 1, 2 ... (a cycle starts with the request on 0x7DF for the first PID, 0x0D; a sample
  holds the positive answers on 0x7E8 of its own cycle, decoded by the J1979 formulas of docs/link.md, and NaN
  for what was not answered; the last cycle, never closed by a next request, is no sample);
- values are float32 (the models' input type); a second without a sample is a row of NaN;
- a window ends at every sample from the one `WINDOW_S` - 1 seconds after the first on (stride 1 s); the anomaly
  model's input is the `CONTEXT_S` seconds that end there (NaN before the first sample), the fuel and behaviour
  window its last `WINDOW_S` rows.

The parity checks pair each result the app logged with the window of the same last-sample time
(`pair_with_reference`). Running a scenario to get these inputs is `harness.run.contract`.
"""
from __future__ import annotations

import bisect
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from harness.inference.features import CONTEXT_S, WINDOW_S
from harness.wire.events import AppStatus, Event
from harness.wire.link import CanFrame, DecoderStats, SampleRecord, get_codec
from harness.wire.signals import SIGNALS

if TYPE_CHECKING:
    from harness.judge.result import RunResult

__all__ = [
    "DIAGNOSIS_WINDOWS", "MAX_UNMATCHED_FRACTION", "ContractRun", "ReferenceWindows", "lost_samples",
    "pair_with_reference", "reference_windows", "sample_value_mismatches", "swap",
]

#: Windows the app scored that the harness cannot find in its rebuild, beyond which parity is not judged.
MAX_UNMATCHED_FRACTION = 0.05
#: How many mismatching windows a diagnosis tries each known mistake on.
DIAGNOSIS_WINDOWS = 8


@dataclass
class ReferenceWindows:
    """The anomaly model's input [CONTEXT_S, 10] for every second the harness rebuilt from the UART's bytes
    (the last WINDOW_S rows are the fuel and behaviour window), keyed by the window's last sample time in ms."""

    contexts: dict[int, np.ndarray]
    source: str
    sample_times_ms: list[int] = field(default_factory=list)  # every sample the tap carried, in order
    tap_stats: DecoderStats | None = None  # the tap decoder's counters (CRC errors, bytes skipped, ...)

    def samples_until(self, t_s: float) -> int:
        """How many samples the tap carried up to scenario time `t_s` (the app's `samples_received` then)."""
        return bisect.bisect_right(self.sample_times_ms, int(round(t_s * 1000)))

    def context(self, t_s: float) -> np.ndarray | None:
        return self.contexts.get(int(round(t_s * 1000)))

    def window(self, t_s: float) -> np.ndarray | None:
        context = self.context(t_s)
        return None if context is None else context[-WINDOW_S:]

    def __len__(self) -> int:
        return len(self.contexts)


#: OBD-II service 01 (J1979): the request and answer IDs, the PID that opens a poll cycle, and each PID's signal
#: and formula on the answer's data bytes A, B (docs/link.md; DESIGN.md "Interfaces and contracts").
OBD_REQUEST_ID, OBD_ANSWER_ID, FIRST_PID = 0x7DF, 0x7E8, 0x0D
OBD_FORMULAS: dict[int, tuple[str, object]] = {
    0x0D: ("vehicle_speed", lambda a, b: float(a)),
    0x0C: ("engine_rpm", lambda a, b: (256 * a + b) / 4.0),
    0x11: ("throttle_position", lambda a, b: 100.0 * a / 255.0),
    0x05: ("coolant_temp", lambda a, b: a - 40.0),
    0x2F: ("fuel_level", lambda a, b: 100.0 * a / 255.0),
}
_COLUMN = {name: i for i, name in enumerate(SIGNALS)}


def _obd_samples(records: list) -> dict[int, tuple[int, np.ndarray]]:
    """raw-can-v1: second (the poll cycle's number) -> (its time in ms, its sample), from the OBD-II requests and
    answers."""
    samples: dict[int, tuple[int, np.ndarray]] = {}
    cycle, row = -1, None
    for record in records:
        if not isinstance(record, CanFrame) or record.is_extended:
            continue
        data = record.data
        if record.can_id == OBD_REQUEST_ID and len(data) >= 3 and data[2] == FIRST_PID:
            if row is not None:
                samples[cycle] = (cycle * 1000, row)
            cycle += 1
            row = np.full(len(SIGNALS), np.nan)
        elif (row is not None and record.can_id == OBD_ANSWER_ID and len(data) >= 4 and data[1] == 0x41
              and data[2] in OBD_FORMULAS and data[0] >= 2 + (2 if data[2] == 0x0C else 1)):
            name, formula = OBD_FORMULAS[data[2]]
            row[_COLUMN[name]] = formula(data[3], data[4] if len(data) > 4 else 0)
    return samples


def _link_samples(records: list) -> dict[int, tuple[int, np.ndarray]]:
    """dtg-link-v2: second (the record's `t_ms`, rounded) -> (`t_ms`, the firmware's sample); a later record of the
    same second replaces an earlier one."""
    return {int(round(r.t_ms / 1000.0)): (r.t_ms, np.array([np.nan if v is None else v for v in r.values], dtype=float))
            for r in records if isinstance(r, SampleRecord)}


def reference_windows(uart: bytes, codec: str, profile: str) -> ReferenceWindows:
    """Rebuild the app's inputs from the UART's bytes by the documented rule (the module docstring): decode with the
    declared codec, rebuild the 1 Hz samples, and cut a window at every sample from the `WINDOW_S`-th second on."""
    records, stats = _decode(uart, codec)
    samples = _obd_samples(records) if codec == "raw-can-v1" else _link_samples(records)
    contexts: dict[int, np.ndarray] = {}
    if samples:
        first, last = min(samples), max(samples)
        # Every second from CONTEXT_S before the first sample to the last, NaN where no sample came.
        series = np.full((last - first + CONTEXT_S, len(SIGNALS)), np.nan, dtype=np.float32)
        for second, (_, row) in samples.items():
            series[second - first + CONTEXT_S - 1] = row
        for second, (t_ms, _) in samples.items():
            if second - first + 1 >= WINDOW_S:
                end = second - first + CONTEXT_S  # exclusive: the row of `second` is end - 1
                contexts[t_ms] = series[end - CONTEXT_S:end].copy()
    return ReferenceWindows(contexts, f"the UART tap's bytes decoded as {codec}, samples and windows rebuilt by "
                                      f"the documented rule", sorted(t_ms for t_ms, _ in samples.values()), stats)


def sample_value_mismatches(uart: bytes, codec: str, profile: str, max_age_s: float = 1.5) -> dict[str, tuple]:
    """dtg-link-v2 on OBD-II: each bus signal of the firmware's sample records against the last OBD-II answer the
    same stream forwarded before it (at most `max_age_s` older). Signal -> (mismatching samples, compared samples,
    median of sample / answer); only signals with a mismatch. Tolerance: the sample field's resolution (docs/link.md).
    """
    if codec == "raw-can-v1" or profile != "obd2":
        return {}
    records, _ = _decode(uart, codec)
    latest: dict[str, tuple[float, float]] = {}  # signal -> (time s, value)
    compared: dict[str, list[tuple[float, float]]] = {}
    for record in records:
        if isinstance(record, CanFrame):
            data = record.data
            if (record.can_id == OBD_ANSWER_ID and not record.is_extended and len(data) >= 4 and data[1] == 0x41
                    and data[2] in OBD_FORMULAS):
                name, formula = OBD_FORMULAS[data[2]]
                latest[name] = (record.timestamp_s or 0.0, formula(data[3], data[4] if len(data) > 4 else 0))
        elif isinstance(record, SampleRecord):
            t_s = record.t_ms / 1000.0
            for name, (seen_s, value) in latest.items():
                sampled = record.values[_COLUMN[name]]
                if sampled is not None and t_s - seen_s <= max_age_s:
                    compared.setdefault(name, []).append((sampled, value))
    out = {}
    for name, pairs in compared.items():
        got = np.array(pairs, dtype=float)
        bad = np.abs(got[:, 0] - got[:, 1]) > 0.02 + 1e-4 * np.abs(got[:, 1])
        if bad.sum() > max(1, 0.01 * len(got)):
            nonzero = got[bad & (np.abs(got[:, 1]) > 1e-9)]
            ratio = float(np.median(nonzero[:, 0] / nonzero[:, 1])) if len(nonzero) else float("nan")
            out[name] = (int(bad.sum()), len(got), ratio)
    return out


def _decode(uart: bytes, codec: str) -> tuple[list, DecoderStats]:
    decoder = get_codec(codec).decoder()
    records = [item.record for item in decoder.feed(uart)] + [item.record for item in decoder.finish()]
    return records, decoder.stats


@dataclass
class ContractRun:
    """One scenario run with what the checks need: its events, the tap's bytes and the harness's windows."""

    name: str
    events: list[Event]
    uart: bytes | None
    codec: str
    reference: ReferenceWindows | None
    result: RunResult | None = None  # when it came from run_scenario
    error: str | None = None  # why the run ended early (the silence watchdog, data loss), when it did
    profile: str = "obd2"  # the vehicle profile the bus spoke

    @classmethod
    def from_events(cls, name: str, events: Sequence[Event], uart: bytes | None, codec: str,
                    profile: str = "obd2") -> ContractRun:
        reference = reference_windows(uart, codec, profile) if uart is not None else None
        return cls(name, list(events), uart, codec, reference, profile=profile)


def lost_samples(run: ContractRun) -> str | None:
    """The app counted fewer samples (its last status line) than the tap carried up to that time."""
    status = next((e for e in reversed(run.events) if isinstance(e, AppStatus)), None)
    if run.reference is None or status is None or status.t_s is None:
        return None
    carried = run.reference.samples_until(status.t_s)
    lost = carried - status.samples_received
    if lost <= max(1, 0.001 * carried):
        return None
    return (f"the app lost {lost} samples: its status at t={status.t_s:g} s counts {status.samples_received} "
            f"received where the tap carried {carried} by then (the link decoded them: the app drops samples)")


def pair_with_reference(results: list, reference: ReferenceWindows) -> tuple[list, list, int]:
    """(the results whose window the harness rebuilt, those windows, how many results had none)."""
    kept, contexts = [], []
    for result in results:
        context = reference.context(result.t_s)
        if context is not None:
            kept.append(result)
            contexts.append(context)
    return kept, contexts, len(results) - len(kept)


def swap(n: int, i: int, j: int) -> list[int]:
    """The order of n items with items i and j swapped: a known mistake the diagnoses try."""
    order = list(range(n))
    order[i], order[j] = j, i
    return order
