"""The simulated Android device (firmware_sim.phone): driven by the real adb binary and adbutils, and at the wire.

The adb tests share one adb server on a free loopback port (``ANDROID_ADB_SERVER_PORT``), with USB, emulator
scanning and mDNS off and its key in a temporary HOME, killed at the end of the module; they skip, saying why,
when the adb binary bundled with adbutils cannot run here. The wire and shell tests speak the protocol
themselves (`RawAdb`) and need no adb binary. Every test runs under a watchdog so that nothing can hang.
"""
from __future__ import annotations

import hashlib
import itertools
import json
import os
import random
import re
import socket
import struct
import threading
import time

import adbutils
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from support import AppFactory, adb_problem, isolated_adb_server, watchdog

from firmware_sim.phone import adb_wire, filesystem, logcat, shell_lexer
from firmware_sim.phone.adb_wire import (
    A_CLSE,
    A_CNXN,
    A_OKAY,
    A_OPEN,
    A_VERSION,
    A_WRTE,
    AdbdError,
    AdbMessage,
    AdbProtocolError,
    decode_message,
    encode_message,
)
from firmware_sim.phone.device import SimAndroidDevice
from firmware_sim.phone.filesystem import DeviceFileSystem
from firmware_sim.phone.logcat import LogEntry, LogFilter, format_log_entry
from firmware_sim.phone.packages import ApkError, DeviceContext, build_apk, read_apk_package
from firmware_sim.phone.shell_lexer import ShellSyntaxError, parse_command_line
from harness.wire.events import FuelResult, ModelRef, event_to_json, parse_event_line

PACKAGE = "com.example.dtg"
MODEL_PATH = "/data/local/tmp/dtg/model.onnx"
TEST_TIMEOUT_S = 20.0


# --- the watchdog ------------------------------------------------------------------------------------------

@pytest.fixture(autouse=True)
def _watchdog():
    """Fail a test that runs longer than TEST_TIMEOUT_S (SIGALRM interrupts blocking socket reads too)."""
    with watchdog(TEST_TIMEOUT_S):
        yield


# --- the real adb ----------------------------------------------------------------------------------------------

ADB_PROBLEM = adb_problem()
needs_adb = pytest.mark.skipif(ADB_PROBLEM is not None, reason=f"the real adb is needed: {ADB_PROBLEM}")


@pytest.fixture(scope="module")
def adb_server(tmp_path_factory):
    if ADB_PROBLEM is not None:
        pytest.skip(f"the real adb is needed: {ADB_PROBLEM}")
    with isolated_adb_server(tmp_path_factory.mktemp("adb-home")) as server:
        yield server


class EdgeApp:
    """A stand-in DTG app: reads the pushed model and logs a fuel result every 40 ms (tag EdgeAI), with noise."""

    def __init__(self, context: DeviceContext) -> None:
        self.context = context
        self._stop = threading.Event()
        self._alive = False
        self.stopped = False

    @property
    def alive(self) -> bool:
        return self._alive

    def start(self) -> None:
        model = self.context.host_path(MODEL_PATH).read_bytes()  # no model: the app crashes, as a real one
        self.model = ModelRef("fuel", hashlib.sha256(model).hexdigest()[:16])
        self._alive = True
        threading.Thread(target=self._run, daemon=True).start()

    def _run(self) -> None:
        for seq in itertools.count(1):
            if self._stop.wait(0.04):
                return
            self.context.log("EdgeAI", "I", event_to_json(FuelResult(float(seq), 1.5, self.model, 5.5, seq=seq)))
            self.context.log("Chatty", "D", "noise")

    def crash(self) -> None:
        self._alive = False
        self._stop.set()

    def stop(self) -> None:
        self.stopped = True
        self._alive = False
        self._stop.set()


@pytest.fixture
def factory():
    return AppFactory(EdgeApp)


@pytest.fixture
def phone(adb_server, factory):
    """A simulated device, connected to the adb server."""
    with SimAndroidDevice(apps={PACKAGE: factory}, reboot_duration_s=1.0) as device:
        assert "connected to" in adb_server.run("connect", device.serial).stdout
        adb_server.wait_state(device.serial, "device")
        yield device
        adb_server.run("disconnect", device.serial, check=False)


