"""A simulated Android device that speaks the real ADB wire protocol on a loopback TCP port.

It stands in for the phone of the loopback rig: the real adb server connects to it (``adb connect
127.0.0.1:PORT``, exactly as to a phone in wireless-debugging mode), and ``adb shell``/``push``/``pull`` and
adbutils drive it as they drive a phone, so the harness's real-device code path runs in CI. `docs/adbd.md`
says how to start it.

What it models:

- the ADB transport protocol (AOSP ``packages/modules/adb/protocol.txt``): 24-byte little-endian headers
  (command, arg0, arg1, data length, data checksum, magic = command ^ 0xffffffff), CNXN without AUTH (a device
  with ``ro.adb.secure=0``), version 0x01000001 with a negotiated maximum payload (256 KiB by default, the
  server's 1 MiB being the ceiling), OPEN/OKAY/WRTE/CLSE streams with one-WRTE-in-flight flow control, many
  streams per connection and many connections at once. The banner advertises only ``fixed_push_mkdir``, so
  the server uses the legacy shell (no ``shell_v2``), sync v1 (no ``stat_v2``/``ls_v2``/``sendrecv_v2``) and
  no delayed acks, which is everything implemented here;
- services ``shell:<command>`` and ``exec:<command>`` (raw: stdout and stderr on one stream, no exit status
  channel, as a legacy adbd), ``sync:`` (STAT, LIST, SEND with DATA/DONE and the file mode, RECV, QUIT;
  SYNC.TXT), ``reboot:``;
- a small shell (`parse_command_line`): words with '…', "…" and backslash quoting, ``$?``/``$$``/``$VAR``,
  ``NAME=value``, ``*``/``?``/``[…]`` globs, ``;``, ``&&``, ``||``, redirections ``>``, ``>>``, ``2>``,
  ``2>&1``, ``/dev/null`` and ``<`` (checked, never read), and the commands echo, getprop, ls, cat, rm, mkdir,
  touch, sha256sum, cd, pwd, export, exec, true, false, sleep, id, whoami, pidof, logcat, pm (install,
  uninstall, list packages, path, clear), am (start, force-stop), monkey and reboot, with toybox-style
  messages and exit statuses;
  anything else is ``/system/bin/sh: <cmd>: inaccessible or not found`` with status 127;
- a file system sandboxed in a host directory (`DeviceFileSystem`): every device path is normalised before it
  is mapped, so ``..`` never leaves the sandbox; the shell user may write below /data/local/tmp and /sdcard
  only (elsewhere: "Read-only file system" or "Permission denied");
- packages and apps: ``pm install`` reads the package name from an APK that is a zip holding
  ``dtg-package.txt`` (`build_apk` makes one); ``am start`` starts the app made by the factory registered for
  that package (`SimApp`, `DeviceContext`); an app whose ``alive`` turns False dies, with ActivityManager's
  "Process <pkg> (pid N) has died" line in logcat;
- logcat: one ring buffer of `LogEntry` lines (buffers main, system and crash), formats brief, process, tag,
  raw, time and threadtime (the default), filter specs (``-s EdgeAI``, ``EdgeAI:I *:S``), ``-c``, ``-d``,
  ``-t N``, ``-T N``, ``-b``, ``--pid``, and streaming until the client closes;
- fault injection for the harness's own tests: `hang_shell`, `drop_connections`, `reboot`, `kill_app`,
  `stop_logging`.

What it does NOT model: authentication (AUTH, RSA keys, TLS/STLS pairing), USB, ``shell_v2`` (so no separate
stderr and no exit status through adb: adbutils' ``shell2`` gets it from its appended ``echo $?``), sync v2,
compression, delayed acks, interactive shells and ptys, pipes and background jobs, forwarding
(``tcp:``, ``localabstract:``, ``reverse:``), ``root:``/``remount:``/``tcpip:``, ``abb``/``cmd`` (``adb install``
therefore takes adb's legacy path: push, then ``pm install``), Android permissions beyond "the shell user may
write in /data/local/tmp and /sdcard", symbolic links (a pushed symlink is refused), file ownership, real APK
parsing or signatures, processes other than the apps (no ``ps``, no ``kill``), logcat's chatty/rate limits and
per-buffer sizes, and time: the device clock is the host clock.
"""
from __future__ import annotations

import errno
import hashlib
import io
import itertools
import logging
import os
import posixpath
import re
import select
import shutil
import socket
import stat
import struct
import tempfile
import threading
import time
import zipfile
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Protocol

from harness.core.errors import DtgHilError
from harness.core.worker import Worker, WorkerError

__all__ = [
    "A_CLSE",
    "A_CNXN",
    "A_OKAY",
    "A_OPEN",
    "A_VERSION",
    "A_WRTE",
    "APK_PACKAGE_ENTRY",
    "DEFAULT_MAX_PAYLOAD",
    "DEFAULT_PROPS",
    "DEVICE_FEATURES",
    "LOGCAT_FORMATS",
    "AdbMessage",
    "AdbProtocolError",
    "AdbdError",
    "ApkError",
    "AppFactory",
    "DeviceContext",
    "DeviceFileSystem",
    "LogBuffer",
    "LogEntry",
    "LogFilter",
    "ShellSyntaxError",
    "SimAndroidDevice",
    "SimApp",
    "SimpleCommand",
    "build_apk",
    "decode_message",
    "encode_message",
    "format_log_entry",
    "parse_command_line",
    "payload_checksum",
    "read_apk_package",
]

_log = logging.getLogger(__name__)


class AdbdError(WorkerError):
    """The simulated device was misused (used after stop, unknown package), failed, or did not stop in time."""


class AdbProtocolError(AdbdError):
    """A message on the wire broke the ADB protocol (bad magic, checksum, oversized payload)."""


# --- the wire ------------------------------------------------------------------------------------------------

A_SYNC = 0x434E5953
A_CNXN = 0x4E584E43
A_AUTH = 0x48545541
A_OPEN = 0x4E45504F
A_OKAY = 0x59414B4F
A_CLSE = 0x45534C43
A_WRTE = 0x45545257
A_STLS = 0x534C5453
_COMMAND_NAMES = {A_SYNC: "SYNC", A_CNXN: "CNXN", A_AUTH: "AUTH", A_OPEN: "OPEN", A_OKAY: "OKAY",
                  A_CLSE: "CLSE", A_WRTE: "WRTE", A_STLS: "STLS"}

A_VERSION_MIN = 0x01000000
#: From this version on (Android 9 / adb 1.0.40) neither side computes nor checks data checksums.
A_VERSION_SKIP_CHECKSUM = 0x01000001
A_VERSION = 0x01000001
MAX_PAYLOAD_V1 = 4 * 1024
#: The adb server offers 1 MiB; adbd offers 256 KiB (1 MiB on newer releases). The smaller one is used.
MAX_PAYLOAD = 1024 * 1024
DEFAULT_MAX_PAYLOAD = 256 * 1024
_HEADER = struct.Struct("<6I")
HEADER_SIZE = _HEADER.size

#: Banner features. Only what is implemented: no shell_v2, stat_v2, ls_v2, sendrecv_v2, cmd, abb or
#: delayed_ack, so the server and adb client fall back to the legacy protocols this device speaks.
#: fixed_push_mkdir: SEND creates missing parent directories (the adb client would mkdir them otherwise).
DEVICE_FEATURES: tuple[str, ...] = ("fixed_push_mkdir",)


@dataclass(frozen=True)
class AdbMessage:
    """One transport message: a command with two arguments and a payload."""

    command: int
    arg0: int
    arg1: int
    payload: bytes = b""

    @property
    def name(self) -> str:
        return _COMMAND_NAMES.get(self.command, f"{self.command:#010x}")


def payload_checksum(payload: bytes) -> int:
    """The protocol's "crc32", which is in fact the byte sum of the payload modulo 2**32.

    >>> payload_checksum(b"host::\\x00")
    562
    """
    return sum(payload) & 0xFFFFFFFF


def encode_message(message: AdbMessage) -> bytes:
    """Header and payload as sent on the wire (the checksum is always filled in: correct is never wrong)."""
    return _HEADER.pack(message.command, message.arg0, message.arg1, len(message.payload),
                        payload_checksum(message.payload), message.command ^ 0xFFFFFFFF) + message.payload


def _decode_header(header: bytes) -> tuple[int, int, int, int, int]:
    command, arg0, arg1, length, check, magic = _HEADER.unpack(header)
    if magic != command ^ 0xFFFFFFFF:
        raise AdbProtocolError(f"bad magic {magic:#010x} for command {command:#010x} "
                               f"(expected {command ^ 0xFFFFFFFF:#010x})")
    return command, arg0, arg1, length, check


def decode_message(data: bytes, *, verify_checksum: bool = True) -> AdbMessage:
    """Read one whole message (header and payload); `AdbProtocolError` if it is malformed.

    >>> decode_message(encode_message(AdbMessage(A_OKAY, 1, 2)))
    AdbMessage(command=1497451343, arg0=1, arg1=2, payload=b'')
    """
    if len(data) < HEADER_SIZE:
        raise AdbProtocolError(f"message of {len(data)} bytes is shorter than the {HEADER_SIZE}-byte header")
    command, arg0, arg1, length, check = _decode_header(data[:HEADER_SIZE])
    payload = bytes(data[HEADER_SIZE:])
    if len(payload) != length:
        raise AdbProtocolError(f"header says {length} payload bytes, got {len(payload)}")
    if verify_checksum and payload_checksum(payload) != check:
        raise AdbProtocolError(f"payload checksum {payload_checksum(payload):#x} != header's {check:#x}")
    return AdbMessage(command, arg0, arg1, payload)


# --- the sandboxed file system -----------------------------------------------------------------------------

#: Where the shell user (and adb push) may write, as on a production phone.
WRITABLE_DIRS: tuple[str, ...] = ("/data/local/tmp", "/sdcard")
_SKELETON_DIRS = ("/data/local/tmp", "/data/app", "/sdcard", "/system/bin", "/vendor")


def _os_error(code: int, path: str) -> OSError:
    return OSError(code, os.strerror(code), path)


