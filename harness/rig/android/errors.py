"""The Android driver's errors: every failure of a call to the device is an `AdbError` (a DtgHilError and a
RuntimeError) with `serial`, `command` (the shell command line or adb service the driver sent, without its
exit-status marker; ``push SRC -> DST`` for a transfer), `output` (what came back, so far), `returncode` (None
when unknown) and `kind`; its message names them all::

    harness.rig.android.errors.AppDied: com.example.dtg is not running any more (its last pid was 4321). Logcat:
    01-15 10:23:45.123  1127  1154 I ActivityManager: Process com.example.dtg (pid 4321) has died: fg TOP
      device:  127.0.0.1:40001
      command: pidof com.example.dtg
      exit status: 1
      output:  ''

Kinds, one subclass each: ``unreachable`` (`DeviceUnreachable`: no adb server, unknown serial, connect
refused, offline or unauthorized before the driver ever reached it), ``device_lost`` (`DeviceLost`, a
`DeviceUnreachable`: the device was reached once and is now offline or gone, or a call's connection was cut),
``timeout`` (`CommandTimeout`: no answer within the call's timeout), ``command_failed`` (`CommandFailed`: a
non-zero exit status or a failure message), ``hash_mismatch`` (`HashMismatch`), ``app_died`` (`AppDied`),
``logcat_stream`` (`LogcatStreamError`: a stream used out of order, or its `on_line` raised) and ``closed``
(the driver was used after `close()`). A model file on the host that differs from its manifest is a
`harness.inference.models.ManifestError` (a ValueError), raised before anything is sent.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from harness.core.errors import DtgHilError
from harness.core.worker import WorkerError

__all__ = [
    "AdbError",
    "AppDied",
    "CommandFailed",
    "CommandTimeout",
    "DeviceLost",
    "DeviceUnreachable",
    "HashMismatch",
    "LogcatStreamError",
    "ModelMismatch",
]


class AdbError(DtgHilError, RuntimeError):
    """A call to the device failed. `serial`, `command`, `output` (what came back so far), `returncode` (None
    when unknown) and `kind` say what happened; the message names them all."""

    kind = "adb"

    def __init__(self, reason: str, *, serial: str | None = None, command: str | None = None,
                 output: str = "", returncode: int | None = None, kind: str | None = None) -> None:
        self.reason = reason
        self.serial = serial
        self.command = command
        self.output = output
        self.returncode = returncode
        if kind is not None:
            self.kind = kind
        super().__init__(self._render())

    def _render(self) -> str:
        lines = [self.reason]
        if self.serial is not None:
            lines.append(f"  device:  {self.serial}")
        if self.command is not None:
            lines.append(f"  command: {self.command}")
            lines.append(f"  exit status: {'unknown' if self.returncode is None else self.returncode}")
            output = self.output if len(self.output) <= 2000 else "..." + self.output[-2000:]
            lines.append(f"  output:  {output!r}")
        return "\n".join(lines)


class DeviceUnreachable(AdbError):
    """The adb server cannot reach the device (or there is no adb server): unknown serial, connect refused,
    offline, unauthorized."""

    kind = "unreachable"


class DeviceLost(DeviceUnreachable):
    """The device was reached once and is now offline or gone, or a call's connection was cut (USB loss,
    reboot, adbd restart)."""

    kind = "device_lost"


class CommandTimeout(AdbError):
    """No answer within the call's timeout (a hung shell, a stalled transfer, a wedged adbd)."""

    kind = "timeout"


class CommandFailed(AdbError):
    """The device answered, and the answer is a failure: non-zero exit status or a failure message."""

    kind = "command_failed"


@dataclass(frozen=True)
class ModelMismatch:
    """One file whose on-device sha256 is not the manifest's; `actual` is None when the file is missing."""

    model: str
    device_path: str
    expected: str
    actual: str | None

    def describe(self) -> str:
        if self.actual is None:
            return (f"model '{self.model}': {self.device_path} is missing on the device (manifest sha256 "
                    f"{self.expected})")
        return (f"model '{self.model}': {self.device_path} has sha256 {self.actual} on the device, the manifest "
                f"says {self.expected}")


class HashMismatch(AdbError):
    """Files on the device differ from the manifest. `mismatches` lists every one; `model`, `device_path`,
    `expected` and `actual` are the first one's."""

    kind = "hash_mismatch"

    def __init__(self, mismatches: Sequence[ModelMismatch], manifest_path: Path, *, serial: str,
                 command: str, output: str, returncode: int | None) -> None:
        self.mismatches = list(mismatches)
        first = self.mismatches[0]
        self.model, self.device_path, self.expected, self.actual = (first.model, first.device_path, first.expected,
                                                                    first.actual)
        self.manifest_path = manifest_path
        reason = (f"refused: {len(self.mismatches)} file(s) on {serial} do not match {manifest_path}:\n"
                  + "\n".join(f"    {m.describe()}" for m in self.mismatches))
        super().__init__(reason, serial=serial, command=command, output=output, returncode=returncode)


class AppDied(AdbError):
    """An app the driver started is not running any more (crash, low-memory kill, reboot). `package`,
    `last_pid` (None if the driver never saw it run) and `pid` (a new pid if it was restarted, else None)."""

    kind = "app_died"

    def __init__(self, reason: str, *, package: str, last_pid: int | None, pid: int | None = None,
                 **details) -> None:
        self.package = package
        self.last_pid = last_pid
        self.pid = pid
        super().__init__(reason, **details)


class LogcatStreamError(AdbError, WorkerError):
    """A logcat stream was used out of order or did not stop in time."""

    kind = "logcat_stream"