def _install_and_push_model(adb_server, phone, tmp_path, model=b"onnx-bytes") -> None:
    apk = tmp_path / "dtg.apk"
    apk.write_bytes(build_apk(PACKAGE))
    (tmp_path / "model.onnx").write_bytes(model)
    adb_server.run("-s", phone.serial, "push", str(tmp_path / "model.onnx"), MODEL_PATH)
    adb_server.run("-s", phone.serial, "push", str(apk), "/data/local/tmp/dtg.apk")
    assert adb_server.run("-s", phone.serial, "shell", "pm install -r /data/local/tmp/dtg.apk").stdout == "Success\n"


def _read_lines(connection, count: int, timeout_s: float = 5.0) -> list[str]:
    connection.conn.settimeout(timeout_s)
    reader = connection.conn.makefile("r", encoding="utf-8")
    return [reader.readline().rstrip("\n") for _ in range(count)]


# 1. shell -------------------------------------------------------------------------------------------------------

@needs_adb
def test_adb_shell_echo_and_devices_list(adb_server, phone):
    assert adb_server.run("-s", phone.serial, "shell", "echo", "hi").stdout == "hi\n"
    listing = adb_server.run("devices", "-l").stdout
    assert re.search(rf"^{re.escape(phone.serial)}\s+device product:dtg_sim model:DTG_SIM device:dtg_sim", listing,
                     re.M), listing
    unknown = adb_server.run("-s", phone.serial, "shell", "frobnicate --now")
    assert unknown.stdout == "/system/bin/sh: frobnicate: inaccessible or not found\n"
    assert adb_server.run("-s", phone.serial, "exec-out", "echo", "raw").stdout == "raw\n"


# 2. push / pull -------------------------------------------------------------------------------------------------

@needs_adb
def test_adb_push_pull_round_trip_a_megabyte_byte_exactly(adb_server, phone, tmp_path):
    data = random.Random(7).randbytes(1 << 20)
    (tmp_path / "blob.bin").write_bytes(data)
    adb_server.run("-s", phone.serial, "push", str(tmp_path / "blob.bin"), "/data/local/tmp/blob.bin")
    adb_server.run("-s", phone.serial, "pull", "/data/local/tmp/blob.bin", str(tmp_path / "back.bin"))
    assert (tmp_path / "back.bin").read_bytes() == data
    assert phone.host_path("/data/local/tmp/blob.bin").read_bytes() == data
    digest = adb_server.run("-s", phone.serial, "shell", "sha256sum /data/local/tmp/blob.bin").stdout
    assert digest == f"{hashlib.sha256(data).hexdigest()}  /data/local/tmp/blob.bin\n"
    # A directory pulls with sync LIST; a missing file is reported as such.
    adb_server.run("-s", phone.serial, "pull", "/data/local/tmp", str(tmp_path / "tree"))
    assert (tmp_path / "tree" / "blob.bin").read_bytes() == data
    missing = adb_server.run("-s", phone.serial, "pull", "/data/local/tmp/nope", str(tmp_path / "x"), check=False)
    assert missing.returncode != 0 and "does not exist" in missing.stderr


# 3. adbutils ----------------------------------------------------------------------------------------------------

@needs_adb
def test_adbutils_connect_shell_sync_and_props(adb_server, phone, tmp_path):
    client = adbutils.AdbClient(host="127.0.0.1", port=adb_server.port)
    assert "connected to" in client.connect(phone.serial, timeout=5)
    device = client.device(phone.serial)
    assert device.shell("echo hi") == "hi"
    assert device.shell("getprop ro.product.model") == "DTG-SIM" == device.prop.model
    assert device.shell2("ls /nope").returncode == 1  # adbutils appends "; echo X4EXIT:$?"
    assert device.shell2("false || echo fallback").output == "fallback\n"
    data = random.Random(3).randbytes(300_000)
    device.sync.push(data, "/data/local/tmp/dtg/config.bin")  # parents are created (fixed_push_mkdir)
    device.sync.pull("/data/local/tmp/dtg/config.bin", tmp_path / "config.bin")
    assert (tmp_path / "config.bin").read_bytes() == data
    assert device.sync.stat("/data/local/tmp/dtg/config.bin").size == len(data)
    assert [entry.path for entry in device.sync.list("/data/local/tmp/dtg")] == [".", "..", "config.bin"]


