"""The Android driver (harness.rig.android) against the simulated device, through a real adb server.

Every test drives `AndroidDevice` through the adb binary bundled with adbutils: one adb server per module on a
free loopback port (``ANDROID_ADB_SERVER_PORT``, USB, emulator scan and mDNS off, its key in a temporary HOME,
killed at the end), and a fresh `SimAndroidDevice` per test that the driver ``adb connect``-s. The faults come
from the simulated device's hooks (hang_shell, drop_connections, reboot, kill_app, stop_logging, stop). The
tests skip, saying why, when the adb binary cannot run here. Every test runs under a SIGALRM watchdog.
"""
from __future__ import annotations

import hashlib
import itertools
import json
import os
import threading
import time
from pathlib import Path

import pytest
from support import AppFactory, adb_problem, isolated_adb_server, watchdog

from firmware_sim.phone.device import SimAndroidDevice
from firmware_sim.phone.packages import DeviceContext, build_apk
from harness.inference.models import ManifestError, sha256_file
from harness.rig.android.device import AndroidDevice
from harness.rig.android.errors import (
    AdbError,
    AppDied,
    CommandFailed,
    CommandTimeout,
    DeviceLost,
    DeviceUnreachable,
    HashMismatch,
    LogcatStreamError,
)
from harness.rig.android.logcat import LogcatStream
from harness.rig.android.model_files import DEFAULT_MODELS_DIR
from harness.rig.phone import free_port
from harness.wire.events import (
    AnomalyResult,
    AppStatus,
    EventCollector,
    FuelResult,
    ModelRef,
    event_to_json,
    format_event_line,
    parse_event_line,
)

PACKAGE = "com.example.dtg"
ACTIVITY = ".MainActivity"
MANIFEST = Path(__file__).resolve().parent.parent / "models" / "manifest.json"
TEST_TIMEOUT_S = 20.0
CALL_TIMEOUT_S = 2.0  # the driver's per-call timeout in these tests


# --- the watchdog ------------------------------------------------------------------------------------------

@pytest.fixture(autouse=True)
def _watchdog():
    """Fail a test that runs longer than TEST_TIMEOUT_S (SIGALRM interrupts blocking waits too)."""
    with watchdog(TEST_TIMEOUT_S):
        yield


# --- the adb server (support.isolated_adb_server, as in tests/test_adbd.py) -------------------------------------

@pytest.fixture(scope="module")
def adb_server(tmp_path_factory):
    problem = adb_problem()
    if problem is not None:
        pytest.skip(f"the real adb is needed: {problem}")
    with isolated_adb_server(tmp_path_factory.mktemp("adb-home")) as server:
        yield server


# --- a DTG app that logs real EdgeAI lines ----------------------------------------------------------------------

class EdgeApp:
    """Logs a status line, a fuel and an anomaly result at start (tag EdgeAI, JSON from harness.wire.events), then a
    fuel result every 50 ms, with a line of another tag in between. Names the pushed fuel model's sha256 when
    the models were pushed."""

    def __init__(self, context: DeviceContext) -> None:
        self.context = context
        self._stop = threading.Event()
        self._alive = False
        model = context.host_path(f"{DEFAULT_MODELS_DIR}/fuel.onnx")
        sha = hashlib.sha256(model.read_bytes()).hexdigest()[:16] if model.is_file() else "0123abcd"
        self.fuel_model = ModelRef("fuel", sha, "1.0.0")
        anomaly = ModelRef("anomaly", "89abcdef", "1.0.0")
        self.events = [AppStatus(None, 0, 0, seq=0),
                       FuelResult(60.0, 3.4, self.fuel_model, 6.82, seq=1),
                       AnomalyResult(60.0, 7.9, anomaly, 0.0841, 0.0625, True, tuple([0.01] * 10), seq=2)]

    @property
    def alive(self) -> bool:
        return self._alive

    def start(self) -> None:
        self._alive = True
        for event in self.events:
            self.context.log("EdgeAI", "I", event_to_json(event))
        threading.Thread(target=self._run, daemon=True).start()

    def _run(self) -> None:
        for seq in itertools.count(3):
            if self._stop.wait(0.05):
                return
            self.context.log("Chatty", "D", "noise")
            self.context.log("EdgeAI", "I", event_to_json(FuelResult(60.0 + seq, 3.0, self.fuel_model, 6.0, seq=seq)))

    def stop(self) -> None:
        self._alive = False
        self._stop.set()


