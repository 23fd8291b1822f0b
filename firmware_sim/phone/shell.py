"""The simulated Android shell: runs one ``shell:`` command line against the device (`ShellSession`).

It parses the line (`firmware_sim.phone.shell_lexer`), expands each word (``$?``, ``$$``, ``$VAR``, globs against
the device's files), sets up the redirections (``>``, ``>>``, ``2>``, ``2>&1``, ``/dev/null``; ``<`` is checked,
never read), honours ``NAME=value`` before a command and ``;``/``&&``/``||`` between commands, and calls the
commands (`firmware_sim.phone.shell_commands`, `firmware_sim.phone.android_commands`). Anything else is
``/system/bin/sh: <cmd>: inaccessible or not found`` with status 127.

What it does NOT model: interactive shells and ptys, pipes, background jobs, command substitution, a PATH
search (a command is found by its name, or as /system/bin/NAME), standard input.
"""
from __future__ import annotations

import errno
import logging
import os
import posixpath
import re
import time
from fnmatch import fnmatchcase
from pathlib import Path
from typing import TYPE_CHECKING

from firmware_sim.phone import android_commands, shell_commands
from firmware_sim.phone.filesystem import DeviceFileSystem, os_error
from firmware_sim.phone.shell_commands import NullSink, Sink
from firmware_sim.phone.shell_lexer import GLOB_CHARS, ShellSyntaxError, SimpleCommand, Word, parse_command_line
from firmware_sim.phone.transport import StreamClosed

if TYPE_CHECKING:
    from firmware_sim.phone.device import SimAndroidDevice

__all__ = ["ShellSession"]

_log = logging.getLogger(__name__)

#: Every command the shell knows, by name.
_COMMANDS = {**shell_commands.COMMANDS, **android_commands.COMMANDS}


class ShellSession:
    """One ``shell:`` command line, run against the device: cwd, ``$?``, and the commands."""

    def __init__(self, device: SimAndroidDevice, out: Sink, pid: int) -> None:
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

    def _expand(self, word: Word) -> list[str]:
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
                    globbing = globbing or any(c in part.text for c in GLOB_CHARS)
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
                if not any(c in component for c in GLOB_CHARS):
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
        files: list[tuple[Sink, Path, bool]] = []
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
                sink = NullSink()
            else:
                try:
                    self.fs.check_writable(target, self.cwd)
                    host = self.fs.host_path(target, self.cwd)
                    if host.is_dir():
                        raise os_error(errno.EISDIR, target)
                    if not host.parent.is_dir():
                        raise os_error(errno.ENOENT, target)
                except OSError as error:
                    self.out.write(f"/system/bin/sh: can't create {target}: {error.strerror}\n")
                    return 1
                sink = Sink()
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
            status = self.call(args, out, err)
        finally:
            if args:  # NAME=value before a command is for that command only
                self.env = saved
            for sink, host, append in files:
                with open(host, "ab" if append else "wb") as handle:
                    handle.write(sink.buffer)
        return status

    def call(self, args: list[str], out: Sink, err: Sink) -> int:
        """Run one expanded command (``exec`` runs its operands through here too); returns its exit status."""
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
        except StreamClosed:
            raise
        except Exception as error:  # noqa: BLE001 - a simulator bug shows up as the command's failure
            _log.exception("simulated command %r failed", args)
            err.write(f"{name}: simulated device error: {error!r}\n")
            return 1

    def sleep(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while not self.out.closed and time.monotonic() < deadline:
            time.sleep(min(0.05, max(0.0, deadline - time.monotonic())))