# 4. install, start, logcat, force-stop -------------------------------------------------------------------------

@needs_adb
def test_install_start_stream_logcat_and_force_stop(adb_server, phone, factory, tmp_path):
    _install_and_push_model(adb_server, phone, tmp_path)
    device = adb_server.device(phone.serial)
    assert PACKAGE in device.list_packages()
    assert device.shell(f"am start -n {PACKAGE}/.MainActivity") == f"Starting: Intent {{ cmp={PACKAGE}/.MainActivity }}"
    pid = int(device.shell(f"pidof {PACKAGE}"))
    stream = device.shell("logcat -v time -s EdgeAI", stream=True)
    try:
        lines = _read_lines(stream, 4)
    finally:
        stream.close()
    assert lines[0] == "--------- beginning of main"
    model_sha = hashlib.sha256(b"onnx-bytes").hexdigest()[:16]
    for line in lines[1:]:
        match = re.fullmatch(r"\d\d-\d\d \d\d:\d\d:\d\d\.\d{3} I/EdgeAI  \(\s*(\d+)\): (.*)", line)
        assert match, line
        assert int(match[1]) == pid and json.loads(match[2])["model"]["sha256"] == model_sha
    # The default format is threadtime, which the harness's event parser reads.
    dump = adb_server.run("-s", phone.serial, "logcat", "-d", "-s", "EdgeAI").stdout.splitlines()
    events = [parse_event_line(line) for line in dump[1:]]
    assert events and all(isinstance(event, FuelResult) and event.model.sha256 == model_sha for event in events)
    device.shell(f"am force-stop {PACKAGE}")
    assert device.shell(f"pidof {PACKAGE}") == "" and device.shell2(f"pidof {PACKAGE}").returncode == 1
    assert factory.apps[-1].stopped and PACKAGE not in phone.running_apps
    assert "Force stopping com.example.dtg" in device.shell("logcat -d -s ActivityManager")


@needs_adb
def test_adb_install_takes_the_legacy_path_and_bad_apks_fail(adb_server, phone, tmp_path):
    apk = tmp_path / "dtg.apk"
    apk.write_bytes(build_apk(PACKAGE))
    assert "Success" in adb_server.run("-s", phone.serial, "install", str(apk)).stdout  # push + pm install + rm
    assert phone.installed_packages == (PACKAGE,) and not phone.host_path("/data/local/tmp/dtg.apk").exists()
    (tmp_path / "bad.apk").write_bytes(b"not a zip")
    adb_server.run("-s", phone.serial, "push", str(tmp_path / "bad.apk"), "/data/local/tmp/bad.apk")
    out = adb_server.run("-s", phone.serial, "shell", "pm install /data/local/tmp/bad.apk").stdout
    assert out == "Failure [INSTALL_FAILED_INVALID_APK: Failed to parse /data/local/tmp/bad.apk: not a zip archive]\n"
    # An app that cannot start (its model was never pushed) crashes, and ActivityManager says so.
    assert "Starting: Intent" in adb_server.run("-s", phone.serial, "shell", f"am start -n {PACKAGE}/.Main").stdout
    log = adb_server.run("-s", phone.serial, "logcat", "-d").stdout
    assert "E AndroidRuntime: FATAL EXCEPTION: main" in log and re.search(rf"Process {PACKAGE} \(pid \d+\) has died",
                                                                          log)


# 5. faults ------------------------------------------------------------------------------------------------------

@needs_adb
def test_hung_shell_ends_at_the_callers_timeout(adb_server, phone):
    device = adb_server.device(phone.serial)
    phone.hang_shell(True)
    started = time.monotonic()
    with pytest.raises(adbutils.AdbTimeout):
        device.shell("echo never", timeout=1.0)
    assert 0.9 < time.monotonic() - started < 3.0
    phone.hang_shell(False)
    assert device.shell("echo again") == "again"