class CrashingApp(EdgeApp):
    def start(self) -> None:
        raise RuntimeError("model file missing")


@pytest.fixture
def factory():
    return AppFactory(EdgeApp)


@pytest.fixture
def phone(adb_server, factory):
    with SimAndroidDevice(apps={PACKAGE: factory, "com.example.crash": AppFactory(CrashingApp)},
                          reboot_duration_s=0.6) as device:
        yield device
        adb_server.run("disconnect", device.serial, check=False)


@pytest.fixture
def driver(adb_server, phone):
    device = AndroidDevice(phone.serial, adb_port=adb_server.port, timeout_s=CALL_TIMEOUT_S)
    yield device
    device.close()


@pytest.fixture
def apk(tmp_path):
    path = tmp_path / "dtg app.apk"
    path.write_bytes(build_apk(PACKAGE))
    return path


def _assert_names(error: AdbError, serial: str, command_part: str) -> None:
    assert error.serial == serial and serial in str(error)
    assert command_part in error.command and command_part in str(error)


def _wait_until(predicate, timeout_s: float = 5.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.02)


# 1. connect, shell, quoting -------------------------------------------------------------------------------------

def test_connects_runs_commands_and_reports_exit_status(adb_server, phone, driver):
    assert driver.state() == "device" and driver.is_tcp
    assert f"{phone.serial}\tdevice" in adb_server.run("devices").stdout  # the driver ran adb connect
    assert driver.adb_port == adb_server.port == AndroidDevice(phone.serial, connect=False).adb_port  # env default
    result = driver.shell(["getprop", "ro.product.model"])
    assert result.text == "DTG-SIM" and result.returncode == 0
    assert driver.shell(["false"], check=False).returncode == 1
    with pytest.raises(CommandFailed) as failed:
        driver.shell(["ls", "/data/local/tmp/nope"])
    error = failed.value
    assert error.kind == "command_failed" and error.returncode == 1 and "No such file" in error.output
    _assert_names(error, phone.serial, "ls /data/local/tmp/nope")
    assert "exit status: 1" in str(error)


def test_shell_arguments_are_quoted_and_odd_file_names_round_trip(phone, driver, tmp_path):
    odd = "/data/local/tmp/dtg/model v2; touch pwned $(id) 'q'.onnx"
    assert driver.shell(["echo", "a b;c", "$HOME", "&&", "x"]).output == "a b;c $HOME && x\n"
    data = os.urandom(5000)
    (tmp_path / "local file; x").write_bytes(data)
    driver.push(tmp_path / "local file; x", odd)
    assert phone.host_path(odd).read_bytes() == data
    assert driver.shell(["sha256sum", odd]).output == f"{hashlib.sha256(data).hexdigest()}  {odd}\n"
    assert driver.shell(["ls", "/data/local/tmp/dtg"]).output.splitlines() == [odd.rsplit("/", 1)[1]]
    assert driver.app_pid("x; touch /data/local/tmp/pwned") is None
    driver.pull(odd, tmp_path / "back")
    assert (tmp_path / "back").read_bytes() == data
    assert not phone.host_path("/data/local/tmp/pwned").exists() and not phone.host_path("/pwned").exists()
    assert not any(phone.host_path("/data/local/tmp/dtg").glob("pwned*"))


# 2. install, start, logcat -----------------------------------------------------------------------------------------

