"""The harness's own view of the windows the app scored, rebuilt from the UART tap's bytes, and a scenario run
with what the checks need (`ContractRun`).

The windows are rebuilt by the rule every app follows (docs/events.md), with the same `SampleAssembler` and
`WindowBuffer` the app simulator runs; the parity checks pair each result the app logged with the window of the
same last-sample time (`pair_with_reference`). Running a scenario to get these inputs is `harness.run.contract`.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from firmware_sim.phone.app import SampleAssembler, WindowBuffer
from harness.inference.features import CONTEXT_S, WINDOW_S
from harness.wire.events import Event
from harness.wire.link import get_codec

if TYPE_CHECKING:
    from harness.judge.result import RunResult

__all__ = [
    "DIAGNOSIS_WINDOWS", "MAX_UNMATCHED_FRACTION", "ContractRun", "ReferenceWindows", "pair_with_reference",
    "reference_windows", "swap",
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


@dataclass
class ContractRun:
    """One scenario run with what the checks need: its events, the tap's bytes and the harness's windows."""

    name: str
    events: list[Event]
    uart: bytes | None
    codec: str
    reference: ReferenceWindows | None
    result: RunResult | None = None  # when it came from run_scenario

    @classmethod
    def from_events(cls, name: str, events: Sequence[Event], uart: bytes | None, codec: str,
                    profile: str = "obd2") -> ContractRun:
        reference = reference_windows(uart, codec, profile) if uart is not None else None
        return cls(name, list(events), uart, codec, reference)


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
