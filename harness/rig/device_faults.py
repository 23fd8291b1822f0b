"""Device and link faults of a run: the app dies, the firmware restarts, the UART is pulled, the device goes quiet.

A run takes a fault schedule, ``run_scenario(..., faults=[DeviceFault("app_killed", at_s=300)])``; each fault
fires at its scenario time on the run's clock (`FaultInjector`), through the rig's own parts:

- `app_killed`: the app's process dies: the app simulator stops reading, scoring and logging at once; on the adb
  stand-in the simulated phone kills the app's process (its low-memory killer). The run ends with a `RunError`
  naming the dead process (the watchdog in `harness.run.watch`).
- `firmware_restart`: the STM32 resets (`Stm32Sim.restart`): down for `duration_s` (default 2 s), then it boots
  with the link's sequence number at 0 and its decoded values lost. Judged normally; the accounting shows the
  restart, the sequence reset and the seconds without a sample.
- `uart_disconnect`: the UART cable is pulled for `duration_s` (default 10 s): whatever the firmware writes
  meanwhile is lost (`UartLine`). Judged normally; the accounting shows the frames lost by sequence number, the
  samples sent but not received and the seconds without a sample.
- `power_cycle`: the unit's power is cut for `duration_s` (default 2 s), then restored: on a real STM32 only, through
  the rig file's power command (`harness.run.bench_stage`); a real bench maps `firmware_restart` to its reset command
  and `uart_disconnect` to its UART relay command.
- `logging_stopped`: the device's logger takes no more lines (the app still runs): no EdgeAI line reaches the
  harness from `at_s` on; on the adb stand-in the simulated phone's log is silenced. The run ends with a
  `RunError` once no line came for `max_silence_s` of scenario time: "no EdgeAI lines since t=..."

A model file that is corrupt or whose hash differs from the manifest is not a scheduled fault: `ModelSet.open`
refuses it, and `run_scenario` checks the files' hashes again before it starts anything (`check_model_files`).

What is not modelled: a restart's effect on the CAN bus (the simulated firmware's controller simply reads
nothing while down), a pty hang-up (the simulated cable loses bytes; the app's port stays open), a real
phone's faults (`app_killed` and `logging_stopped` need the adb stand-in or the simulated app; a real rig
refuses them before the run).
"""
from __future__ import annotations

import math
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass

from harness.core.worker import Worker, WorkerError
from harness.inference.models import sha256_file

__all__ = ["DEFAULT_DURATION_S", "DEVICE_FAULT_KINDS", "DeviceFault", "DeviceFaultError", "FaultInjector",
           "FiredFault", "UartLine", "check_model_files"]

#: What each fault does (the table in the module docstring has the details).
DEVICE_FAULT_KINDS: dict[str, str] = {
    "app_killed": "the app's process dies mid-run",
    "firmware_restart": "the STM32 restarts: down for duration_s, then its link sequence starts again",
    "uart_disconnect": "the UART is disconnected for duration_s, then reconnected",
    "logging_stopped": "the device stops logging (the app runs on)",
    "power_cycle": "the unit's power is cut for duration_s, then restored (a real STM32 with a power command)",
}
#: `duration_s` when a fault has one and the schedule gives none.
DEFAULT_DURATION_S: dict[str, float] = {"firmware_restart": 2.0, "uart_disconnect": 10.0, "power_cycle": 2.0}


class DeviceFaultError(WorkerError):
    """A fault could not be injected (the rig has no way to), or the injector failed."""


@dataclass(frozen=True)
class DeviceFault:
    """One scheduled fault: `kind` (one of `DEVICE_FAULT_KINDS`) at scenario time `at_s`; `duration_s` for the
    faults that end (`DEFAULT_DURATION_S`), ignored by the others."""

    kind: str
    at_s: float
    duration_s: float | None = None

    def __post_init__(self) -> None:
        if self.kind not in DEVICE_FAULT_KINDS:
            raise ValueError(f"unknown device fault {self.kind!r}; expected one of: {', '.join(DEVICE_FAULT_KINDS)}")
        if not (isinstance(self.at_s, (int, float)) and math.isfinite(self.at_s) and self.at_s >= 0):
            raise ValueError(f"device fault {self.kind}: at_s must be a finite number >= 0, got {self.at_s!r}")
        if self.duration_s is not None and not (isinstance(self.duration_s, (int, float))
                                                and math.isfinite(self.duration_s) and self.duration_s >= 0):
            raise ValueError(f"device fault {self.kind}: duration_s must be a finite number >= 0, "
                             f"got {self.duration_s!r}")

    @property
    def lasts_s(self) -> float | None:
        """How long the fault lasts (scenario seconds), for the kinds that end; None for the others."""
        if self.kind not in DEFAULT_DURATION_S:
            return None
        return DEFAULT_DURATION_S[self.kind] if self.duration_s is None else float(self.duration_s)


