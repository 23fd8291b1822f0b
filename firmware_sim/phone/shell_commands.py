"""The simulated Android shell's builtins and toybox commands, and `Sink`, where every command writes.

echo, export, exec, cd, pwd, true, false, sleep, id, whoami, getprop, ls, cat, rm, mkdir, touch, sha256sum,
pidof and reboot, with toybox's messages and exit statuses (`COMMANDS`). A command is called with the session
(`firmware_sim.phone.shell.ShellSession`), its arguments (expanded) and its stdout and stderr sinks, and returns
its exit status. The Android framework's commands (logcat, pm, am, monkey) are `firmware_sim.phone.android_commands`.

What it does NOT model: most options of each command (an unknown flag is an operand), ``ps``, ``kill`` and every
other toybox command (the shell answers "inaccessible or not found"), reading standard input.
"""
from __future__ import annotations

import errno
import hashlib
import os
import re
import shutil
import stat
from collections.abc import Callable, Mapping
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

from firmware_sim.phone.filesystem import os_error
from firmware_sim.phone.sync import SYNC_DATA_MAX
from firmware_sim.phone.transport import Stream

if TYPE_CHECKING:
    from firmware_sim.phone.shell import ShellSession

__all__ = ["COMMANDS", "NullSink", "ShellCommand", "Sink", "split_flags"]


class Sink:
    """Where a command writes: the stream (buffered, flushed per command), a file, or nowhere."""

    def __init__(self, stream: Stream | None = None) -> None:
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


class NullSink(Sink):
    """``/dev/null``: takes everything, keeps nothing."""

    def write(self, data: str | bytes) -> None:
        pass


#: A command: called with the session, its expanded arguments, its stdout and stderr; returns its exit status.
ShellCommand = Callable[["ShellSession", list[str], Sink, Sink], int]


def split_flags(args: list[str], flags: str) -> tuple[set[str], list[str]]:
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


def _errno_text(error: OSError) -> str:
    return error.strerror or str(error)


def _cmd_true(session: ShellSession, args: list[str], out: Sink, err: Sink) -> int:
    return 0


def _cmd_false(session: ShellSession, args: list[str], out: Sink, err: Sink) -> int:
    return 1


def _cmd_echo(session: ShellSession, args: list[str], out: Sink, err: Sink) -> int:
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


def _cmd_export(session: ShellSession, args: list[str], out: Sink, err: Sink) -> int:
    for arg in args:
        name, _, value = arg.partition("=")
        session.env[name] = value if "=" in arg else session.env.get(name, "")
    return 0


def _cmd_exec(session: ShellSession, args: list[str], out: Sink, err: Sink) -> int:
    return session.call(args, out, err)


def _cmd_pwd(session: ShellSession, args: list[str], out: Sink, err: Sink) -> int:
    out.write(session.cwd + "\n")
    return 0


def _cmd_cd(session: ShellSession, args: list[str], out: Sink, err: Sink) -> int:
    target = args[0] if args else "/"
    if not session.fs.host_path(target, session.cwd).is_dir():
        err.write(f"/system/bin/sh: cd: {target}: No such file or directory\n")
        return 2
    session.cwd = session.fs.normalize(target, session.cwd)
    return 0


def _cmd_sleep(session: ShellSession, args: list[str], out: Sink, err: Sink) -> int:
    try:
        seconds = float(args[0].rstrip("s")) if args else None
    except ValueError:
        seconds = None
    if seconds is None or seconds < 0:
        err.write(f"sleep: invalid number '{args[0] if args else ''}'\n")
        return 1
    session.sleep(seconds)
    return 0


def _cmd_id(session: ShellSession, args: list[str], out: Sink, err: Sink) -> int:
    out.write("uid=2000(shell) gid=2000(shell) groups=2000(shell),1004(input),1007(log),1011(adb),"
              "1015(sdcard_rw),1028(sdcard_r),3001(net_bt_admin),3002(net_bt),3003(inet) context=u:r:shell:s0\n")
    return 0


def _cmd_whoami(session: ShellSession, args: list[str], out: Sink, err: Sink) -> int:
    out.write("shell\n")
    return 0


def _cmd_getprop(session: ShellSession, args: list[str], out: Sink, err: Sink) -> int:
    props = session.device.props
    if not args:
        out.write("".join(f"[{name}]: [{props[name]}]\n" for name in sorted(props)))
    else:
        out.write(props.get(args[0], args[1] if len(args) > 1 else "") + "\n")
    return 0