def test_install_start_and_stream_edgeai_lines_the_event_parser_reads(phone, driver, factory, apk):
    driver.install(apk, PACKAGE)
    assert PACKAGE in phone.installed_packages and PACKAGE in driver.packages()
    assert not phone.host_path(f"/data/local/tmp/{apk.name}").exists()  # the pushed copy is removed
    driver.clear_logcat()
    lines: list[str] = []
    collector = EventCollector()

    def on_line(line: str) -> None:
        lines.append(line)
        collector.feed_line(line)

    stream = driver.stream_logcat(on_line)
    assert isinstance(stream, LogcatStream) and stream.running
    pid = driver.start_app(PACKAGE, ACTIVITY)
    assert pid == phone.running_apps[PACKAGE] == driver.app_pid(PACKAGE) and driver.app_alive(PACKAGE)
    _wait_until(lambda: collector.stats().events >= 6)
    app = factory.apps[-1]
    assert collector.events[:3] == app.events and collector.problems == []
    assert collector.stats().lines_lost == 0 and set(collector.stats().by_kind) == {"status", "fuel", "anomaly"}
    edge = [line for line in lines if "EdgeAI" in line]
    assert all(" Chatty " not in line for line in lines)  # only the EdgeAI tag was asked for
    # byte for byte the contract's line, after the device's time stamp
    for line, event in zip(edge, app.events, strict=False):
        assert parse_event_line(line) == event
        assert line[18:] == format_event_line(event, pid=pid, tid=pid)[18:]
    driver.stop_app(PACKAGE)
    assert not driver.app_alive(PACKAGE) and PACKAGE not in phone.running_apps
    phone.stop_logging(True)  # a quiet device: stop() must not wait for a next line
    started = time.monotonic()
    stream.stop()
    assert time.monotonic() - started < 1.0 and not stream.running and stream.error is None
    assert stream.lines == len(lines)


def test_install_failures_name_the_command_and_pms_answer(phone, driver, tmp_path):
    bad = tmp_path / "bad.apk"
    bad.write_bytes(b"not a zip")
    with pytest.raises(CommandFailed) as failed:
        driver.install(bad, PACKAGE)
    assert "INSTALL_FAILED_INVALID_APK" in failed.value.output and failed.value.returncode == 1
    _assert_names(failed.value, phone.serial, "pm install -r /data/local/tmp/bad.apk")
    other = tmp_path / "other.apk"
    other.write_bytes(build_apk("com.example.other"))
    with pytest.raises(CommandFailed, match="does not list package com.example.dtg"):
        driver.install(other, PACKAGE)
    with pytest.raises(CommandFailed, match="cannot start") as refused:
        driver.start_app("com.example.missing", ACTIVITY)
    assert "does not exist" in refused.value.output


def test_an_app_that_crashes_at_start_is_reported_dead(phone, driver, tmp_path):
    apk = tmp_path / "crash.apk"
    apk.write_bytes(build_apk("com.example.crash"))
    driver.install(apk, "com.example.crash")
    started = time.monotonic()
    with pytest.raises(AppDied) as died:
        driver.start_app("com.example.crash", ACTIVITY, timeout_s=1.0)
    assert time.monotonic() - started < 1.0 + 1.0
    assert died.value.package == "com.example.crash" and "has died" in str(died.value)
    _assert_names(died.value, phone.serial, "pidof com.example.crash")


# 3. models ----------------------------------------------------------------------------------------------------

def test_push_models_with_the_project_manifest_verifies_every_hash(phone, driver, apk):
    pushed = driver.push_models(MANIFEST)
    manifest = json.loads(MANIFEST.read_text())
    assert {p.name for p in pushed} == set(manifest["models"]) | {"manifest"}
    for item in pushed:
        assert item.device_path.startswith(DEFAULT_MODELS_DIR + "/")
        assert phone.host_path(item.device_path).read_bytes() == item.local_path.read_bytes()
        assert item.sha256 == sha256_file(phone.host_path(item.device_path))
        assert item.name == "manifest" or item.sha256 == manifest["models"][item.name]["sha256"]
    assert driver.verify_models(MANIFEST) == pushed
    # The app names the model file it loaded: the pushed one.
    driver.install(apk, PACKAGE)
    driver.start_app(PACKAGE, ACTIVITY)
    _wait_until(lambda: any(isinstance(parse_event_line(line), FuelResult) for line in phone.logcat()))
    fuel = next(e for e in map(parse_event_line, phone.logcat()) if isinstance(e, FuelResult))
    assert fuel.model.sha256 == manifest["models"]["fuel"]["sha256"][:16]