@needs_adb
def test_dropped_connections_break_calls_and_the_device_comes_back(adb_server, phone):
    device = adb_server.device(phone.serial)
    stream = device.shell("logcat", stream=True)
    stream.conn.settimeout(5)
    assert phone.drop_connections() >= 1
    stream.read_until_close()  # the open logcat ends at EOF (a hang would raise AdbTimeout after 5 s)
    stream.close()
    # The adb server reconnects to a TCP device by itself; the device answers again.
    deadline = time.monotonic() + 10
    while adb_server.run("-s", phone.serial, "shell", "echo back", check=False).stdout != "back\n":
        assert time.monotonic() < deadline, "device did not come back after drop_connections()"
        time.sleep(0.1)
    assert phone.connection_count == 1


@needs_adb
def test_reboot_makes_the_device_unreachable_then_it_returns_with_apps_reset(adb_server, phone, factory, tmp_path):
    _install_and_push_model(adb_server, phone, tmp_path)
    adb_server.run("-s", phone.serial, "shell", f"am start -n {PACKAGE}/.MainActivity")
    adb_server.run("-s", phone.serial, "reboot")
    adb_server.wait_state(phone.serial, "offline", timeout_s=2)
    assert adb_server.run("-s", phone.serial, "shell", "echo x", check=False).returncode != 0
    adb_server.wait_state(phone.serial, "device", timeout_s=10)
    assert factory.apps[-1].stopped and phone.running_apps == {}
    device = adb_server.device(phone.serial)
    assert device.shell(f"pidof {PACKAGE}") == ""
    assert "EdgeAI" not in device.shell("logcat -d")  # the log lives in RAM
    assert PACKAGE in device.list_packages() and device.sync.exists(MODEL_PATH)  # flash survives


@needs_adb
def test_kill_app_and_an_app_dying_by_itself_log_their_death(adb_server, phone, factory, tmp_path):
    _install_and_push_model(adb_server, phone, tmp_path)
    device = adb_server.device(phone.serial)
    device.shell(f"am start -n {PACKAGE}/.MainActivity")
    pid = phone.kill_app(PACKAGE)
    assert device.shell(f"pidof {PACKAGE}") == ""
    assert f"I ActivityManager: Process {PACKAGE} (pid {pid}) has died" in device.shell("logcat -d -s ActivityManager")
    with pytest.raises(AdbdError, match="not running.*running apps: none"):
        phone.kill_app(PACKAGE)
    device.shell(f"am start -n {PACKAGE}/.MainActivity")
    pid = int(device.shell(f"pidof {PACKAGE}"))
    factory.apps[-1].crash()
    deadline = time.monotonic() + 2
    while f"(pid {pid}) has died" not in device.shell("logcat -d -s ActivityManager"):
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert device.shell(f"pidof {PACKAGE}") == "" and not factory.apps[-1].stopped


@needs_adb
def test_stop_logging_silences_a_streaming_logcat(adb_server, phone, tmp_path):
    _install_and_push_model(adb_server, phone, tmp_path)
    device = adb_server.device(phone.serial)
    device.shell(f"am start -n {PACKAGE}/.MainActivity")
    stream = device.shell("logcat -v brief EdgeAI:I *:S", stream=True)
    try:
        assert _read_lines(stream, 3)[1].startswith("I/EdgeAI  (")
        phone.stop_logging(True)
        time.sleep(0.2)  # drain what was in flight
        stream.conn.settimeout(0.1)
        try:
            while stream.conn.recv(65536):
                pass
        except TimeoutError:
            pass
        stream.conn.settimeout(0.5)
        with pytest.raises(socket.timeout):
            stream.conn.recv(65536)
        phone.stop_logging(False)
        assert b"I/EdgeAI" in stream.conn.recv(65536)
    finally:
        stream.close()


# 6. the sandbox --------------------------------------------------------------------------------------------------