class DeviceFileSystem:
    """Device paths mapped into a host directory. Paths are normalised first (``..`` stops at ``/``), and the
    mapped host path is checked to be inside the root after resolving links, so no device path leaves it."""

    def __init__(self, root: str | os.PathLike) -> None:
        self.root = Path(root).resolve()

    def create_skeleton(self) -> None:
        for directory in _SKELETON_DIRS:
            self.host_path(directory).mkdir(parents=True, exist_ok=True)

    @staticmethod
    def normalize(path: str, cwd: str = "/") -> str:
        """The absolute device path `path` names from `cwd`.

        >>> DeviceFileSystem.normalize("../../../../etc/passwd", "/data/local/tmp")
        '/etc/passwd'
        >>> DeviceFileSystem.normalize("//sdcard/./x/")
        '/sdcard/x'
        """
        joined = posixpath.join(cwd or "/", path)
        return "/" + posixpath.normpath(joined).lstrip("/")

    def host_path(self, path: str, cwd: str = "/") -> Path:
        device_path = self.normalize(path, cwd)
        if "\0" in device_path:
            raise _os_error(errno.EINVAL, path.replace("\0", "\\0"))
        host = self.root.joinpath(*[part for part in device_path.split("/") if part])
        resolved = os.path.realpath(host)
        if resolved != str(self.root) and not resolved.startswith(str(self.root) + os.sep):
            raise _os_error(errno.EACCES, path)  # a link inside the sandbox pointing out of it
        return host

    def check_writable(self, path: str, cwd: str = "/") -> None:
        """Raise the OSError a phone's shell user gets when writing `path` outside /data/local/tmp and /sdcard."""
        device_path = self.normalize(path, cwd)
        if any(device_path.startswith(directory + "/") for directory in WRITABLE_DIRS):
            return
        top = device_path.split("/")[1]
        raise _os_error(errno.EACCES if top == "data" else errno.EROFS, path)


# --- logcat ---------------------------------------------------------------------------------------------------

_PRIORITY_ORDER = "VDIWEFS"  # S (silent) only in filters
_PRIORITY_BY_NUMBER = {2: "V", 3: "D", 4: "I", 5: "W", 6: "E", 7: "F"}
LOGCAT_FORMATS: tuple[str, ...] = ("brief", "process", "tag", "raw", "time", "threadtime")
_LOG_BUFFERS = ("main", "system", "crash")
#: system_server's pid/tid on this device (ActivityManager's lines).
SYSTEM_SERVER_PID = 1127
_ACTIVITY_MANAGER_TID = 1154


def _priority_letter(priority: str | int) -> str:
    if isinstance(priority, int) and priority in _PRIORITY_BY_NUMBER:
        return _PRIORITY_BY_NUMBER[priority]
    if isinstance(priority, str) and len(priority) == 1 and priority.upper() in "VDIWEF":
        return priority.upper()
    raise ValueError(f"unknown log priority {priority!r}; expected one of V, D, I, W, E, F or 2..7")


@dataclass(frozen=True)
class LogEntry:
    """One logcat line: `seq` counts every line the device ever logged (it survives `-c`)."""

    seq: int
    wall_time_s: float
    pid: int
    tid: int
    priority: str
    tag: str
    message: str
    buffer: str = "main"


def _stamp(wall_time_s: float) -> str:
    moment = datetime.fromtimestamp(wall_time_s)
    return f"{moment:%m-%d %H:%M:%S}.{moment.microsecond // 1000:03d}"


def format_log_entry(entry: LogEntry, fmt: str = "threadtime") -> str:
    """The entry as ``logcat -v <fmt>`` prints it, without the final newline (one printed line per message line).

    >>> e = LogEntry(1, 0.0, 4321, 4350, "I", "EdgeAI", "hello")
    >>> format_log_entry(e, "brief")
    'I/EdgeAI  ( 4321): hello'
    >>> format_log_entry(e, "threadtime")[18:]
    '  4321  4350 I EdgeAI  : hello'
    """
    if fmt not in LOGCAT_FORMATS:
        raise ValueError(f"unknown logcat format {fmt!r}; expected one of: {', '.join(LOGCAT_FORMATS)}")
    p, tag, pid = entry.priority, entry.tag, entry.pid
    lines = []
    for text in entry.message.split("\n"):
        if fmt == "brief":
            lines.append(f"{p}/{tag:<8s}({pid:5d}): {text}")
        elif fmt == "process":
            lines.append(f"{p}({pid:5d}) {text}  ({tag})")
        elif fmt == "tag":
            lines.append(f"{p}/{tag:<8s}: {text}")
        elif fmt == "raw":
            lines.append(text)
        elif fmt == "time":
            lines.append(f"{_stamp(entry.wall_time_s)} {p}/{tag:<8s}({pid:5d}): {text}")
        else:
            lines.append(f"{_stamp(entry.wall_time_s)} {pid:5d} {entry.tid:5d} {p} {tag:<8s}: {text}")
    return "\n".join(lines)


@dataclass(frozen=True)
class LogFilter:
    """logcat's filter specs: ``TAG:P`` shows TAG at priority P and above, ``*:P`` sets the default, S is silent.

    >>> f = LogFilter.parse(["EdgeAI:I", "*:S"])
    >>> f.allows("EdgeAI", "W"), f.allows("EdgeAI", "D"), f.allows("Zygote", "E")
    (True, False, False)
    """

    levels: Mapping[str, str] = field(default_factory=dict)
    default: str = "V"

    @classmethod
    def parse(cls, specs: Sequence[str], *, silent_default: bool = False) -> LogFilter:
        levels: dict[str, str] = {}
        default = "S" if silent_default else "V"
        for spec in specs:
            tag, _, level = spec.rpartition(":") if ":" in spec else (spec, ":", "V")
            level = level.upper() or "V"
            if not tag or level not in _PRIORITY_ORDER or len(level) != 1:
                raise ValueError(f"invalid filter expression {spec!r}; expected TAG[:P] with P one of "
                                 f"{', '.join(_PRIORITY_ORDER)}")
            if tag == "*":
                default = level
            else:
                levels[tag] = level
        return cls(levels, default)

    def allows(self, tag: str, priority: str) -> bool:
        level = self.levels.get(tag, self.default)
        return level != "S" and _PRIORITY_ORDER.index(priority) >= _PRIORITY_ORDER.index(level)


class LogBuffer:
    """The device's log: a ring of `LogEntry` (oldest lines fall out), waited on by streaming readers."""

    def __init__(self, capacity: int = 20000) -> None:
        self._entries: deque[LogEntry] = deque(maxlen=capacity)
        self._seq = 0
        self._cond = threading.Condition()
        #: While True the log accepts no lines (`SimAndroidDevice.stop_logging`).
        self.silenced = False

    def append(self, pid: int, tid: int, priority: str | int, tag: str, message: str,
               buffer: str = "main") -> LogEntry | None:
        letter = _priority_letter(priority)
        with self._cond:
            if self.silenced:
                return None
            self._seq += 1
            entry = LogEntry(self._seq, time.time(), pid, tid, letter, tag, message, buffer)
            self._entries.append(entry)
            self._cond.notify_all()
        return entry

    def clear(self) -> None:
        with self._cond:
            self._entries.clear()

    def entries(self, after_seq: int = 0) -> list[LogEntry]:
        with self._cond:
            return self._newer(after_seq)

    def _newer(self, after_seq: int) -> list[LogEntry]:
        newer = []
        for entry in reversed(self._entries):
            if entry.seq <= after_seq:
                break
            newer.append(entry)
        newer.reverse()
        return newer

    def wait(self, after_seq: int, timeout_s: float) -> list[LogEntry]:
        """Entries after `after_seq`, waiting up to `timeout_s` for one to come."""
        with self._cond:
            newer = self._newer(after_seq)
            if not newer:
                self._cond.wait(timeout_s)
                newer = self._newer(after_seq)
            return newer


# --- packages and apps ----------------------------------------------------------------------------------------

#: The one entry the simulated package manager reads from an APK (a zip): the package name, on its first
#: non-blank line that is not a ``#`` comment.
APK_PACKAGE_ENTRY = "dtg-package.txt"
_PACKAGE_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_]*(\.[A-Za-z][A-Za-z0-9_]*)+")
_SYSTEM_PACKAGES = ("android", "com.android.settings", "com.android.shell", "com.android.systemui")
_FIRST_APP_UID = 10100


class ApkError(DtgHilError, ValueError):
    """An APK the simulated package manager cannot install; the message says why."""


def build_apk(package: str, files: Mapping[str, bytes] | None = None) -> bytes:
    """An APK for the simulated device: a zip with `APK_PACKAGE_ENTRY` naming `package`, plus `files`."""
    if not _PACKAGE_NAME.fullmatch(package):
        raise ApkError(f"invalid package name {package!r}")
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as apk:
        apk.writestr(APK_PACKAGE_ENTRY, package + "\n")
        for name, data in (files or {}).items():
            apk.writestr(name, data)
    return buffer.getvalue()


def read_apk_package(path: str | os.PathLike) -> str:
    """The package name inside an APK made like `build_apk`'s; `ApkError` says what is wrong otherwise."""
    try:
        with zipfile.ZipFile(path) as apk:
            try:
                text = apk.read(APK_PACKAGE_ENTRY).decode("utf-8")
            except KeyError:
                raise ApkError(f"no {APK_PACKAGE_ENTRY} entry") from None
    except zipfile.BadZipFile:
        raise ApkError("not a zip archive") from None
    except UnicodeDecodeError:
        raise ApkError(f"{APK_PACKAGE_ENTRY} is not UTF-8") from None
    lines = [line.strip() for line in text.splitlines() if line.strip() and not line.strip().startswith("#")]
    if not lines:
        raise ApkError(f"{APK_PACKAGE_ENTRY} names no package")
    if not _PACKAGE_NAME.fullmatch(lines[0]):
        raise ApkError(f"invalid package name {lines[0]!r} in {APK_PACKAGE_ENTRY}")
    return lines[0]


class SimApp(Protocol):
    """What an app factory returns. `start()` returns once the app runs (then `alive` is True); `stop()` ends
    it and is called once, when the app is force-stopped, killed, replaced, uninstalled or the device stops or
    reboots. An app whose `alive` turns False by itself has died: the device logs it and does not call stop()."""

    @property
    def alive(self) -> bool: ...

    def start(self) -> None: ...

    def stop(self) -> None: ...