def test_a_model_whose_on_device_sha256_differs_is_refused_with_a_clear_error(phone, driver):
    driver.push_models(MANIFEST)
    fuel = phone.host_path(f"{DEFAULT_MODELS_DIR}/fuel.onnx")
    expected = json.loads(MANIFEST.read_text())["models"]["fuel"]["sha256"]
    data = bytearray(fuel.read_bytes())
    data[-1] ^= 0xFF  # one byte changed on the device
    fuel.write_bytes(data)
    actual = sha256_file(fuel)
    assert actual != expected
    with pytest.raises(HashMismatch) as refused:
        driver.verify_models(MANIFEST)
    error = refused.value
    assert (error.kind, error.model, error.device_path) == ("hash_mismatch", "fuel", f"{DEFAULT_MODELS_DIR}/fuel.onnx")
    assert (error.expected, error.actual) == (expected, actual) and len(error.mismatches) == 1
    message = str(error)
    for part in ("model 'fuel'", f"{DEFAULT_MODELS_DIR}/fuel.onnx", expected, actual, phone.serial, "sha256sum"):
        assert part in message, part
    phone.host_path(f"{DEFAULT_MODELS_DIR}/anomaly.onnx").unlink()
    with pytest.raises(HashMismatch, match="anomaly.onnx is missing on the device") as both:
        driver.verify_models(MANIFEST)
    assert [m.model for m in both.value.mismatches] == ["fuel", "anomaly"]
    driver.push_models(MANIFEST)  # a new push repairs both


def test_push_models_refuses_a_copy_corrupted_on_the_way(phone, driver, monkeypatch):
    push = driver.push

    def corrupting_push(local_path, device_path, **options):
        size = push(local_path, device_path, **options)
        if device_path.endswith("/behaviour.onnx"):  # as a flaky cable or a full disk would leave it
            phone.host_path(device_path).write_bytes(b"truncated")
        return size

    monkeypatch.setattr(driver, "push", corrupting_push)
    with pytest.raises(HashMismatch, match=r"model 'behaviour': .*/behaviour.onnx has sha256 "
                                           + hashlib.sha256(b"truncated").hexdigest()) as refused:
        driver.push_models(MANIFEST)
    assert [m.model for m in refused.value.mismatches] == ["behaviour"]


def test_a_host_model_that_differs_from_its_manifest_is_not_pushed(phone, driver, tmp_path):
    for name in ("fuel.onnx", "anomaly.onnx", "behaviour.onnx"):
        (tmp_path / name).write_bytes((MANIFEST.parent / name).read_bytes())
    (tmp_path / "fuel.onnx").write_bytes(b"retrained, manifest not updated")
    (tmp_path / "manifest.json").write_text(MANIFEST.read_text())
    with pytest.raises(ManifestError, match="model 'fuel' \\(fuel.onnx\\): sha256 mismatch on the host"):
        driver.push_models(tmp_path / "manifest.json")
    assert not phone.host_path(DEFAULT_MODELS_DIR).exists()  # nothing was sent


# 4. files and logs --------------------------------------------------------------------------------------------------

def test_pull_and_pull_logs(phone, driver, apk, tmp_path):
    driver.install(apk, PACKAGE)
    driver.start_app(PACKAGE, ACTIVITY)
    _wait_until(lambda: sum("EdgeAI" in line for line in phone.logcat()) >= 4)
    path = driver.pull_logs(tmp_path / "artifacts")
    text = path.read_text()
    assert path == tmp_path / "artifacts" / "logcat.txt" and text.strip()
    assert "ActivityManager" in text and ":DTG-EXIT:" not in text
    assert sum(isinstance(parse_event_line(line), FuelResult) for line in text.splitlines()) >= 2
    with pytest.raises(CommandFailed, match="No such file") as missing:
        driver.pull("/data/local/tmp/nothing", tmp_path / "nothing")
    _assert_names(missing.value, phone.serial, "/data/local/tmp/nothing")
    assert not (tmp_path / "nothing").exists()
    with pytest.raises(CommandFailed, match="Read-only file system"):
        driver.push(apk, "/system/app/dtg.apk")


# 5. faults: each ends within its timeout, naming the serial and the command -----------------------------------