@dataclass(frozen=True)
class FiredFault:
    """A fault as it happened: scheduled at `at_s`, injected at `fired_at_s` (the run's clock), lasting `lasts_s`."""

    kind: str
    at_s: float
    fired_at_s: float
    lasts_s: float | None = None

    def to_json(self) -> dict:
        return {key: (round(value, 3) if isinstance(value, float) else value) for key, value in asdict(self).items()}


#: What the injector calls to start a fault (the run binds these to its parts), and to end one that lasts.
Action = Callable[[DeviceFault], None]


class FaultInjector(Worker):
    """Fires each fault of `faults` at its scenario time on `clock`, calling `start[kind]` (and, for faults that
    last, `end[kind]` after `lasts_s`). `check()` refuses a schedule the rig has no action for, before a run.
    `fired` lists what happened; a failing action ends the injector with the error (`error`, `stop()`)."""

    error_type = DeviceFaultError

    def __init__(self, faults: Sequence[DeviceFault], clock, start: Mapping[str, Action],
                 end: Mapping[str, Action] | None = None, rig_name: str = "the rig") -> None:
        super().__init__("device-faults")
        self._clock = clock
        self._start = dict(start)
        self._end = dict(end or {})
        self._rig_name = rig_name
        steps: list[tuple[float, int, str, DeviceFault]] = []
        for i, fault in enumerate(faults):
            steps.append((float(fault.at_s), i, "start", fault))
            if fault.lasts_s is not None and fault.kind in self._end:
                steps.append((float(fault.at_s) + fault.lasts_s, i, "end", fault))
        self._steps = sorted(steps, key=lambda step: (step[0], step[1], step[2] != "start"))
        self._lock = threading.Lock()
        self._fired: list[FiredFault] = []
        self._next_step = 0  # on virtual time: the first of `_steps` not fired yet
        self.check(faults)

    def check(self, faults: Sequence[DeviceFault]) -> None:
        missing = sorted({fault.kind for fault in faults if fault.kind not in self._start})
        if missing:
            raise DeviceFaultError(f"{self._rig_name} cannot inject {', '.join(missing)}: it can inject "
                                   f"{', '.join(sorted(self._start)) or 'no device fault'}")

    @property
    def fired(self) -> list[FiredFault]:
        with self._lock:
            return list(self._fired)

    def _work(self) -> None:
        for at_s, _, step, fault in self._steps:
            if not self._clock.sleep_until(at_s, cancel=self._stop_requested):
                return
            self._fire(step, fault, self._clock.now_s())

    def _fire(self, step: str, fault: DeviceFault, now_s: float) -> None:
        if step == "start":
            self._start[fault.kind](fault)
            with self._lock:
                self._fired.append(FiredFault(fault.kind, float(fault.at_s), now_s, fault.lasts_s))
        else:
            self._end[fault.kind](fault)

    # -- on virtual time (harness.run.scheduler) --------------------------------------------------------------------

    def step(self, now_s: float) -> bool:
        """On virtual time (`start_stepped`): fire every step due by `now_s`, in order; True if any fired."""
        did = False
        while self._next_step < len(self._steps) and self._steps[self._next_step][0] <= now_s:
            _, _, step, fault = self._steps[self._next_step]
            self._next_step += 1
            self._fire(step, fault, now_s)
            did = True
        return did

    def next_due_s(self) -> float:
        return self._steps[self._next_step][0] if self._next_step < len(self._steps) else math.inf


class UartLine:
    """The UART cable between the firmware and the app, as a byte sink that can be pulled out: while
    disconnected every write goes nowhere (counted in `bytes_dropped`, `writes_dropped`). The firmware writes
    whole frames per write, so the app's decoder picks up at a frame boundary after `connect()`."""

    def __init__(self, sink) -> None:
        self._sink = sink
        self._connected = True
        self.bytes_dropped = 0
        self.writes_dropped = 0
        self.disconnections = 0

    @property
    def connected(self) -> bool:
        return self._connected

    def disconnect(self) -> None:
        if self._connected:
            self._connected = False
            self.disconnections += 1

    def connect(self) -> None:
        self._connected = True

    def write(self, data: bytes | bytearray | memoryview) -> int:
        if not self._connected:
            self.bytes_dropped += len(data)
            self.writes_dropped += 1
            return len(data)
        return self._sink.write(data)

    def flush(self) -> None:
        flush = getattr(self._sink, "flush", None)
        if flush is not None:
            flush()


def check_model_files(manifest) -> None:
    """Hash every model file of an opened manifest again; raise ValueError naming the file and both hashes when
    one changed since `ModelSet.open` checked it (or is gone)."""
    for name, entry in manifest.models.items():
        try:
            actual = sha256_file(entry.path)
        except OSError as error:
            raise ValueError(f"model '{name}' file {entry.path}: cannot read it: {error.strerror}") from None
        if actual != entry.sha256:
            raise ValueError(f"model '{name}' file {entry.path}: sha256 {actual} differs from the manifest's "
                             f"{entry.sha256} ({manifest.path}); refusing to run with it")