@needs_adb
def test_paths_never_leave_the_sandbox(adb_server, phone, tmp_path):
    serial = phone.serial
    assert adb_server.run("-s", serial, "shell", "cat ../../../../etc/passwd").stdout == \
        "cat: ../../../../etc/passwd: No such file or directory\n"
    assert "No such file" in adb_server.run("-s", serial, "shell", "cd /data/local/tmp && cat ../../../../../etc/passwd"
                                            ).stdout
    (tmp_path / "x").write_bytes(b"escape")
    outside = phone.root.parent / "x"
    pushed = adb_server.run("-s", serial, "push", str(tmp_path / "x"), "/../../x", check=False)
    assert pushed.returncode != 0 and "Read-only file system" in pushed.stderr and not outside.exists()
    adb_server.run("-s", serial, "push", str(tmp_path / "x"), "/data/local/tmp/../../../../../data/local/tmp/in")
    assert phone.host_path("/data/local/tmp/in").read_bytes() == b"escape"
    device = adb_server.device(serial)
    assert not device.sync.exists("/../../../etc/passwd")
    # A symlink pushed from the host would be a way out: refused.
    (tmp_path / "link").symlink_to("/etc")
    linked = adb_server.run("-s", serial, "push", str(tmp_path / "link"), "/data/local/tmp/link", check=False)
    assert linked.returncode != 0 and "symlinks are not supported" in linked.stderr
    # A link planted inside the sandbox from the host side is not followed out of it.
    os.symlink("/etc", phone.host_path("/data/local/tmp/planted"))
    planted = "/data/local/tmp/planted/passwd"
    assert device.shell(f"cat {planted}") == f"cat: {planted}: Permission denied"
    assert device.shell("rm -r /data") == "rm: /data: Permission denied"
    assert phone.host_path("/data/local/tmp/in").exists()


# --- the wire, without adb -----------------------------------------------------------------------------------

class RawAdb:
    """The host side of one ADB connection, spoken directly: what the adb server does, minus everything else."""

    def __init__(self, device: SimAndroidDevice, max_payload: int = 1024 * 1024) -> None:
        self.sock = socket.create_connection(("127.0.0.1", device.port), timeout=5)
        self._ids = itertools.count(100)
        self.send(A_CNXN, A_VERSION, max_payload, b"host::features=shell_v2,cmd,stat_v2\0")
        reply = self.recv()
        assert reply is not None and reply.command == A_CNXN, reply
        self.cnxn = reply

    def send(self, command: int, arg0: int, arg1: int, payload: bytes = b"") -> None:
        self.sock.sendall(encode_message(AdbMessage(command, arg0, arg1, payload)))

    def recv(self, timeout_s: float = 5.0) -> AdbMessage | None:
        self.sock.settimeout(timeout_s)
        try:
            header = self._exact(24)
        except TimeoutError:
            return None
        if header is None:
            return None
        length = struct.unpack("<I", header[12:16])[0]
        self.sock.settimeout(5)
        return decode_message(header + (self._exact(length) or b""))

    def _exact(self, n_bytes: int) -> bytes | None:
        data = b""
        while len(data) < n_bytes:
            chunk = self.sock.recv(n_bytes - len(data))
            if not chunk:
                return None
            data += chunk
        return data

    def open(self, service: str) -> int:
        local_id = next(self._ids)
        self.send(A_OPEN, local_id, 0, service.encode() + b"\0")
        return local_id

    def collect(self, local_ids: list[int]) -> tuple[dict[int, bytes], list[int]]:
        """Run streams to their end, acking every WRTE: output per stream, and stream ids in order of closing."""
        output = {local_id: b"" for local_id in local_ids}
        closed: list[int] = []
        while len(closed) < len(local_ids):
            message = self.recv()
            assert message is not None, f"no message; streams still open: {set(local_ids) - set(closed)}"
            if message.command == A_WRTE:
                output[message.arg1] += message.payload
                self.send(A_OKAY, message.arg1, message.arg0)
            elif message.command == A_CLSE:
                closed.append(message.arg1)
        return output, closed

    def run(self, service: str) -> bytes:
        local_id = self.open(service)
        return self.collect([local_id])[0][local_id]

    def close(self) -> None:
        self.sock.close()


def sh(device: SimAndroidDevice, command: str) -> str:
    raw = RawAdb(device)
    try:
        return raw.run("shell:" + command).decode()
    finally:
        raw.close()


@pytest.fixture
def bare():
    """A started device nobody is connected to."""
    with SimAndroidDevice(apps={PACKAGE: AppFactory(EdgeApp)}) as device:
        yield device


