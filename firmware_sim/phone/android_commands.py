"""The Android framework's commands in the simulated shell: logcat, pm, am and monkey (`COMMANDS`).

- ``logcat``: formats (``-v``), filter specs and ``ANDROID_LOG_TAGS``, ``-c``, ``-d``, ``-t N``, ``-T N``,
  ``-b``, ``--pid=``; without ``-d`` it streams until the client closes;
- ``pm``: install, uninstall, list packages (``-3``, ``-s``, ``-f``, a filter), path, clear;
- ``am``: start (``-n PACKAGE/ACTIVITY``, ``-W``, ``-S``), force-stop;
- ``monkey -p PACKAGE``: starts the package's app.

The packages and apps they act on are the device's `firmware_sim.phone.app_manager.AppManager`.

What it does NOT model: intents resolved by action or data (``am start`` needs a component), ``cmd``, ``dumpsys``,
``pm grant``, users and profiles, logcat's ``-f``/``-r``/``-n``/``-e`` (an error saying so).
"""
from __future__ import annotations

import re
from collections.abc import Mapping
from typing import TYPE_CHECKING

from firmware_sim.phone.logcat import LOG_BUFFERS, LOGCAT_FORMATS, LogEntry, LogFilter, format_log_entry
from firmware_sim.phone.packages import SYSTEM_PACKAGES
from firmware_sim.phone.shell_commands import ShellCommand, Sink, split_flags

if TYPE_CHECKING:
    from firmware_sim.phone.shell import ShellSession

__all__ = ["COMMANDS"]


def _cmd_logcat(session: ShellSession, args: list[str], out: Sink, err: Sink) -> int:
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
                buffers.update(LOG_BUFFERS if value in ("all", "default") else value.split(","))
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
    buffers = buffers or set(LOG_BUFFERS)
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


def _pm_answer(out: Sink, answer: str) -> int:
    """Print pm's one-line answer; the exit status: 0 for ``Success``, else 1."""
    out.write(answer + "\n")
    return 0 if answer == "Success" else 1


def _cmd_pm(session: ShellSession, args: list[str], out: Sink, err: Sink) -> int:
    device = session.device
    sub, rest = (args[0], args[1:]) if args else ("", [])
    if sub == "list" and rest[:1] == ["packages"]:
        flags, operands = split_flags(rest[1:], "3sfdeiUu")
        packages = device.app_manager.packages()
        names = sorted(set(SYSTEM_PACKAGES) | set(packages))
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
        return _pm_answer(out, device.app_manager.install(operands[0], session.cwd))
    if sub == "uninstall":
        operands = [arg for arg in rest if not arg.startswith("-")]
        if not operands:
            err.write("Error: package name not specified\n")
            return 1
        return _pm_answer(out, device.app_manager.uninstall(operands[-1]))
    if sub == "path":
        packages = device.app_manager.packages()
        if rest and rest[-1] in packages:
            out.write(f"package:{packages[rest[-1]].apk_path}\n")
            return 0
        return 1
    if sub == "clear":
        if rest and rest[-1] in device.app_manager.packages():
            device.app_manager.force_stop(rest[-1], reason=f"clear data from pid {session.pid}")
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


def _cmd_am(session: ShellSession, args: list[str], out: Sink, err: Sink) -> int:
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
        if package not in device.app_manager.packages():
            full = package + activity if activity.startswith(".") else activity
            err.write(f"Error type 3\nError: Activity class {{{package}/{full}}} does not exist.\n")
            return 1
        if stop_first:
            device.app_manager.force_stop(package, reason=f"from pid {session.pid}")
        started = device.app_manager.start(package, activity)
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
        device.app_manager.force_stop(operands[-1], reason=f"from pid {session.pid}")
        return 0
    err.write(f"Unknown command: {sub}\n" if sub else
              "usage: am start [-W] [-S] -n PACKAGE/ACTIVITY | am force-stop PACKAGE\n")
    return 1


def _cmd_monkey(session: ShellSession, args: list[str], out: Sink, err: Sink) -> int:
    package = args[args.index("-p") + 1] if "-p" in args[:-1] else None
    if package is None or package not in session.device.app_manager.packages():
        err.write("** No activities found to run, monkey aborted.\n")
        return 251
    session.device.app_manager.start(package, ".MainActivity")
    out.write("Events injected: 1\n## Network stats: elapsed time=1ms (0ms mobile, 0ms wifi, 1ms not connected)\n")
    return 0


#: The Android framework's commands this device has, by name.
COMMANDS: Mapping[str, ShellCommand] = {
    "logcat": _cmd_logcat,
    "pm": _cmd_pm,
    "am": _cmd_am,
    "monkey": _cmd_monkey,
}