class DeviceContext:
    """What the device gives an app: its package and pid, logcat, and the device's file system.

    `log(tag, priority, message)` appends a line to logcat with this process's pid (as tid too) and the device
    clock; a process that was killed logs nothing more, as on a phone. `host_path("/data/local/tmp/dtg/x")`
    is the host path of a device file (pushed models, configuration).
    """

    def __init__(self, device: SimAndroidDevice, package: str, pid: int) -> None:
        self._device = device
        self.package = package
        self.pid = pid
        self.serial = device.serial
        self.props: Mapping[str, str] = dict(device.props)
        self._alive = True

    def log(self, tag: str, priority: str | int, message: str) -> None:
        if self._alive:
            self._device._logs.append(self.pid, self.pid, priority, tag, message, "main")

    def host_path(self, device_path: str) -> Path:
        return self._device.fs.host_path(device_path)

    def __repr__(self) -> str:
        return f"<DeviceContext {self.package} pid={self.pid} on {self.serial}>"


AppFactory = Callable[[DeviceContext], SimApp]


class _IdleApp:
    """The process of an installed package that has no factory: it runs and does nothing."""

    alive = True

    def start(self) -> None:
        self.alive = True

    def stop(self) -> None:
        self.alive = False


@dataclass
class _Package:
    name: str
    uid: int
    apk_path: str  # device path


@dataclass
class _Process:
    package: str
    pid: int
    context: DeviceContext
    app: SimApp | None = None  # None until its factory returned
    started: bool = False  # its start() returned: from then on `alive` is watched


# --- the shell's language -----------------------------------------------------------------------------------

class ShellSyntaxError(DtgHilError, ValueError):
    """A command line the simulated shell cannot parse (or uses syntax it does not support)."""


@dataclass(frozen=True)
class _Part:
    kind: str  # "lit" or "var"
    text: str
    quoted: bool


_Word = tuple[_Part, ...]


@dataclass(frozen=True)
class _Redirect:
    fd: int  # 0, 1 or 2
    op: str  # "<", ">", ">>" or ">&"
    target: _Word


@dataclass
class SimpleCommand:
    """A command of a command line, its words still unexpanded (``$?`` is read when it runs)."""

    words: list[_Word] = field(default_factory=list)
    redirects: list[_Redirect] = field(default_factory=list)


_GLOB_CHARS = "*?["


def _lex(line: str) -> list[tuple]:
    """Tokens: ("word", parts), ("op", text) and ("redir", fd, op)."""
    tokens: list[tuple] = []
    parts: list[_Part] = []
    in_word = False
    i, n = 0, len(line)

    def flush() -> None:
        nonlocal parts, in_word
        if in_word:
            tokens.append(("word", tuple(parts)))
        parts, in_word = [], False

    def add(kind: str, text: str, quoted: bool) -> None:
        nonlocal in_word
        in_word = True
        if kind == "lit" and parts and parts[-1].kind == "lit" and parts[-1].quoted == quoted:
            parts[-1] = _Part("lit", parts[-1].text + text, quoted)
        else:
            parts.append(_Part(kind, text, quoted))

    def variable(start: int, quoted: bool) -> int:
        """Parse after a '$' at `start`; returns the index after it."""
        if start < n and line[start] in "?$":
            add("var", line[start], quoted)
            return start + 1
        if start < n and line[start] == "{":
            end = line.find("}", start)
            if end < 0:
                raise ShellSyntaxError("${: bad substitution")
            add("var", line[start + 1:end], quoted)
            return end + 1
        match = re.compile(r"[A-Za-z_][A-Za-z0-9_]*").match(line, start)
        if match:
            add("var", match.group(), quoted)
            return match.end()
        add("lit", "$", quoted)
        return start

    while i < n:
        c = line[i]
        if c in " \t":
            flush()
            i += 1
        elif c in ";\n":
            flush()
            tokens.append(("op", ";"))
            i += 1
        elif c == "#" and not in_word:
            end = line.find("\n", i)
            i = n if end < 0 else end
        elif c in "&|":
            flush()
            op = c * 2 if line.startswith(c * 2, i) else c
            tokens.append(("op", op))
            i += len(op)
        elif c in "<>":
            fd = 1
            if c == ">" and in_word and len(parts) == 1 and parts[0].kind == "lit" and not parts[0].quoted \
                    and parts[0].text in ("1", "2"):
                fd = int(parts[0].text)
                parts, in_word = [], False
            flush()
            if c == "<":
                tokens.append(("redir", 0, "<"))
                i += 1
            elif line.startswith(">>", i):
                tokens.append(("redir", fd, ">>"))
                i += 2
            elif line.startswith(">&", i):
                tokens.append(("redir", fd, ">&"))
                i += 2
            else:
                tokens.append(("redir", fd, ">"))
                i += 1
        elif c == "'":
            end = line.find("'", i + 1)
            if end < 0:
                raise ShellSyntaxError("unterminated quoted string")
            add("lit", line[i + 1:end], True)
            i = end + 1
        elif c == '"':
            i += 1
            in_word = True
            while True:
                if i >= n:
                    raise ShellSyntaxError("unterminated quoted string")
                d = line[i]
                if d == '"':
                    i += 1
                    break
                if d == "\\" and i + 1 < n and line[i + 1] in '$`"\\\n':
                    add("lit", line[i + 1], True)
                    i += 2
                elif d == "$":
                    i = variable(i + 1, True)
                elif d == "`":
                    raise ShellSyntaxError("command substitution is not supported by the simulated shell")
                else:
                    add("lit", d, True)
                    i += 1
        elif c == "\\":
            if i + 1 < n:
                if line[i + 1] != "\n":
                    add("lit", line[i + 1], True)
                i += 2
            else:
                add("lit", "\\", False)
                i += 1
        elif c == "$":
            if line.startswith("$(", i):
                raise ShellSyntaxError("command substitution is not supported by the simulated shell")
            i = variable(i + 1, False)
        elif c == "`":
            raise ShellSyntaxError("command substitution is not supported by the simulated shell")
        else:
            add("lit", c, False)
            i += 1
    flush()
    return tokens


def parse_command_line(line: str) -> list[tuple[str, SimpleCommand]]:
    """Split a command line into simple commands, each with the connector before it ("", ";", "&&", "||").

    >>> [(c, len(cmd.words)) for c, cmd in parse_command_line("ls /x; echo X4EXIT:$?")]
    [('', 2), (';', 2)]
    """
    commands: list[tuple[str, SimpleCommand]] = []
    connector = ""
    current = SimpleCommand()
    tokens = _lex(line)
    index = 0
    while index < len(tokens):
        token = tokens[index]
        if token[0] == "word":
            current.words.append(token[1])
        elif token[0] == "redir":
            if index + 1 >= len(tokens) or tokens[index + 1][0] != "word":
                raise ShellSyntaxError("syntax error: redirection without a target")
            current.redirects.append(_Redirect(token[1], token[2], tokens[index + 1][1]))
            index += 1
        else:
            op = token[1]
            if op not in (";", "&&", "||"):
                raise ShellSyntaxError(f"'{op}' (pipes, background jobs) is not supported by the simulated shell")
            if not current.words and not current.redirects:
                raise ShellSyntaxError(f"syntax error: '{op}' unexpected")
            commands.append((connector, current))
            connector, current = op, SimpleCommand()
        index += 1
    if current.words or current.redirects:
        commands.append((connector, current))
    elif connector in ("&&", "||"):
        raise ShellSyntaxError(f"syntax error: unexpected end of line after '{connector}'")
    return commands


# --- the transport ------------------------------------------------------------------------------------------

class _StreamClosed(DtgHilError):
    """The stream was closed by the other side (or its connection dropped)."""


class _Stream:
    """One OPEN-ed stream: bytes in (from WRTE), bytes out (as WRTE, one in flight until the peer's OKAY)."""

    def __init__(self, connection: _Connection, local_id: int, remote_id: int, service: str) -> None:
        self.connection = connection
        self.local_id = local_id
        self.remote_id = remote_id
        self.service = service
        self._cond = threading.Condition()
        self._inbox = bytearray()
        self._can_send = True
        self._closed = False
        self._sent_close = False

    @property
    def closed(self) -> bool:
        return self._closed

    def feed(self, data: bytes) -> None:
        with self._cond:
            self._inbox += data
            self._cond.notify_all()

    def on_okay(self) -> None:
        with self._cond:
            self._can_send = True
            self._cond.notify_all()

    def on_remote_close(self) -> None:
        with self._cond:
            self._closed = True
            self._sent_close = True  # nothing to answer
            self._cond.notify_all()

    def read_exact(self, n_bytes: int) -> bytes:
        with self._cond:
            while len(self._inbox) < n_bytes and not self._closed:
                self._cond.wait()
            if len(self._inbox) < n_bytes:
                raise _StreamClosed(self.service)
            data = bytes(self._inbox[:n_bytes])
            del self._inbox[:n_bytes]
            return data

    def write(self, data: bytes) -> None:
        view = memoryview(data)
        chunk_size = self.connection.max_payload
        for start in range(0, len(view), chunk_size):
            with self._cond:
                while not self._can_send and not self._closed:
                    self._cond.wait()
                if self._closed:
                    raise _StreamClosed(self.service)
                self._can_send = False
            if not self.connection.send(A_WRTE, self.local_id, self.remote_id, bytes(view[start:start + chunk_size])):
                self.on_remote_close()
                raise _StreamClosed(self.service)

    def wait_closed(self, timeout_s: float | None) -> bool:
        with self._cond:
            if not self._closed:
                self._cond.wait(timeout_s)
            return self._closed

    def close(self) -> None:
        """Close from the device's side: CLSE to the peer, unless the peer closed first."""
        with self._cond:
            self._closed = True
            send_close, self._sent_close = not self._sent_close, True
            self._cond.notify_all()
        if send_close:
            self.connection.send(A_CLSE, self.local_id, self.remote_id)
        self.connection.forget(self)