def test_handshake_banner_and_unknown_services(bare):
    raw = RawAdb(bare)
    assert raw.cnxn.arg0 == 0x01000001 and raw.cnxn.arg1 == 256 * 1024
    assert raw.cnxn.payload.decode() == ("device::ro.product.name=dtg_sim;ro.product.model=DTG-SIM;"
                                         "ro.product.device=dtg_sim;features=fixed_push_mkdir")
    local_id = raw.open("tcp:5555")  # forwarding is not modelled: the open is refused
    assert raw.recv() == AdbMessage(A_CLSE, 0, local_id)
    raw.close()


def test_concurrent_streams_and_connections(bare):
    first, second = RawAdb(bare), RawAdb(bare)
    slow = first.open("shell:sleep 0.3; echo slow")
    fast = first.open("shell:echo fast")
    other = second.open("shell:echo other")
    out, order = first.collect([slow, fast])
    assert out == {slow: b"slow\n", fast: b"fast\n"} and order == [fast, slow]
    assert second.collect([other])[0] == {other: b"other\n"}
    assert bare.connection_count == 2
    first.close()
    second.close()


def test_one_write_in_flight_until_the_peer_acks(bare):
    data = random.Random(1).randbytes(600 * 1024)
    bare.host_path("/data/local/tmp/big").write_bytes(data)
    raw = RawAdb(bare)
    local_id = raw.open("shell:cat /data/local/tmp/big")
    assert raw.recv().command == A_OKAY
    received = b""
    while True:
        message = raw.recv()
        if message.command == A_CLSE:
            break
        assert message.command == A_WRTE and len(message.payload) <= 256 * 1024
        received += message.payload
        if len(received) < len(data):
            assert raw.recv(timeout_s=0.15) is None  # nothing more until our OKAY
        raw.send(A_OKAY, local_id, message.arg0)
    assert received == data
    raw.close()


def test_a_malformed_header_closes_the_connection(bare):
    raw = RawAdb(bare)
    raw.sock.sendall(struct.pack("<6I", A_OPEN, 1, 0, 0, 0, 0))  # magic is not command ^ 0xffffffff
    assert raw.recv() is None
    raw.close()


# --- the shell, without adb ---------------------------------------------------------------------------------

def test_shell_sequencing_status_and_quoting(bare):
    assert sh(bare, "false; echo $?; true && echo and; false && echo no || echo or") == "1\nand\nor\n"
    assert sh(bare, "ls /nope; echo X4EXIT:$?") == "ls: /nope: No such file or directory\nX4EXIT:1\n"
    assert sh(bare, "nope; echo $?") == "/system/bin/sh: nope: inaccessible or not found\n127\n"
    assert sh(bare, """echo 'a  b' "c $?" d\\ e '$HOME' "$HOME" $UNSET""") == "a  b c 0 d e $HOME /\n"
    assert sh(bare, "echo -n x; echo y") == "xy\n"
    assert sh(bare, "echo a | cat") == "/system/bin/sh: '|' (pipes, background jobs) is not supported by the " \
                                       "simulated shell\n"
    assert sh(bare, "echo 'open") == "/system/bin/sh: unterminated quoted string\n"


def test_shell_files_redirections_and_globs(bare):
    assert sh(bare, "mkdir /data/local/tmp/d && cd /data/local/tmp/d && echo one > a.txt && echo two >> a.txt "
                    "&& cat a.txt && pwd") == "one\ntwo\n/data/local/tmp/d\n"
    assert sh(bare, "echo x > /data/local/tmp/d/b.log; ls /data/local/tmp/d/*.txt /data/local/tmp/d/b*") == \
        "/data/local/tmp/d/a.txt\n/data/local/tmp/d/b.log\n"
    assert sh(bare, "ls /nope 2>/dev/null; echo $?") == "1\n"
    assert sh(bare, "mkdir /data/local/tmp/d") == "mkdir: '/data/local/tmp/d': File exists\n"
    assert sh(bare, "mkdir /system/x; echo nope > /x") == ("mkdir: '/system/x': Read-only file system\n"
                                                        "/system/bin/sh: can't create /x: Read-only file system\n")
    assert sh(bare, "rm /data/local/tmp/d") == "rm: /data/local/tmp/d: Is a directory\n"
    assert sh(bare, "rm -r /data/local/tmp/d && ls /data/local/tmp; rm /data/local/tmp/gone") == \
        "rm: /data/local/tmp/gone: No such file or directory\n"
    assert sh(bare, "rm -f /data/local/tmp/gone; echo $?") == "0\n"
    assert sh(bare, "getprop ro.build.version.sdk; getprop no.such.prop; getprop no.such def") == "33\n\ndef\n"
    assert "[ro.product.model]: [DTG-SIM]\n" in sh(bare, "getprop")