def test_an_unanswered_call_times_out_naming_serial_and_command(phone, driver):
    phone.hang_shell(True)
    started = time.monotonic()
    with pytest.raises(CommandTimeout) as hung:
        driver.app_pid(PACKAGE, timeout_s=1.0)
    assert 1.0 <= time.monotonic() - started < 1.0 + 1.0
    assert hung.value.kind == "timeout" and "within 1 s" in str(hung.value)
    _assert_names(hung.value, phone.serial, f"pidof {PACKAGE}")
    started = time.monotonic()
    with pytest.raises(CommandTimeout) as watchdog:
        driver.check_alive(PACKAGE)  # bounded by the driver's default per-call timeout
    assert CALL_TIMEOUT_S <= time.monotonic() - started < CALL_TIMEOUT_S + 1.0
    _assert_names(watchdog.value, phone.serial, f"pidof {PACKAGE}")
    phone.hang_shell(False)
    assert driver.shell(["echo", "back"]).text == "back"


def test_a_killed_app_makes_check_alive_raise_app_died(phone, driver, apk):
    driver.install(apk, PACKAGE)
    pid = driver.start_app(PACKAGE, ACTIVITY)
    assert driver.check_alive() == {PACKAGE: pid}
    assert phone.kill_app(PACKAGE) == pid
    started = time.monotonic()
    with pytest.raises(AppDied) as died:
        driver.check_alive()
    assert time.monotonic() - started < CALL_TIMEOUT_S + 1.0
    error = died.value
    assert (error.kind, error.package, error.last_pid, error.pid) == ("app_died", PACKAGE, pid, None)
    assert f"last pid was {pid}" in str(error) and f"Process {PACKAGE} (pid {pid}) has died" in str(error)
    _assert_names(error, phone.serial, f"pidof {PACKAGE}")
    driver.shell(["am", "start", "-n", f"{PACKAGE}/{ACTIVITY}"])  # restarted behind the driver's back
    new_pid = driver.app_pid(PACKAGE)
    with pytest.raises(AppDied, match=f"pid {pid} is gone, it now runs as pid {new_pid}") as restarted:
        driver.check_alive()
    assert restarted.value.pid == new_pid
    assert driver.check_alive() == {PACKAGE: new_pid}  # the restart was reported once
    driver.stop_app(PACKAGE)
    assert driver.check_alive() == {}  # a stopped app is not watched any more


def test_dropped_connections_end_calls_and_streams_with_device_lost(phone, driver):
    lines: list[str] = []
    stream = driver.stream_logcat(lines.append, tag=None)
    outcome: dict[str, BaseException] = {}

    def long_call() -> None:
        try:
            driver.shell(["sleep", "5"], timeout_s=4.0)
        except AdbError as error:
            outcome["error"] = error

    caller = threading.Thread(target=long_call)
    caller.start()
    time.sleep(0.3)
    started = time.monotonic()
    assert phone.drop_connections() >= 1  # the adb server multiplexes every stream on one connection
    caller.join(4.0)
    assert not caller.is_alive() and time.monotonic() - started < 1.0
    error = outcome["error"]
    assert isinstance(error, DeviceLost) and error.kind == "device_lost"
    _assert_names(error, phone.serial, "sleep 5")
    _wait_until(lambda: not stream.running, 2.0)
    assert isinstance(stream.error, DeviceLost)
    with pytest.raises(DeviceLost, match="logcat stream ended") as lost:
        stream.stop()
    _assert_names(lost.value, phone.serial, "logcat -v threadtime")
    assert driver.wait_for_device(5.0) < 5.0
    assert driver.shell(["echo", "back"]).text == "back"


def test_a_stopped_device_is_lost_within_the_timeout(phone, driver):
    phone.stop()  # as a pulled cable that never comes back
    for call in (driver.check_alive, lambda: driver.shell(["echo", "x"]), lambda: driver.wait_for_device(1.0)):
        started = time.monotonic()
        with pytest.raises(DeviceLost) as lost:
            call()
        assert time.monotonic() - started < CALL_TIMEOUT_S + 1.0
        assert lost.value.serial == phone.serial and phone.serial in str(lost.value) and lost.value.command