class _Connection:
    """One TCP connection from the adb server: the handshake, the streams on it, and its reader thread."""

    def __init__(self, device: SimAndroidDevice, sock: socket.socket, number: int) -> None:
        self._device = device
        self._sock = sock
        self.number = number
        self.version = A_VERSION_MIN
        self.max_payload = MAX_PAYLOAD_V1
        self.online = False
        self._send_lock = threading.Lock()
        self._streams: dict[int, _Stream] = {}
        self._streams_lock = threading.Lock()
        self._local_ids = itertools.count(1)
        self._closed = False
        self.thread = threading.Thread(target=self._read_loop, name=f"sim-adbd-conn-{number}", daemon=True)

    def start(self) -> None:
        self.thread.start()

    def send(self, command: int, arg0: int, arg1: int, payload: bytes = b"") -> bool:
        """Send one message; False if the connection is gone."""
        data = encode_message(AdbMessage(command, arg0, arg1, payload))
        with self._send_lock:
            if self._closed:
                return False
            try:
                self._sock.sendall(data)
                return True
            except OSError:
                pass
        self.close()
        return False

    def forget(self, stream: _Stream) -> None:
        with self._streams_lock:
            if self._streams.get(stream.local_id) is stream:
                del self._streams[stream.local_id]

    def close(self) -> None:
        with self._send_lock:
            if self._closed:
                return
            self._closed = True
        try:
            self._sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self._sock.close()
        with self._streams_lock:
            streams, self._streams = list(self._streams.values()), {}
        for stream in streams:
            stream.on_remote_close()
        self._device._connection_closed(self)

    def _recv_exact(self, n_bytes: int) -> bytes | None:
        buffer = bytearray(n_bytes)
        view = memoryview(buffer)
        got = 0
        while got < n_bytes:
            count = self._sock.recv_into(view[got:], n_bytes - got)
            if count == 0:
                return None
            got += count
        return bytes(buffer)

    def _read_loop(self) -> None:
        try:
            while True:
                header = self._recv_exact(HEADER_SIZE)
                if header is None:
                    return
                command, arg0, arg1, length, check = _decode_header(header)
                if length > MAX_PAYLOAD:
                    raise AdbProtocolError(f"{_COMMAND_NAMES.get(command, hex(command))} payload of {length} "
                                           f"bytes exceeds {MAX_PAYLOAD}")
                payload = self._recv_exact(length) if length else b""
                if payload is None:
                    return
                if self.version < A_VERSION_SKIP_CHECKSUM and check and payload_checksum(payload) != check:
                    raise AdbProtocolError(f"payload checksum mismatch on {_COMMAND_NAMES.get(command)}")
                self._dispatch(AdbMessage(command, arg0, arg1, payload))
        except AdbProtocolError as error:
            _log.warning("connection %d: %s; closing it", self.number, error)
        except OSError:
            pass  # the socket was closed under us: stop() or drop_connections()
        finally:
            self.close()

    def _dispatch(self, message: AdbMessage) -> None:
        command = message.command
        if command == A_CNXN:
            self.version = min(A_VERSION, message.arg0)
            self.max_payload = max(MAX_PAYLOAD_V1, min(self._device.max_payload, message.arg1))
            self.send(A_CNXN, A_VERSION, self._device.max_payload, self._device.banner().encode())
            self.online = True
        elif not self.online:
            return  # nothing but CNXN counts before the handshake (AUTH, STLS are not offered)
        elif command == A_OPEN:
            self._open(message.arg0, message.payload.rstrip(b"\0").decode("utf-8", "replace"))
        elif command == A_OKAY:
            stream = self._streams.get(message.arg1)
            if stream is not None:
                stream.on_okay()
        elif command == A_WRTE:
            stream = self._streams.get(message.arg1)
            if stream is not None:
                stream.feed(message.payload)
                self.send(A_OKAY, stream.local_id, stream.remote_id)
        elif command == A_CLSE:
            with self._streams_lock:
                stream = self._streams.pop(message.arg1, None)
            if stream is not None:
                stream.on_remote_close()
        elif command in (A_AUTH, A_STLS, A_SYNC):
            pass
        else:
            raise AdbProtocolError(f"unknown command {command:#010x}")

    def _open(self, remote_id: int, service: str) -> None:
        handler = self._device._service_handler(service)
        if handler is None:
            self.send(A_CLSE, 0, remote_id)
            return
        stream = _Stream(self, next(self._local_ids), remote_id, service)
        with self._streams_lock:
            self._streams[stream.local_id] = stream
        self.send(A_OKAY, stream.local_id, remote_id)
        self._device._start_thread(f"sim-adbd-{service.split(':')[0]}-{self.number}.{stream.local_id}",
                                   self._serve, stream, handler)

    @staticmethod
    def _serve(stream: _Stream, handler: Callable[[_Stream], None]) -> None:
        try:
            handler(stream)
        except _StreamClosed:
            pass
        except Exception:  # noqa: BLE001 - one broken service must not take the device down; say so loudly
            _log.exception("service %r failed", stream.service)
        finally:
            stream.close()


# --- sync: ------------------------------------------------------------------------------------------------

SYNC_DATA_MAX = 64 * 1024
_SYNC_PATH_MAX = 1024


class _SyncService:
    """The file sync protocol v1 (SYNC.TXT): one request after another until QUIT or the stream closes."""

    def __init__(self, fs: DeviceFileSystem, stream: _Stream) -> None:
        self._fs = fs
        self._stream = stream

    def _fail(self, message: str) -> None:
        data = message.encode()
        self._stream.write(b"FAIL" + struct.pack("<I", len(data)) + data)

    def run(self) -> None:
        while True:
            try:
                request = self._stream.read_exact(8)
            except _StreamClosed:
                return
            ident, length = request[:4], struct.unpack("<I", request[4:])[0]
            if length > _SYNC_PATH_MAX:
                self._fail(f"path too long: {length}")
                return
            path = self._stream.read_exact(length).decode("utf-8", "replace")
            if ident == b"STAT":
                self._stat(path)
            elif ident == b"LIST":
                self._list(path)
            elif ident == b"SEND":
                self._send(path)
            elif ident == b"RECV":
                self._recv(path)
            elif ident == b"QUIT":
                return
            else:
                self._fail(f"unknown sync command {ident!r} (this device speaks sync v1: "
                           f"STAT, LIST, SEND, RECV, QUIT)")
                return

    def _stat(self, path: str) -> None:
        try:
            st = os.lstat(self._fs.host_path(path))
            reply = (st.st_mode, st.st_size & 0xFFFFFFFF, int(st.st_mtime))
        except OSError:
            reply = (0, 0, 0)  # v1 has no error code: all zero means "does not exist"
        self._stream.write(b"STAT" + struct.pack("<3I", *reply))

    def _list(self, path: str) -> None:
        out = bytearray()
        try:
            directory = self._fs.host_path(path)
            names = [".", ".."] + sorted(os.listdir(directory))
        except OSError:
            names, directory = [], None
        for name in names:
            try:
                st = os.lstat(directory / name)
            except OSError:
                continue
            encoded = name.encode()
            out += b"DENT" + struct.pack("<4I", st.st_mode, st.st_size & 0xFFFFFFFF, int(st.st_mtime),
                                         len(encoded)) + encoded
            if len(out) >= SYNC_DATA_MAX:
                self._stream.write(bytes(out))
                out.clear()
        out += b"DONE" + bytes(16)
        self._stream.write(bytes(out))

    def _send(self, spec: str) -> None:
        path, _, mode_text = spec.rpartition(",")
        if not path:
            path, mode_text = spec, "33188"  # 0o100644
        try:
            mode = int(mode_text)
        except ValueError:
            mode = 0o100644
        error = None
        host = None
        handle = None
        try:
            if stat.S_ISLNK(mode):
                error = "symlinks are not supported by the simulated device"
            elif not stat.S_ISREG(mode) and stat.S_IFMT(mode):
                error = f"cannot push file of mode {mode:o}"
            else:
                self._fs.check_writable(path)
                host = self._fs.host_path(path)
                host.parent.mkdir(parents=True, exist_ok=True)
                handle = open(host, "wb")
        except OSError as exc:
            error = f"couldn't create file: {exc.strerror}"
        mtime = None
        try:
            while True:
                header = self._stream.read_exact(8)
                ident, size = header[:4], struct.unpack("<I", header[4:])[0]
                if ident == b"DONE":
                    mtime = size
                    break
                if ident != b"DATA":
                    error = error or f"unexpected {ident!r} in SEND (expected DATA or DONE)"
                    break
                if size > SYNC_DATA_MAX:
                    error = error or f"DATA of {size} bytes exceeds {SYNC_DATA_MAX}"
                    break
                data = self._stream.read_exact(size)
                if handle is not None:
                    handle.write(data)
        finally:
            if handle is not None:
                handle.close()
                if mtime is None or error:
                    host.unlink(missing_ok=True)
        if error:
            self._fail(error)
            return
        os.chmod(host, (mode & 0o777) | 0o600)  # the sandbox stays readable to the device itself
        os.utime(host, (mtime, mtime))
        self._stream.write(b"OKAY" + bytes(4))

    def _recv(self, path: str) -> None:
        try:
            with open(self._fs.host_path(path), "rb") as handle:
                while True:
                    chunk = handle.read(SYNC_DATA_MAX)
                    if not chunk:
                        break
                    self._stream.write(b"DATA" + struct.pack("<I", len(chunk)) + chunk)
        except OSError as exc:
            self._fail(exc.strerror or str(exc))
            return
        self._stream.write(b"DONE" + bytes(4))


# --- the shell ----------------------------------------------------------------------------------------------

class _Sink:
    """Where a command writes: the stream (buffered, flushed per command), a file, or nowhere."""

    def __init__(self, stream: _Stream | None = None) -> None:
        self._stream = stream
        self.buffer = bytearray()

    @property
    def closed(self) -> bool:
        return self._stream is not None and self._stream.closed

    def write(self, data: str | bytes) -> None:
        self.buffer += data.encode() if isinstance(data, str) else data
        if self._stream is not None and len(self.buffer) >= SYNC_DATA_MAX:
            self.flush()

    def flush(self) -> None:
        if self._stream is not None and self.buffer:
            data = bytes(self.buffer)
            self.buffer.clear()
            self._stream.write(data)


class _NullSink(_Sink):
    def write(self, data: str | bytes) -> None:
        pass


_ShellCommand = Callable[["_ShellSession", list[str], _Sink, _Sink], int]
_COMMANDS: dict[str, _ShellCommand] = {}


def _command(name: str) -> Callable[[_ShellCommand], _ShellCommand]:
    def register(function: _ShellCommand) -> _ShellCommand:
        _COMMANDS[name] = function
        return function
    return register