def test_shell_packages_and_apps(bare):
    bare.host_path("/data/local/tmp/a.apk").write_bytes(build_apk("com.other.app"))
    assert sh(bare, "pm install /data/local/tmp/a.apk") == "Success\n"
    assert sh(bare, "pm list packages -3") == "package:com.other.app\n"
    assert sh(bare, "pm path com.other.app") == "package:/data/app/com.other.app-1/base.apk\n"
    assert sh(bare, "am start -W -n com.other.app/.Main").splitlines()[:2] == [
        "Starting: Intent { cmp=com.other.app/.Main }", "Status: ok"]
    assert sh(bare, "am start -n com.other.app/.Main").endswith("brought to the front\n")
    assert sh(bare, "pidof com.other.app") == f"{bare.running_apps['com.other.app']}\n"
    assert sh(bare, "pm uninstall com.other.app; pidof com.other.app; echo $?") == "Success\n1\n"
    assert sh(bare, "pm uninstall com.other.app") == "Failure [DELETE_FAILED_INTERNAL_ERROR]\n"
    assert sh(bare, "am start -n com.missing/.Main").endswith(
        "Error type 3\nError: Activity class {com.missing/com.missing.Main} does not exist.\n")
    assert sh(bare, "pm install /data/local/tmp/none.apk").startswith("Failure [INSTALL_FAILED_INVALID_APK: ")


def test_logcat_formats_filters_and_clear(bare):
    bare.log("EdgeAI", "I", "info line", pid=4321)
    bare.log("EdgeAI", "D", "debug line", pid=4321)
    bare.log("Other", "E", "error line", pid=77)
    out = sh(bare, "logcat -d -v tag EdgeAI:I *:S").splitlines()
    assert out == ["--------- beginning of main", "I/EdgeAI  : info line"]
    assert sh(bare, "logcat -d -v brief -s Other").splitlines()[1:] == ["E/Other   (   77): error line"]
    assert sh(bare, "logcat -d -v raw -t 1") == "--------- beginning of main\nerror line\n"
    assert sh(bare, "logcat -d -v nonsense") == "logcat: unknown format 'nonsense'; expected one of: brief, " \
                                                "process, tag, raw, time, threadtime\n"
    assert sh(bare, "logcat -c; logcat -d -s EdgeAI") == ""


# --- pure parts --------------------------------------------------------------------------------------------

@settings(max_examples=200, deadline=None)
@given(st.integers(0, 2**32 - 1), st.integers(0, 2**32 - 1), st.integers(0, 2**32 - 1), st.binary(max_size=300))
def test_messages_round_trip(command, arg0, arg1, payload):
    message = AdbMessage(command, arg0, arg1, payload)
    assert decode_message(encode_message(message)) == message


def test_decode_rejects_bad_magic_and_checksum():
    data = bytearray(encode_message(AdbMessage(A_WRTE, 1, 2, b"abc")))
    with pytest.raises(AdbProtocolError, match="checksum"):
        decode_message(bytes(data[:-1]) + b"x")
    data[20] ^= 1
    with pytest.raises(AdbProtocolError, match="bad magic"):
        decode_message(bytes(data))


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from(["..", ".", "", "data", "local", "tmp", "x", "...", "a b"]), max_size=12),
       st.booleans())
def test_no_device_path_maps_outside_the_root(tmp_path_factory, segments, absolute):
    fs = DeviceFileSystem(tmp_path_factory.getbasetemp() / "fs-root")
    path = ("/" if absolute else "") + "/".join(segments)
    host = fs.host_path(path, cwd="/data/local/tmp")
    assert host == fs.root or fs.root in host.parents