def test_a_serial_nobody_listens_on_is_unreachable_within_the_timeout(adb_server):
    closed = f"127.0.0.1:{free_port()}"
    started = time.monotonic()
    with pytest.raises(DeviceUnreachable) as refused:
        AndroidDevice(closed, adb_port=adb_server.port, timeout_s=CALL_TIMEOUT_S)
    assert time.monotonic() - started < CALL_TIMEOUT_S + 1.0
    assert not isinstance(refused.value, DeviceLost) and refused.value.kind == "unreachable"
    _assert_names(refused.value, closed, f"host:connect:{closed}")
    with pytest.raises(DeviceUnreachable, match="not found; the adb server lists") as unknown:
        AndroidDevice("NOSUCHUSBSERIAL", adb_port=adb_server.port, timeout_s=CALL_TIMEOUT_S)
    _assert_names(unknown.value, "NOSUCHUSBSERIAL", "get-state")
    with pytest.raises(DeviceUnreachable, match="cannot reach the adb server"):
        AndroidDevice("NOSUCHUSBSERIAL", adb_host="127.0.0.1", adb_port=free_port(), timeout_s=CALL_TIMEOUT_S,
                      connect=False).state()


# 6. reboots ------------------------------------------------------------------------------------------------------

def test_reboot_is_survived_and_detected_by_boot_id(phone, adb_server, apk):
    boot_id = phone.host_path("/proc/sys/kernel/random/boot_id")  # what a real kernel offers
    boot_id.parent.mkdir(parents=True)
    boot_id.write_text("1b3c5d7e-0000-4000-8000-000000000001\n")
    driver = AndroidDevice(phone.serial, adb_port=adb_server.port, timeout_s=CALL_TIMEOUT_S)
    try:
        driver.install(apk, PACKAGE)
        pid = driver.start_app(PACKAGE, ACTIVITY)
        phone.drop_connections()  # a reconnect is not a reboot
        driver.wait_for_device(5.0)
        assert driver.reboot_detected() is False
        phone.reboot()
        boot_id.write_text("1b3c5d7e-0000-4000-8000-000000000002\n")
        with pytest.raises(DeviceLost):
            driver.check_alive()
        assert driver.wait_for_device(10.0) < 10.0
        assert driver.reboot_detected() is True and driver.reboot_detected() is False  # re-armed
        with pytest.raises(AppDied, match=f"last pid was {pid}"):
            driver.check_alive()
        assert driver.start_app(PACKAGE, ACTIVITY) != pid
    finally:
        driver.close()


def test_reboot_without_a_boot_id_falls_back_to_the_offline_spell(phone, driver):
    assert driver.boot_id() is None and driver.reboot_detected() is False
    phone.reboot()
    driver.wait_for_device(10.0)
    assert driver.reboot_detected() is True and driver.reboot_detected() is False


def test_a_failing_line_handler_ends_the_stream_with_its_error(phone, driver, apk):
    driver.install(apk, PACKAGE)

    def handler(line: str) -> None:
        if "EdgeAI" in line:
            raise ValueError("handler bug")

    stream = driver.stream_logcat(handler)
    driver.start_app(PACKAGE, ACTIVITY)
    _wait_until(lambda: not stream.running, 3.0)
    with pytest.raises(LogcatStreamError, match="handler bug") as failed:
        stream.stop()
    assert isinstance(failed.value.__cause__, ValueError) and isinstance(stream.error, ValueError)
    _assert_names(failed.value, phone.serial, "logcat -v threadtime -s EdgeAI")


# 7. lifecycle ------------------------------------------------------------------------------------------------------

def test_a_closed_driver_refuses_work_and_disconnects(adb_server, phone):
    driver = AndroidDevice(phone.serial, adb_port=adb_server.port, timeout_s=CALL_TIMEOUT_S)
    stream = driver.stream_logcat(lambda line: None)
    driver.close()
    driver.close()  # idempotent
    assert not stream.running
    with pytest.raises(AdbError, match="is closed") as closed:
        driver.shell(["echo", "x"])
    assert closed.value.kind == "closed" and closed.value.serial == phone.serial
    assert phone.serial not in adb_server.run("devices").stdout
    with pytest.raises(AdbError, match="cannot be restarted"):
        stream.start()
    with pytest.raises(ValueError, match="invalid adb serial"):
        AndroidDevice("two words", connect=False)