def _split_flags(args: list[str], flags: str) -> tuple[set[str], list[str]]:
    """Leading single-letter flags from `flags` (combined like ``-rf``); the rest are operands."""
    found: set[str] = set()
    index = 0
    while index < len(args) and args[index].startswith("-") and len(args[index]) > 1:
        if args[index] == "--":
            index += 1
            break
        if not all(letter in flags for letter in args[index][1:]):
            break
        found.update(args[index][1:])
        index += 1
    return found, args[index:]


class _ShellSession:
    """One ``shell:`` command line, run against the device: cwd, ``$?``, and the commands."""

    def __init__(self, device: SimAndroidDevice, out: _Sink, pid: int) -> None:
        self.device = device
        self.out = out
        self.pid = pid
        self.cwd = "/"
        self.status = 0
        self.env = {"HOME": "/", "PATH": "/product/bin:/apex/com.android.runtime/bin:/system/bin:/system/xbin",
                    "USER": "shell", "SHELL": "/system/bin/sh", "TMPDIR": "/data/local/tmp",
                    "EXTERNAL_STORAGE": "/sdcard", "ANDROID_DATA": "/data", "ANDROID_ROOT": "/system"}

    @property
    def fs(self) -> DeviceFileSystem:
        return self.device.fs

    def run(self, line: str) -> int:
        try:
            commands = parse_command_line(line)
        except ShellSyntaxError as error:
            self.out.write(f"/system/bin/sh: {error}\n")
            return 1
        for connector, command in commands:
            if self.out.closed:
                break
            if (connector == "&&" and self.status != 0) or (connector == "||" and self.status == 0):
                continue
            self.status = self._run_simple(command)
            self.out.flush()
        return self.status

    # -- expansion

    def _expand(self, word: _Word) -> list[str]:
        text = []
        pattern = []
        globbing = False
        only_unquoted_vars = all(part.kind == "var" and not part.quoted for part in word)
        for part in word:
            if part.kind == "var":
                value = {"?": str(self.status), "$": str(self.pid)}.get(part.text, self.env.get(part.text, ""))
                text.append(value)
                pattern.append(re.sub(r"([*?\[])", r"[\1]", value))
            else:
                text.append(part.text)
                if part.quoted:
                    pattern.append(re.sub(r"([*?\[])", r"[\1]", part.text))
                else:
                    pattern.append(part.text)
                    globbing = globbing or any(c in part.text for c in _GLOB_CHARS)
        joined = "".join(text)
        if only_unquoted_vars and not joined:
            return []
        if globbing:
            matches = self._glob("".join(pattern))
            if matches:
                return matches
        return [joined]

    def _glob(self, pattern: str) -> list[str]:
        prefixes = ["/"] if pattern.startswith("/") else [""]
        for component in [c for c in pattern.split("/") if c]:
            grown = []
            for prefix in prefixes:
                joined = (prefix + component) if prefix in ("", "/") else f"{prefix}/{component}"
                if not any(c in component for c in _GLOB_CHARS):
                    grown.append(joined)
                    continue
                try:
                    names = sorted(os.listdir(self.fs.host_path(prefix or ".", self.cwd)))
                except OSError:
                    continue
                for name in names:
                    if name.startswith(".") and not component.startswith("."):
                        continue
                    if fnmatchcase(name, component):
                        grown.append((prefix + name) if prefix in ("", "/") else f"{prefix}/{name}")
            prefixes = grown
        return [p for p in prefixes if os.path.lexists(self.fs.host_path(p, self.cwd))]

    # -- running

    def _run_simple(self, command: SimpleCommand) -> int:
        args: list[str] = []
        for word in command.words:
            args.extend(self._expand(word))
        out, err = self.out, self.out
        files: list[tuple[_Sink, Path, bool]] = []
        for redirect in command.redirects:
            target = "".join(self._expand(redirect.target)) if redirect.target else ""
            if redirect.op == "<":
                if not self.fs.host_path(target, self.cwd).is_file() and \
                        self.fs.normalize(target, self.cwd) != "/dev/null":
                    self.out.write(f"/system/bin/sh: can't open {target}: No such file or directory\n")
                    return 1
                continue  # no command here reads standard input
            if redirect.op == ">&":
                if target not in ("1", "2"):
                    self.out.write(f"/system/bin/sh: {target}: bad file descriptor\n")
                    return 1
                sink = out if target == "1" else err
            elif self.fs.normalize(target, self.cwd) == "/dev/null":
                sink = _NullSink()
            else:
                try:
                    self.fs.check_writable(target, self.cwd)
                    host = self.fs.host_path(target, self.cwd)
                    if host.is_dir():
                        raise _os_error(errno.EISDIR, target)
                    if not host.parent.is_dir():
                        raise _os_error(errno.ENOENT, target)
                except OSError as error:
                    self.out.write(f"/system/bin/sh: can't create {target}: {error.strerror}\n")
                    return 1
                sink = _Sink()
                files.append((sink, host, redirect.op == ">>"))
            if redirect.fd == 1:
                out = sink
            else:
                err = sink
        assignments = {}
        while args and re.match(r"[A-Za-z_][A-Za-z0-9_]*=", args[0]):
            name, _, value = args.pop(0).partition("=")
            assignments[name] = value
        saved = dict(self.env)
        self.env.update(assignments)
        try:
            status = self._call(args, out, err)
        finally:
            if args:  # NAME=value before a command is for that command only
                self.env = saved
            for sink, host, append in files:
                with open(host, "ab" if append else "wb") as handle:
                    handle.write(sink.buffer)
        return status

    def _call(self, args: list[str], out: _Sink, err: _Sink) -> int:
        if not args:
            return 0
        name = args[0]
        if "/" in name and posixpath.dirname(name) in ("/system/bin", "/system/xbin", "/bin"):
            name = posixpath.basename(name)
        function = _COMMANDS.get(name)
        if function is None:
            err.write(f"/system/bin/sh: {args[0]}: inaccessible or not found\n")
            return 127
        try:
            return function(self, args[1:], out, err)
        except _StreamClosed:
            raise
        except Exception as error:  # noqa: BLE001 - a simulator bug shows up as the command's failure
            _log.exception("simulated command %r failed", args)
            err.write(f"{name}: simulated device error: {error!r}\n")
            return 1

    def sleep(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while not self.out.closed and time.monotonic() < deadline:
            time.sleep(min(0.05, max(0.0, deadline - time.monotonic())))


def _errno_text(error: OSError) -> str:
    return error.strerror or str(error)


@_command("true")
def _cmd_true(session: _ShellSession, args: list[str], out: _Sink, err: _Sink) -> int:
    return 0


@_command("false")
def _cmd_false(session: _ShellSession, args: list[str], out: _Sink, err: _Sink) -> int:
    return 1


@_command("echo")
def _cmd_echo(session: _ShellSession, args: list[str], out: _Sink, err: _Sink) -> int:
    newline, escapes = True, False
    while args and re.fullmatch(r"-[neE]+", args[0]):
        newline = newline and "n" not in args[0]
        escapes = "e" in args[0] or (escapes and "E" not in args[0])
        args = args[1:]
    text = " ".join(args)
    if escapes:
        text = text.encode("latin-1", "backslashreplace").decode("unicode_escape")
    out.write(text + ("\n" if newline else ""))
    return 0


@_command("export")
def _cmd_export(session: _ShellSession, args: list[str], out: _Sink, err: _Sink) -> int:
    for arg in args:
        name, _, value = arg.partition("=")
        session.env[name] = value if "=" in arg else session.env.get(name, "")
    return 0


@_command("exec")
def _cmd_exec(session: _ShellSession, args: list[str], out: _Sink, err: _Sink) -> int:
    return session._call(args, out, err)


@_command("pwd")
def _cmd_pwd(session: _ShellSession, args: list[str], out: _Sink, err: _Sink) -> int:
    out.write(session.cwd + "\n")
    return 0


@_command("cd")
def _cmd_cd(session: _ShellSession, args: list[str], out: _Sink, err: _Sink) -> int:
    target = args[0] if args else "/"
    if not session.fs.host_path(target, session.cwd).is_dir():
        err.write(f"/system/bin/sh: cd: {target}: No such file or directory\n")
        return 2
    session.cwd = session.fs.normalize(target, session.cwd)
    return 0


@_command("sleep")
def _cmd_sleep(session: _ShellSession, args: list[str], out: _Sink, err: _Sink) -> int:
    try:
        seconds = float(args[0].rstrip("s")) if args else None
    except ValueError:
        seconds = None
    if seconds is None or seconds < 0:
        err.write(f"sleep: invalid number '{args[0] if args else ''}'\n")
        return 1
    session.sleep(seconds)
    return 0


@_command("id")
def _cmd_id(session: _ShellSession, args: list[str], out: _Sink, err: _Sink) -> int:
    out.write("uid=2000(shell) gid=2000(shell) groups=2000(shell),1004(input),1007(log),1011(adb),"
              "1015(sdcard_rw),1028(sdcard_r),3001(net_bt_admin),3002(net_bt),3003(inet) context=u:r:shell:s0\n")
    return 0


@_command("whoami")
def _cmd_whoami(session: _ShellSession, args: list[str], out: _Sink, err: _Sink) -> int:
    out.write("shell\n")
    return 0


@_command("getprop")
def _cmd_getprop(session: _ShellSession, args: list[str], out: _Sink, err: _Sink) -> int:
    props = session.device.props
    if not args:
        out.write("".join(f"[{name}]: [{props[name]}]\n" for name in sorted(props)))
    else:
        out.write(props.get(args[0], args[1] if len(args) > 1 else "") + "\n")
    return 0


def _ls_line(name: str, st: os.stat_result) -> str:
    when = datetime.fromtimestamp(st.st_mtime).strftime("%Y-%m-%d %H:%M")
    return f"{stat.filemode(st.st_mode)} {st.st_nlink} shell shell {st.st_size:>8} {when} {name}\n"


@_command("ls")
def _cmd_ls(session: _ShellSession, args: list[str], out: _Sink, err: _Sink) -> int:
    flags, paths = _split_flags(args, "laA1dhRst")
    paths = paths or ["."]
    status = 0
    files, directories = [], []
    for path in paths:
        host = session.fs.host_path(path, session.cwd)
        if not os.path.lexists(host):
            err.write(f"ls: {path}: No such file or directory\n")
            status = 1
        elif host.is_dir() and "d" not in flags:
            directories.append((path, host))
        else:
            files.append((path, host))
    for path, host in files:
        out.write(_ls_line(path, host.lstat()) if "l" in flags else path + "\n")
    for index, (path, host) in enumerate(directories):
        if len(paths) > 1:
            out.write(("\n" if index or files else "") + f"{path}:\n")
        names = sorted(os.listdir(host))
        if "a" in flags:
            names = [".", ".."] + names
        elif "A" not in flags:
            names = [name for name in names if not name.startswith(".")]
        if "l" in flags:
            out.write(f"total {sum((host / name).lstat().st_blocks for name in names) // 2}\n")
            for name in names:
                out.write(_ls_line(name, (host / name).lstat()))
        else:
            out.write("".join(name + "\n" for name in names))
    return status


def _each_path(session: _ShellSession, paths: list[str], err: _Sink, name: str,
               action: Callable[[str, Path], None], *, quoted: bool = False) -> int:
    """Run `action(path, host path)` on each of `paths` in turn, as toybox's file commands do: an OSError (from the
    sandbox's path check or from `action`) is reported as ``name: path: reason`` (``name: 'path': reason`` when
    `quoted`) and the next path still runs. The exit status: 1 if any failed, else 0."""
    status = 0
    for path in paths:
        try:
            action(path, session.fs.host_path(path, session.cwd))
        except OSError as error:
            shown = f"'{path}'" if quoted else path
            err.write(f"{name}: {shown}: {_errno_text(error)}\n")
            status = 1
    return status


@_command("cat")
def _cmd_cat(session: _ShellSession, args: list[str], out: _Sink, err: _Sink) -> int:
    def cat(path: str, host: Path) -> None:
        if host.is_dir():
            raise _os_error(errno.EISDIR, path)
        with open(host, "rb") as handle:
            while chunk := handle.read(SYNC_DATA_MAX):
                out.write(chunk)

    return _each_path(session, args, err, "cat", cat)


@_command("rm")
def _cmd_rm(session: _ShellSession, args: list[str], out: _Sink, err: _Sink) -> int:
    flags, paths = _split_flags(args, "frRiv")
    force, recursive = "f" in flags, bool(flags & {"r", "R"})
    if not paths and not force:
        err.write("rm: Needs 1 argument\n")
        return 1

    def rm(path: str, host: Path) -> None:
        if not os.path.lexists(host):
            if force:
                return
            raise _os_error(errno.ENOENT, path)
        session.fs.check_writable(path, session.cwd)
        if host.is_dir() and not host.is_symlink():
            if not recursive:
                raise _os_error(errno.EISDIR, path)
            shutil.rmtree(host)
        else:
            host.unlink()

    return _each_path(session, paths, err, "rm", rm)


@_command("mkdir")
def _cmd_mkdir(session: _ShellSession, args: list[str], out: _Sink, err: _Sink) -> int:
    if args[:1] == ["-m"]:
        args = args[2:]
    flags, paths = _split_flags(args, "pv")
    if not paths:
        err.write("mkdir: Needs 1 argument\n")
        return 1

    def mkdir(path: str, host: Path) -> None:
        if host.is_dir() and "p" in flags:
            return
        if os.path.lexists(host):
            raise _os_error(errno.EEXIST, path)
        session.fs.check_writable(path, session.cwd)
        if "p" in flags:
            host.mkdir(parents=True)
        else:
            host.mkdir()

    return _each_path(session, paths, err, "mkdir", mkdir, quoted=True)


@_command("touch")
def _cmd_touch(session: _ShellSession, args: list[str], out: _Sink, err: _Sink) -> int:
    def touch(path: str, host: Path) -> None:
        if not host.exists():
            session.fs.check_writable(path, session.cwd)
        host.touch()

    return _each_path(session, args, err, "touch", touch, quoted=True)


@_command("sha256sum")
def _cmd_sha256sum(session: _ShellSession, args: list[str], out: _Sink, err: _Sink) -> int:
    def sha256sum(path: str, host: Path) -> None:
        if host.is_dir():
            raise _os_error(errno.EISDIR, path)
        digest = hashlib.sha256()
        with open(host, "rb") as handle:
            while chunk := handle.read(1 << 20):
                digest.update(chunk)
        out.write(f"{digest.hexdigest()}  {path}\n")

    return _each_path(session, args, err, "sha256sum", sha256sum)


@_command("pidof")
def _cmd_pidof(session: _ShellSession, args: list[str], out: _Sink, err: _Sink) -> int:
    _, names = _split_flags(args, "s")
    running = session.device.running_apps
    pids = [str(running[name]) for name in names if name in running]
    if not pids:
        return 1
    out.write(" ".join(pids) + "\n")
    return 0


@_command("reboot")
def _cmd_reboot(session: _ShellSession, args: list[str], out: _Sink, err: _Sink) -> int:
    out.flush()
    session.device._reboot_soon()
    session.sleep(60.0)  # the device goes down under the command, as on a phone
    return 0


@_command("logcat")
def _cmd_logcat(session: _ShellSession, args: list[str], out: _Sink, err: _Sink) -> int:
    fmt, dump, clear, silent, tail, follow_tail = "threadtime", False, False, False, None, False
    buffers: set[str] = set()
    pid = None
    specs: list[str] = []
    index = 0
    try:
        while index < len(args):
            arg = args[index]
            value = None
            if arg in ("-v", "-b", "-t", "-T", "-f", "-r", "-n", "-e") or arg in ("--format", "--buffer"):
                index += 1
                if index >= len(args):
                    raise ValueError(f"option {arg} needs an argument")
                value = args[index]
            elif re.fullmatch(r"-[vbtT].+", arg):
                arg, value = arg[:2], arg[2:]
            if arg in ("-v", "--format"):
                if value not in LOGCAT_FORMATS and value not in ("color", "usec", "year", "zone", "uid", "epoch",
                                                                "monotonic", "printable", "descriptive"):
                    raise ValueError(f"unknown format '{value}'; expected one of: {', '.join(LOGCAT_FORMATS)}")
                fmt = value if value in LOGCAT_FORMATS else fmt
            elif arg in ("-b", "--buffer"):
                buffers.update(_LOG_BUFFERS if value in ("all", "default") else value.split(","))
            elif arg in ("-t", "-T"):
                tail, dump, follow_tail = int(value), dump or arg == "-t", arg == "-T"
            elif arg in ("-d", "--dump"):
                dump = True
            elif arg in ("-c", "--clear"):
                clear = True
            elif arg in ("-s",):
                silent = True
            elif arg.startswith("--pid="):
                pid = int(arg.split("=", 1)[1])
            elif arg in ("-f", "-r", "-n", "-e"):
                raise ValueError(f"option {arg} is not supported by the simulated logcat")
            elif arg.startswith("-"):
                raise ValueError(f"unknown option {arg}")
            else:
                specs.append(arg)
            index += 1
        if not specs and not silent:
            specs = session.env.get("ANDROID_LOG_TAGS", "").split()
        log_filter = LogFilter.parse(specs, silent_default=silent)
    except ValueError as error:
        err.write(f"logcat: {error}\n")
        return 1
    logs = session.device._logs
    if clear:
        logs.clear()
        return 0
    buffers = buffers or set(_LOG_BUFFERS)
    seen_buffers: set[str] = set()

    def emit(entries: list[LogEntry]) -> None:
        for entry in entries:
            if entry.buffer not in buffers or (pid is not None and entry.pid != pid) \
                    or not log_filter.allows(entry.tag, entry.priority):
                continue
            if entry.buffer not in seen_buffers:
                seen_buffers.add(entry.buffer)
                out.write(f"--------- beginning of {entry.buffer}\n")
            out.write(format_log_entry(entry, fmt) + "\n")
        out.flush()

    backlog = logs.entries()
    last_seq = backlog[-1].seq if backlog else 0
    if tail is not None:
        backlog = [e for e in backlog if e.buffer in buffers and log_filter.allows(e.tag, e.priority)][-tail:] \
            if tail > 0 else []
    emit(backlog)
    if dump and not follow_tail:
        return 0
    while not (out.closed or session.out.closed or session.device._closing):
        entries = logs.wait(last_seq, 0.1)
        if entries:
            last_seq = entries[-1].seq
            emit(entries)
    return 0


@_command("pm")
def _cmd_pm(session: _ShellSession, args: list[str], out: _Sink, err: _Sink) -> int:
    device = session.device
    sub, rest = (args[0], args[1:]) if args else ("", [])
    if sub == "list" and rest[:1] == ["packages"]:
        flags, operands = _split_flags(rest[1:], "3sfdeiUu")
        packages = device._packages_snapshot()
        names = sorted(set(_SYSTEM_PACKAGES) | set(packages))
        if "3" in flags:
            names = [name for name in names if name in packages]
        if "s" in flags:
            names = [name for name in names if name not in packages]
        if operands:
            names = [name for name in names if operands[0] in name]
        for name in names:
            path = packages[name].apk_path if name in packages else f"/system/framework/{name}.apk"
            out.write(f"package:{path}={name}\n" if "f" in flags else f"package:{name}\n")
        return 0
    if sub == "install":
        operands = []
        skip_next = False
        for arg in rest:
            if skip_next:
                skip_next = False
            elif arg in ("--user", "-i", "--install-location", "-S", "--originating-uri", "--referrer"):
                skip_next = True
            elif not arg.startswith("-"):
                operands.append(arg)
        if len(operands) != 1:
            err.write("Error: pm install needs exactly one APK path (the simulated device installs one at a time)\n")
            return 1
        return device._install(operands[0], session.cwd, out)
    if sub == "uninstall":
        operands = [arg for arg in rest if not arg.startswith("-")]
        if not operands:
            err.write("Error: package name not specified\n")
            return 1
        return device._uninstall(operands[-1], out)
    if sub == "path":
        packages = device._packages_snapshot()
        if rest and rest[-1] in packages:
            out.write(f"package:{packages[rest[-1]].apk_path}\n")
            return 0
        return 1
    if sub == "clear":
        if rest and rest[-1] in device._packages_snapshot():
            device._force_stop(rest[-1], reason=f"clear data from pid {session.pid}")
            out.write("Success\n")
            return 0
        out.write("Failed\n")
        return 1
    err.write(f"Unknown command: {sub}\n" if sub else
              "usage: pm list packages [-3|-s|-f] [FILTER] | pm install [-r] PATH | pm uninstall PACKAGE | "
              "pm path PACKAGE | pm clear PACKAGE\n")
    return 1


_AM_VALUE_OPTIONS = {"-a", "-d", "-t", "-c", "-f", "-p", "--user", "-P", "--start-profiler", "--sampling",
                     "--display", "--windowingMode", "--activityType"}
_AM_PAIR_OPTIONS = {"-e", "--es", "--ei", "--ez", "--el", "--ef", "--eu", "--ecn", "--eia", "--esa", "--esn"}


@_command("am")
def _cmd_am(session: _ShellSession, args: list[str], out: _Sink, err: _Sink) -> int:
    device = session.device
    sub, rest = (args[0], args[1:]) if args else ("", [])
    if sub in ("start", "start-activity"):
        component, wait, stop_first = None, False, False
        index = 0
        while index < len(rest):
            arg = rest[index]
            if arg == "-n" and index + 1 < len(rest):
                component = rest[index + 1]
                index += 1
            elif arg == "-W":
                wait = True
            elif arg == "-S":
                stop_first = True
            elif arg in _AM_VALUE_OPTIONS:
                index += 1
            elif arg in _AM_PAIR_OPTIONS:
                index += 2
            elif not arg.startswith("-") and component is None and "/" in arg:
                component = arg
            index += 1
        if component is None or "/" not in component:
            err.write("Error: Activity not started, unable to resolve Intent (the simulated device starts "
                      "activities by component: am start -n PACKAGE/ACTIVITY)\n")
            return 1
        package, activity = component.split("/", 1)
        out.write(f"Starting: Intent {{ cmp={component} }}\n")
        if package not in device._packages_snapshot():
            full = package + activity if activity.startswith(".") else activity
            err.write(f"Error type 3\nError: Activity class {{{package}/{full}}} does not exist.\n")
            return 1
        if stop_first:
            device._force_stop(package, reason=f"from pid {session.pid}")
        started = device._start_app(package, activity)
        if not started:
            out.write("Warning: Activity not started, its current task has been brought to the front\n")
        if wait:
            out.write(f"Status: ok\nLaunchState: {'COLD' if started else 'HOT'}\nActivity: {component}\n"
                      f"TotalTime: 0\nWaitTime: 1\nComplete\n")
        return 0
    if sub == "force-stop":
        operands = [arg for arg in rest if not arg.startswith("-")]
        if not operands:
            err.write("Error: package name not specified\n")
            return 1
        device._force_stop(operands[-1], reason=f"from pid {session.pid}")
        return 0
    err.write(f"Unknown command: {sub}\n" if sub else
              "usage: am start [-W] [-S] -n PACKAGE/ACTIVITY | am force-stop PACKAGE\n")
    return 1


@_command("monkey")
def _cmd_monkey(session: _ShellSession, args: list[str], out: _Sink, err: _Sink) -> int:
    package = args[args.index("-p") + 1] if "-p" in args[:-1] else None
    if package is None or package not in session.device._packages_snapshot():
        err.write("** No activities found to run, monkey aborted.\n")
        return 251
    session.device._start_app(package, ".MainActivity")
    out.write("Events injected: 1\n## Network stats: elapsed time=1ms (0ms mobile, 0ms wifi, 1ms not connected)\n")
    return 0


# --- the device -----------------------------------------------------------------------------------------------

DEFAULT_PROPS: Mapping[str, str] = {
    "ro.product.name": "dtg_sim",
    "ro.product.model": "DTG-SIM",
    "ro.product.device": "dtg_sim",
    "ro.product.brand": "dtg-hil",
    "ro.product.manufacturer": "dtg-hil",
    "ro.product.cpu.abi": "arm64-v8a",
    "ro.build.version.release": "13",
    "ro.build.version.sdk": "33",
    "ro.build.type": "userdebug",
    "ro.build.fingerprint": "dtg-hil/dtg_sim/dtg_sim:13/SIM/1:userdebug/test-keys",
    "ro.serialno": "DTGSIM0001",
    "ro.debuggable": "1",
    "ro.secure": "1",
    "ro.adb.secure": "0",
    "sys.boot_completed": "1",
}


class SimAndroidDevice(Worker):
    """A simulated Android device listening for the adb server on 127.0.0.1 (module docstring: what it models).

    `port` 0 picks a free port; `serial` ("127.0.0.1:PORT") is what ``adb connect`` and ``adb -s`` take.
    `apps` maps package names to factories (`AppFactory`); an installed package without one runs an app that
    does nothing. `root_dir` holds the device's files (default: a temporary directory removed on `stop()`).
    `props` adds to or overrides `DEFAULT_PROPS` (the banner's product name, model and device come from them).
    `reboot_duration_s` is how long a `reboot()` keeps the device unreachable. `max_payload` is the largest
    message payload the device offers in CNXN. `logcat_capacity` bounds the log ring, in lines.

    It is a context manager; `start()` binds and listens, `stop()` closes every connection within `timeout_s`
    (2 s) and cannot be undone: a stopped device refuses to start again.
    """

    error_type = AdbdError

    def __init__(self, port: int = 0, *, apps: Mapping[str, AppFactory] | None = None,
                 root_dir: str | os.PathLike | None = None, props: Mapping[str, str] | None = None,
                 reboot_duration_s: float = 2.0, max_payload: int = DEFAULT_MAX_PAYLOAD,
                 logcat_capacity: int = 20000) -> None:
        super().__init__("sim-adbd")
        if not MAX_PAYLOAD_V1 <= max_payload <= MAX_PAYLOAD:
            raise ValueError(f"max_payload {max_payload} is outside [{MAX_PAYLOAD_V1}, {MAX_PAYLOAD}]")
        if reboot_duration_s < 0:
            raise ValueError(f"reboot_duration_s must be >= 0, got {reboot_duration_s}")
        for package in apps or {}:
            if not _PACKAGE_NAME.fullmatch(package):
                raise ValueError(f"invalid package name {package!r} in apps")
        self._requested_port = port
        self._apps: dict[str, AppFactory] = dict(apps or {})
        self._root_dir = Path(root_dir) if root_dir is not None else None
        self.props: dict[str, str] = {**DEFAULT_PROPS, **(props or {})}
        self.reboot_duration_s = reboot_duration_s
        self.max_payload = max_payload
        self._logs = LogBuffer(logcat_capacity)
        self._fs: DeviceFileSystem | None = None
        self._owns_root = False
        self._listener: socket.socket | None = None
        self._port: int | None = None
        self._lock = threading.RLock()  # connections, packages, processes, flags
        self._connections: set[_Connection] = set()
        self._connection_numbers = itertools.count(1)
        self._threads: set[threading.Thread] = set()
        self._packages: dict[str, _Package] = {}
        self._processes: dict[str, _Process] = {}
        self._pids = itertools.count(3001)
        self._uids = itertools.count(_FIRST_APP_UID)
        self._shell_hung = False
        self._offline_until: float | None = None
        self._closing = False
        self._stop_deadline = 0.0
        #: Every service the adb server opened, in order (what adb and adbutils really ask of a device).
        self.services_opened: deque[str] = deque(maxlen=10000)

    # -- lifecycle

    def _describe(self) -> str:
        return f"simulated Android device {self._port and self.serial or '(not started)'}"

    def start(self) -> SimAndroidDevice:
        with self._state_lock:
            fresh = self._state == "new" and self._listener is None
        if fresh:
            listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                listener.bind(("127.0.0.1", self._requested_port))
            except OSError as error:
                listener.close()
                raise AdbdError(f"simulated Android device cannot listen on 127.0.0.1:{self._requested_port}: "
                                f"{error}") from error
            listener.listen(16)
            self._listener, self._port = listener, listener.getsockname()[1]
            if self._root_dir is None:
                self._fs = DeviceFileSystem(tempfile.mkdtemp(prefix=f"sim-adbd-{self._port}-"))
                self._owns_root = True
            else:
                self._root_dir.mkdir(parents=True, exist_ok=True)
                self._fs = DeviceFileSystem(self._root_dir)
            self._fs.create_skeleton()
            self._system_log("I", "ActivityManager", "System now ready")
        return super().start()

    def stop(self, timeout_s: float = 2.0) -> None:
        """Close every connection, stop the apps and the threads within `timeout_s`; idempotent."""
        self._stop_deadline = time.monotonic() + timeout_s
        super().stop(timeout_s)

    def _finish(self) -> None:
        with self._lock:
            self._closing = True
            connections = list(self._connections)
            processes = list(self._processes.values())
            self._processes.clear()
        if self._listener is not None:
            self._listener.close()
        for connection in connections:
            connection.close()
        for process in processes:
            self._stop_process(process)
        with self._lock:
            threads = [t for t in self._threads if t is not threading.current_thread()]
        for thread in threads + [c.thread for c in connections]:
            thread.join(max(0.0, self._stop_deadline - time.monotonic()))
        stuck = [t.name for t in threads + [c.thread for c in connections] if t.is_alive()]
        if self._owns_root and self._fs is not None:
            shutil.rmtree(self._fs.root, ignore_errors=True)
        if stuck:
            raise AdbdError(f"{self._describe()}: threads still running after stop: {', '.join(stuck)}")

    def _work(self) -> None:
        assert self._listener is not None
        while not self._stop_requested.is_set():
            try:
                readable, _, _ = select.select([self._listener], [], [], 0.05)
            except (OSError, ValueError):
                return
            if readable:
                try:
                    sock, _ = self._listener.accept()
                except OSError:
                    continue
                self._accept(sock)
            self._housekeeping()

    def _check_running(self) -> None:
        if self._state != "running":
            raise AdbdError(f"{self._describe()} is {'stopped' if self._state == 'stopped' else 'not started'}")

    def _start_thread(self, name: str, target: Callable[..., None], *args: object) -> None:
        def run() -> None:
            try:
                target(*args)
            finally:
                with self._lock:
                    self._threads.discard(threading.current_thread())
        thread = threading.Thread(target=run, name=name, daemon=True)
        with self._lock:
            if self._closing:
                return
            self._threads.add(thread)
        thread.start()

    # -- what the harness sees

    @property
    def port(self) -> int:
        if self._port is None:
            raise AdbdError("simulated Android device is not started: it has no port yet")
        return self._port

    @property
    def serial(self) -> str:
        """``127.0.0.1:PORT``, the serial the adb server knows this device by after ``adb connect``."""
        return f"127.0.0.1:{self.port}"

    @property
    def fs(self) -> DeviceFileSystem:
        if self._fs is None:
            raise AdbdError("simulated Android device is not started: it has no file system yet")
        return self._fs

    @property
    def root(self) -> Path:
        """The host directory holding the device's files."""
        return self.fs.root

    def host_path(self, device_path: str) -> Path:
        """The host path of a device path (inside `root`, whatever ``..`` the device path holds)."""
        return self.fs.host_path(device_path)

    @property
    def online(self) -> bool:
        """True while the device accepts connections (started, not stopped, not rebooting)."""
        return self._state == "running" and self._offline_until is None

    @property
    def connection_count(self) -> int:
        with self._lock:
            return len(self._connections)

    @property
    def installed_packages(self) -> tuple[str, ...]:
        with self._lock:
            return tuple(sorted(self._packages))

    @property
    def running_apps(self) -> dict[str, int]:
        """Package → pid of every running app."""
        with self._lock:
            return {name: process.pid for name, process in self._processes.items()}

    def banner(self) -> str:
        props = self.props
        return (f"device::ro.product.name={props['ro.product.name']};ro.product.model={props['ro.product.model']};"
                f"ro.product.device={props['ro.product.device']};features={','.join(DEVICE_FEATURES)}")

    def log(self, tag: str, priority: str | int, message: str, *, pid: int = SYSTEM_SERVER_PID,
            buffer: str = "main") -> None:
        """Append a logcat line as some other process of the device would (default: system_server)."""
        if buffer not in _LOG_BUFFERS:
            raise ValueError(f"unknown log buffer {buffer!r}; expected one of: {', '.join(_LOG_BUFFERS)}")
        self._logs.append(pid, pid, priority, tag, message, buffer)

    def logcat(self, fmt: str = "threadtime") -> list[str]:
        """The log as ``logcat -d -v <fmt>`` would print it (without the buffer banners)."""
        return [format_log_entry(entry, fmt) for entry in self._logs.entries()]

    # -- fault injection

    def hang_shell(self, hang: bool = True) -> None:
        """While on, ``shell:``/``exec:`` streams are accepted and then never answered (until the client closes)."""
        self._check_running()
        self._shell_hung = hang

    def stop_logging(self, stopped: bool = True) -> None:
        """While on, the log takes no lines: logcat streams go silent and dumps show nothing new."""
        self._check_running()
        self._logs.silenced = stopped

    def drop_connections(self) -> int:
        """Close every adb connection at once, as a pulled USB cable does; returns how many were open. The
        device keeps listening: the adb server (or ``adb connect``) can connect again at once."""
        self._check_running()
        with self._lock:
            connections = list(self._connections)
        for connection in connections:
            connection.close()
        return len(connections)

    def reboot(self, duration_s: float | None = None) -> None:
        """Reboot: drop every connection, stop every app, lose the log, and refuse connections for `duration_s`
        (default `reboot_duration_s`); files and installed packages survive."""
        self._check_running()
        duration_s = self.reboot_duration_s if duration_s is None else duration_s
        with self._lock:
            self._offline_until = time.monotonic() + duration_s
            processes = list(self._processes.values())
            self._processes.clear()
        self.drop_connections()
        for process in processes:
            self._stop_process(process)
        self._logs.clear()

    def _reboot_soon(self) -> None:
        """``reboot:`` and the shell's ``reboot``: go down just after the request was acknowledged."""
        def go_down() -> None:
            try:
                if self.online:
                    self.reboot()
            except AdbdError:
                pass  # stopped in the meantime
        timer = threading.Timer(0.05, go_down)
        timer.daemon = True
        timer.start()

    def kill_app(self, package: str) -> int:
        """Kill a running app as the low-memory killer would; returns its pid. Unlike ``am force-stop``,
        ActivityManager logs "Process <pkg> (pid N) has died". The app's stop() is still called, to end its
        simulated threads; it can log nothing more either way."""
        self._check_running()
        with self._lock:
            process = self._processes.pop(package, None)
            running = sorted(self._processes)
        if process is None:
            raise AdbdError(f"{package!r} is not running on {self.serial}; running apps: "
                            f"{', '.join(running) or 'none'}")
        self._stop_process(process)
        self._log_death(process)
        return process.pid

    # -- connections and services

    def _accept(self, sock: socket.socket) -> None:
        with self._lock:
            refuse = self._closing or self._offline_until is not None
        if refuse:
            sock.close()  # rebooting: the port is there, adbd is not
            return
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        connection = _Connection(self, sock, next(self._connection_numbers))
        with self._lock:
            self._connections.add(connection)
        connection.start()

    def _connection_closed(self, connection: _Connection) -> None:
        with self._lock:
            self._connections.discard(connection)

    def _service_handler(self, service: str) -> Callable[[_Stream], None] | None:
        with self._lock:
            self.services_opened.append(service)
        match = re.fullmatch(r"(shell|exec)(,[^:]*)?:(.*)", service, re.S)
        if match:
            options = (match.group(2) or "").split(",")
            if "v2" in options:
                return None  # shell_v2 is not advertised, so not implemented
            command = match.group(3)
            return lambda stream: self._serve_shell(stream, command)
        if service == "sync:":
            return lambda stream: _SyncService(self.fs, stream).run()
        if service.startswith("reboot:"):
            return lambda stream: self._reboot_soon()
        return None

    def _serve_shell(self, stream: _Stream, command: str) -> None:
        if self._shell_hung:
            while not stream.wait_closed(0.2) and not self._closing:
                pass
            return
        sink = _Sink(stream)
        if not command.strip():
            sink.write("the simulated device has no interactive shell; run: adb shell COMMAND\n")
        else:
            _ShellSession(self, sink, next(self._pids)).run(command)
        sink.flush()

    # -- packages and apps

    def _packages_snapshot(self) -> dict[str, _Package]:
        with self._lock:
            return dict(self._packages)

    def _install(self, apk: str, cwd: str, out: _Sink) -> int:
        try:
            host = self.fs.host_path(apk, cwd)
            if not host.is_file():
                raise ApkError(f"{apk}: No such file or directory")
            package = read_apk_package(host)
        except (ApkError, OSError) as error:
            out.write(f"Failure [INSTALL_FAILED_INVALID_APK: Failed to parse {apk}: {error}]\n")
            return 1
        self._force_stop(package, reason="installPackageLI")
        apk_path = f"/data/app/{package}-1/base.apk"
        target = self.fs.host_path(apk_path)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(host, target)
        with self._lock:
            if package not in self._packages:
                self._packages[package] = _Package(package, next(self._uids), apk_path)
        out.write("Success\n")
        return 0

    def _uninstall(self, package: str, out: _Sink) -> int:
        with self._lock:
            known = package in self._packages
        if not known:
            out.write("Failure [DELETE_FAILED_INTERNAL_ERROR]\n")
            return 1
        self._force_stop(package, reason="deletePackageX")
        with self._lock:
            record = self._packages.pop(package)
        shutil.rmtree(self.fs.host_path(record.apk_path).parent, ignore_errors=True)
        out.write("Success\n")
        return 0

    def _start_app(self, package: str, activity: str) -> bool:
        """Start the package's app; False if it was running already."""
        with self._lock:
            if package in self._processes or self._closing:
                return False
            pid = next(self._pids)
            context = DeviceContext(self, package, pid)
            record = self._packages[package]
            factory = self._apps.get(package)
            process = _Process(package, pid, context)
            self._processes[package] = process  # registered first: the app may log from start()
        self._system_log("I", "ActivityManager", f"Start proc {pid}:{package}/u0a{record.uid - 10000} for "
                                                 f"activity {{{package}/{activity}}}")
        try:
            app = factory(context) if factory is not None else _IdleApp()
            process.app = app
            app.start()
            process.started = True
        except Exception as error:  # noqa: BLE001 - the app crashed on start; the device logs it, as Android does
            with self._lock:
                if self._processes.get(package) is process:
                    del self._processes[package]
            context._alive = False
            self._logs.append(pid, pid, "E", "AndroidRuntime", f"FATAL EXCEPTION: main\nProcess: {package}, "
                              f"PID: {pid}\n{type(error).__name__}: {error}", "crash")
            self._log_death(process)
        return True

    def _force_stop(self, package: str, reason: str) -> None:
        with self._lock:
            process = self._processes.pop(package, None)
            record = self._packages.get(package)
        if record is not None:
            self._system_log("I", "ActivityManager", f"Force stopping {package} appid={record.uid} user=0: "
                                                     f"{reason}")
        if process is not None:
            self._stop_process(process)

    def _stop_process(self, process: _Process) -> None:
        process.context._alive = False  # a killed process logs nothing more
        if process.app is None:
            return
        try:
            process.app.stop()
        except Exception:  # noqa: BLE001 - the process is gone either way
            _log.exception("app %s (pid %d) failed to stop", process.package, process.pid)

    def _log_death(self, process: _Process) -> None:
        self._system_log("I", "ActivityManager", f"Process {process.package} (pid {process.pid}) has died: fg TOP")

    def _system_log(self, priority: str, tag: str, message: str) -> None:
        self._logs.append(SYSTEM_SERVER_PID, _ACTIVITY_MANAGER_TID, priority, tag, message, "system")

    def _housekeeping(self) -> None:
        if self._offline_until is not None and time.monotonic() >= self._offline_until:
            self._offline_until = None
            self._system_log("I", "ActivityManager", "System now ready")
        if not self._lock.acquire(blocking=False):
            return
        try:
            dead = []
            for package, process in list(self._processes.items()):
                if not process.started:
                    continue  # still in start(): `alive` means nothing yet
                try:
                    alive = bool(process.app.alive)
                except Exception:  # noqa: BLE001 - an app that cannot say is not alive
                    alive = False
                if not alive:
                    dead.append(self._processes.pop(package))
        finally:
            self._lock.release()
        for process in dead:
            process.context._alive = False
            self._log_death(process)

    def __repr__(self) -> str:
        return f"<SimAndroidDevice {self._port and self.serial or 'unbound'} {self._state}>"