def test_command_line_parsing():
    commands = parse_command_line("a 'b c' && d || e; f 2>&1 > out")
    assert [connector for connector, _ in commands] == ["", "&&", "||", ";"]
    assert [redirect.op for redirect in commands[-1][1].redirects] == [">&", ">"]
    for bad in ("; echo", "echo &&", "echo a & echo b", "echo $(id)", "echo `id`"):
        with pytest.raises(ShellSyntaxError):
            parse_command_line(bad)


def test_log_filters_and_formats():
    entry = LogEntry(1, 0.0, 4321, 4350, "W", "EdgeAI", "two\nlines")
    assert format_log_entry(entry, "process") == "W( 4321) two  (EdgeAI)\nW( 4321) lines  (EdgeAI)"
    assert LogFilter.parse(["EdgeAI"], silent_default=True).allows("EdgeAI", "V")
    with pytest.raises(ValueError, match="invalid filter expression 'EdgeAI:X'"):
        LogFilter.parse(["EdgeAI:X"])
    with pytest.raises(ValueError, match="unknown logcat format"):
        format_log_entry(entry, "fancy")


def test_apk_manifest(tmp_path):
    (tmp_path / "ok.apk").write_bytes(build_apk(PACKAGE, {"classes.dex": b"dex"}))
    assert read_apk_package(tmp_path / "ok.apk") == PACKAGE
    import zipfile
    with zipfile.ZipFile(tmp_path / "empty.apk", "w") as apk:
        apk.writestr("AndroidManifest.xml", b"")
    with pytest.raises(ApkError, match="no dtg-package.txt entry"):
        read_apk_package(tmp_path / "empty.apk")
    with zipfile.ZipFile(tmp_path / "bad.apk", "w") as apk:
        apk.writestr("dtg-package.txt", "# comment\nnot a package\n")
    with pytest.raises(ApkError, match="invalid package name 'not a package'"):
        read_apk_package(tmp_path / "bad.apk")


# --- lifecycle -----------------------------------------------------------------------------------------------

def test_lifecycle_loopback_only_stop_is_prompt_idempotent_and_final(tmp_path):
    device = SimAndroidDevice(root_dir=tmp_path / "root")
    with pytest.raises(AdbdError, match="not started"):
        _ = device.serial
    device.start()
    assert device._listener.getsockname()[0] == "127.0.0.1" and device.serial == f"127.0.0.1:{device.port}"
    device.hang_shell(True)
    raws = [RawAdb(device) for _ in range(3)]
    for raw in raws:
        raw.open("shell:echo hung")
        raw.open("shell:logcat")
    time.sleep(0.1)
    started = time.monotonic()
    device.stop()
    assert time.monotonic() - started < 2.0
    for raw in raws:  # every connection was closed: the host side reads to EOF, it does not time out
        raw.sock.settimeout(1.0)
        while raw.sock.recv(65536):
            pass
    device.stop()  # idempotent
    with pytest.raises(AdbdError, match="was stopped; it cannot be restarted"):
        device.start()
    with pytest.raises(AdbdError, match="is stopped"):
        device.reboot()
    assert (tmp_path / "root" / "data" / "local" / "tmp").is_dir()  # a given root_dir is kept
    with socket.socket() as probe:
        assert probe.connect_ex(("127.0.0.1", device.port)) != 0
    for raw in raws:
        raw.close()


def test_constructor_validates_its_arguments():
    with pytest.raises(ValueError, match="max_payload"):
        SimAndroidDevice(max_payload=100)
    with pytest.raises(ValueError, match="invalid package name 'dtg'"):
        SimAndroidDevice(apps={"dtg": AppFactory(EdgeApp)})


def test_temporary_root_is_removed_on_stop():
    with SimAndroidDevice() as device:
        root = device.root
        assert (root / "sdcard").is_dir()
    assert not root.exists()


def test_doctests():
    import doctest

    for module in (adb_wire, filesystem, logcat, shell_lexer):
        assert doctest.testmod(module).failed == 0