def _ls_line(name: str, st: os.stat_result) -> str:
    when = datetime.fromtimestamp(st.st_mtime).strftime("%Y-%m-%d %H:%M")
    return f"{stat.filemode(st.st_mode)} {st.st_nlink} shell shell {st.st_size:>8} {when} {name}\n"


def _cmd_ls(session: ShellSession, args: list[str], out: Sink, err: Sink) -> int:
    flags, paths = split_flags(args, "laA1dhRst")
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


def _each_path(session: ShellSession, paths: list[str], err: Sink, name: str,
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


def _cmd_cat(session: ShellSession, args: list[str], out: Sink, err: Sink) -> int:
    def cat(path: str, host: Path) -> None:
        if host.is_dir():
            raise os_error(errno.EISDIR, path)
        with open(host, "rb") as handle:
            while chunk := handle.read(SYNC_DATA_MAX):
                out.write(chunk)

    return _each_path(session, args, err, "cat", cat)


def _cmd_rm(session: ShellSession, args: list[str], out: Sink, err: Sink) -> int:
    flags, paths = split_flags(args, "frRiv")
    force, recursive = "f" in flags, bool(flags & {"r", "R"})
    if not paths and not force:
        err.write("rm: Needs 1 argument\n")
        return 1

    def rm(path: str, host: Path) -> None:
        if not os.path.lexists(host):
            if force:
                return
            raise os_error(errno.ENOENT, path)
        session.fs.check_writable(path, session.cwd)
        if host.is_dir() and not host.is_symlink():
            if not recursive:
                raise os_error(errno.EISDIR, path)
            shutil.rmtree(host)
        else:
            host.unlink()

    return _each_path(session, paths, err, "rm", rm)


def _cmd_mkdir(session: ShellSession, args: list[str], out: Sink, err: Sink) -> int:
    if args[:1] == ["-m"]:
        args = args[2:]
    flags, paths = split_flags(args, "pv")
    if not paths:
        err.write("mkdir: Needs 1 argument\n")
        return 1

    def mkdir(path: str, host: Path) -> None:
        if host.is_dir() and "p" in flags:
            return
        if os.path.lexists(host):
            raise os_error(errno.EEXIST, path)
        session.fs.check_writable(path, session.cwd)
        if "p" in flags:
            host.mkdir(parents=True)
        else:
            host.mkdir()

    return _each_path(session, paths, err, "mkdir", mkdir, quoted=True)


def _cmd_touch(session: ShellSession, args: list[str], out: Sink, err: Sink) -> int:
    def touch(path: str, host: Path) -> None:
        if not host.exists():
            session.fs.check_writable(path, session.cwd)
        host.touch()

    return _each_path(session, args, err, "touch", touch, quoted=True)


def _cmd_sha256sum(session: ShellSession, args: list[str], out: Sink, err: Sink) -> int:
    def sha256sum(path: str, host: Path) -> None:
        if host.is_dir():
            raise os_error(errno.EISDIR, path)
        digest = hashlib.sha256()
        with open(host, "rb") as handle:
            while chunk := handle.read(1 << 20):
                digest.update(chunk)
        out.write(f"{digest.hexdigest()}  {path}\n")

    return _each_path(session, args, err, "sha256sum", sha256sum)


def _cmd_pidof(session: ShellSession, args: list[str], out: Sink, err: Sink) -> int:
    _, names = split_flags(args, "s")
    running = session.device.running_apps
    pids = [str(running[name]) for name in names if name in running]
    if not pids:
        return 1
    out.write(" ".join(pids) + "\n")
    return 0


def _cmd_reboot(session: ShellSession, args: list[str], out: Sink, err: Sink) -> int:
    out.flush()
    session.device._reboot_soon()
    session.sleep(60.0)  # the device goes down under the command, as on a phone
    return 0


#: The shell's builtins and toybox commands this device has, by name.
COMMANDS: Mapping[str, ShellCommand] = {
    "true": _cmd_true,
    "false": _cmd_false,
    "echo": _cmd_echo,
    "export": _cmd_export,
    "exec": _cmd_exec,
    "pwd": _cmd_pwd,
    "cd": _cmd_cd,
    "sleep": _cmd_sleep,
    "id": _cmd_id,
    "whoami": _cmd_whoami,
    "getprop": _cmd_getprop,
    "ls": _cmd_ls,
    "cat": _cmd_cat,
    "rm": _cmd_rm,
    "mkdir": _cmd_mkdir,
    "touch": _cmd_touch,
    "sha256sum": _cmd_sha256sum,
    "pidof": _cmd_pidof,
    "reboot": _cmd_reboot,
}
