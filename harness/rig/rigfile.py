"""Rig files: which bench the tests run on, and what that bench can do.

A rig file (YAML, data only) names the CAN interface and channel (python-can's own settings: anything the file
leaves out is taken from python-can's configuration, `CAN_INTERFACE` / `CAN_CHANNEL` / `CAN_BITRATE` or its
config files, exactly as `can.Bus()` would), the vehicle profile, the STM32 (simulated, or real with an optional
UART tap), the Android device (simulated, or an adb serial with APK and package), the GNSS feed, the models
manifest and the time scale. `--rig` selects one; without it the built-in simulated rig is used.

Capabilities are derived from the configuration: which of the ten signals the harness can make misread (on a
real OBD-II bench only what the bus carries, plus position when a GNSS feed is wired; brake and acceleration
come from the unit's own sensors), which link codec the STM32 speaks, whether the rig runs faster than real
time. A scenario that needs more than a rig can do is skipped with the reason.

Example (a real bench)::

    name: bench-1
    profile: obd2
    can: {interface: pcan, channel: PCAN_USBBUS1, bitrate: 500000}
    stm32: {kind: real, codec: raw-can-v1, uart_tap: /dev/ttyUSB0}
    android: {kind: adb, serial: R58M12345, apk: dtg-app.apk, package: com.example.dtg}
    gnss: {kind: nmea, port: /dev/ttyUSB1, baudrate: 9600}
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import can

from firmware_sim.host_sensors import SENSED as HOST_SENSED
from harness.core.datafile import (
    Checker,
    DataFileError,
    FileTooLarge,
    Problem,
    decode_text,
    kind_of,
    parse_yaml,
    read_limited,
)
from harness.inference.models import BUNDLED_MANIFEST
from harness.rig.bench import COMMANDS as BENCH_COMMANDS
from harness.rig.bench import BenchConfig, parse_bench
from harness.wire.dbc import get_profile
from harness.wire.link import codec_names, get_codec
from harness.wire.signals import SIGNALS
from harness.world.anomalies import SENSOR_FAULT_TYPES
from harness.world.scenario import Scenario

PROFILES = ("obd2", "j1939")
STM32_KINDS = ("simulated", "real", "host")
ANDROID_KINDS = ("simulated", "adb")
GNSS_KINDS = ("none", "simulated", "nmea")
POSITION = ("latitude", "longitude", "altitude")
DEFAULT_MANIFEST = str(BUNDLED_MANIFEST)  # the bundled models, wherever the package is installed
#: The simulated rig's default pacing: none. Its parts run on virtual time (`harness.run.scheduler`), as fast as the
#: CPU allows; a finite `time_scale` (the rig file, `--dtg-time-scale`) only slows it down, for demos, with the same
#: results.
DEFAULT_SIM_TIME_SCALE = math.inf
#: The default speed of a rig whose simulated STM32 drives stand-ins behind real drivers (slcan, adb, a UART tap):
#: those run on the wall clock, paced.
DEFAULT_STANDIN_TIME_SCALE = 110.0
#: A real-rig setting with this value (CAN channel of an slcan interface, UART tap port, adb serial, GNSS port)
#: makes the harness start the project's stand-in for that part (`firmware_sim.slcan`, a tee'd pty,
#: `firmware_sim.phone.device`, `harness.rig.gnss_feed`): the loopback rig, whose real-device code paths run in CI.
SIMULATED = "simulated"
#: The slowest pace a rig may run at: real time. Below it a run of a long route would take days of wall time.
MIN_TIME_SCALE = 1.0
#: The fastest a rig paced by the wall clock may run (stand-ins behind real drivers): an OBD-II answer has 500 ms of
#: scenario time, 2.5 ms of wall time at 200x; beyond that the real drivers' timeouts and the threads' switching
#: lose most of the traffic (at 1e6 no frame at all). On virtual time a finite scale only paces: no upper bound.
MAX_PACED_TIME_SCALE = 200.0
#: The UART and GNSS baud rates a rig file may name (the bounds of what USB-serial adapters do).
BAUDRATE_RANGE = (300, 12_000_000)
#: The CAN bit rates a rig file may name (ISO 11898 classic CAN: 10 kbit/s to 1 Mbit/s).
CAN_BITRATE_RANGE = (10_000, 1_000_000)


class RigError(DataFileError):
    """A rig file is invalid, or a rig cannot do what it was asked to."""


@dataclass(frozen=True)
class RigConfig:
    name: str
    path: Path | None
    profile: str = "obd2"
    can: dict[str, Any] = field(default_factory=lambda: {"interface": "virtual"})
    stm32_kind: str = "simulated"
    #: kind host: the folder of the unit's C firmware, built for the host (`firmware_sim.host_build`)
    stm32_sources: Path | None = None
    codec: str = "dtg-link-v2"
    uart_tap: str | None = None
    uart_baudrate: int = 921600
    #: kind real: how the harness flashes, resets and switches the board (`harness.rig.bench`)
    bench: BenchConfig | None = None
    #: kind real: the serial port of the bench's sensor stimulator (`harness.rig.sensor_stimulus`), or None
    stm32_sensors: str | None = None
    android_kind: str = "simulated"
    adb_serial: str | None = None
    apk: str | None = None
    package: str | None = None
    #: a real STM32 with the simulated app: the serial port the app reads the unit's UART on
    android_port: str | None = None
    gnss_kind: str = "simulated"
    gnss_port: str | None = None
    gnss_baudrate: int = 9600
    models: Path = Path(DEFAULT_MANIFEST)
    time_scale: float = DEFAULT_SIM_TIME_SCALE
    #: Rig-side loss a run tolerates, in % of each rig-side row of the loss table
    #: (harness.judge.result.Accounting.rig_loss: OBD-II requests the rest-bus left unanswered in time, rest-bus or
    #: injector frames skipped or late, a simulated STM32's late polls); beyond it the run ends as an ERROR "the rig
    #: fell behind", never a verdict.
    rig_loss_max_pct: float = 0.0

    @property
    def standins(self) -> tuple[str, ...]:
        """The stand-ins the harness starts for parts named `simulated` in a real-rig section (`STANDINS`)."""
        out = []
        if self.can.get("interface") == "slcan" and self.can.get("channel") == SIMULATED:
            out.append("slcan")
        if self.uart_tap == SIMULATED:
            out.append("uart_tap")
        if self.android_kind == "adb" and self.adb_serial == SIMULATED:
            out.append("adb")
        if self.gnss_kind == "nmea" and self.gnss_port == SIMULATED:
            out.append("gnss")
        return tuple(out)

    @property
    def wall_clock_scale(self) -> float:
        """The time scale where the rig's parts run on the wall clock (stand-ins, a UART tap added for the contract
        suite, `dtg-hil record`): `time_scale`, or `DEFAULT_STANDIN_TIME_SCALE` when it is unpaced (math.inf)."""
        return self.time_scale if math.isfinite(self.time_scale) else DEFAULT_STANDIN_TIME_SCALE

    @property
    def simulated(self) -> bool:
        """True when every part of the rig is simulated (the `sim` tests run on it; `hil` tests need a real one)."""
        return (self.stm32_kind == "simulated" and self.android_kind == "simulated"
                and self.can.get("interface") == "virtual")

    @property
    def app_on_host(self) -> bool:
        """True when the rig's app runs on this host (simulated, or on the simulated phone): its inference figures are
        host CPU time, not a phone's."""
        return self.android_kind == "simulated" or "adb" in self.standins

    @property
    def on_virtual_time(self) -> bool:
        """True when a run on this rig goes on virtual time (`harness.run.scheduler`): every part of it is simulated
        in this process (no stand-in behind a real driver but the UART tap's pty, read in the same thread)."""
        in_process = self.simulated or (self.stm32_kind == "host" and self.android_kind == "simulated"
                                        and self.can.get("interface") == "virtual")
        return in_process and set(self.standins) <= {"uart_tap"} and self.uart_tap in (None, SIMULATED)

    @property
    def paced_by_wall_clock(self) -> bool:
        """True on a rig that follows the wall clock (the loopback rig with its stand-ins, a bench): what the
        harness's side fails to do in time there is rig loss, judged against `rig_loss_max_pct` (DESIGN.md, "Time",
        `harness.judge.result.rig_lag_error`). On virtual time the harness cannot fall behind."""
        return not self.on_virtual_time

    @property
    def injectable_signals(self) -> tuple[str, ...]:
        """Signals whose readings the harness controls, and so can make misread."""
        if self.stm32_kind == "simulated":
            return SIGNALS  # the simulated unit's own sensors are fed by the harness too
        carried = set(get_profile(self.profile).carried)
        if self.stm32_kind == "host" or self.stm32_sensors:
            carried |= set(HOST_SENSED)  # the unit's own sensors, set by the harness (a host build's, a stimulator)
        if self.gnss_kind != "none":
            carried |= set(POSITION)
        return tuple(name for name in SIGNALS if name in carried)

    def can_settings(self) -> dict[str, Any]:
        """CAN settings resolved as python-can resolves them (rig file first, then its environment and files)."""
        return dict(can.util.load_config(config={k: v for k, v in self.can.items() if v is not None}))

    def unsupported(self, scenario: Scenario) -> str | None:
        """Why this rig cannot run `scenario`, or None when it can."""
        needed = []
        for anomaly in scenario.anomalies:
            if anomaly.type in SENSOR_FAULT_TYPES:
                needed.append(anomaly.signal)
            elif anomaly.type == "gps_jump":
                needed.extend(POSITION[:2])
        missing = sorted({name for name in needed if name not in self.injectable_signals})
        if missing:
            return (f"rig '{self.name}' cannot inject {', '.join(missing)} (it can inject: "
                    f"{', '.join(self.injectable_signals)})")
        return None


BUILTIN_SIM_RIG = RigConfig(name="builtin-sim", path=None)


def time_scale_problem(rig: RigConfig) -> str | None:
    """Why `rig.time_scale` cannot run (too slow anywhere, too fast for a rig paced by the wall clock, not 1 with a
    real STM32), or None. A run's wall time is then known before it starts: on a paced rig at most the route's
    length / time_scale (plus the watchdog's grace), on virtual time at most that when paced, less when not.

    >>> time_scale_problem(RigConfig(name="x", path=None, time_scale=1e-6))
    'must be >= 1 (real time; slower, a long route would take days); got 1e-06'
    """
    scale = rig.time_scale
    if not isinstance(scale, (int, float)) or isinstance(scale, bool) or math.isnan(scale):
        return f"expected a number; got {scale!r}"
    if scale < MIN_TIME_SCALE:
        return f"must be >= {MIN_TIME_SCALE:g} (real time; slower, a long route would take days); got {scale:g}"
    if rig.stm32_kind == "real" and scale != 1.0:
        return f"a rig with a real STM32 runs at 1x real time; got {scale:g}"
    if not rig.on_virtual_time and rig.wall_clock_scale > MAX_PACED_TIME_SCALE:  # unpaced (inf): the default pace
        return (f"must be <= {MAX_PACED_TIME_SCALE:g} on a rig paced by the wall clock (stand-ins behind real "
                f"drivers: their timeouts cannot keep up beyond it); got {scale:g}")
    return None

TOP_KEYS = ("name", "profile", "can", "stm32", "android", "gnss", "models", "time_scale", "rig_loss_max_pct")
STM32_KEYS = ("kind", "codec", "uart_tap", "baudrate", "sources", "firmware", *BENCH_COMMANDS, "sensors")
ANDROID_KEYS = ("kind", "serial", "apk", "package", "port")
GNSS_KEYS = ("kind", "port", "baudrate")


def parse_rig(data: Any, lines: dict[str, int], file: str, base_dir: Path | None = None,
              name: str = "rig") -> RigConfig:
    c = Checker(lines)
    top = c.mapping(data, "", TOP_KEYS)
    if not isinstance(data, dict):
        raise RigError(file, c.problems)
    profile = c.choice(top, "profile", "", PROFILES, "obd2", "vehicle profile")
    can_section = top.get("can", {"interface": "virtual"})
    if not isinstance(can_section, dict):
        c.report("can", "expected a mapping of python-can settings (interface, channel, bitrate, ...)")
        can_section = {}
    stm32 = c.mapping(top.get("stm32", {}), "stm32", STM32_KEYS)
    android = c.mapping(top.get("android", {}), "android", ANDROID_KEYS)
    gnss = c.mapping(top.get("gnss", {}), "gnss", GNSS_KEYS)
    stm32_kind = c.choice(stm32, "kind", "stm32", STM32_KINDS, "simulated", "STM32 kind")
    codec = c.choice(stm32, "codec", "stm32", tuple(codec_names()), "dtg-link-v2", "link codec")
    android_kind = c.choice(android, "kind", "android", ANDROID_KINDS, "simulated", "Android device kind")
    gnss_kind = c.choice(gnss, "kind", "gnss", GNSS_KINDS, "none" if stm32_kind == "real" else "simulated",
                         "GNSS feed kind")
    all_simulated = (stm32_kind in ("simulated", "host") and android_kind == "simulated"
                     and can_section.get("interface", "virtual") == "virtual" and not stm32.get("uart_tap"))
    time_scale = c.number(top, "time_scale", "", DEFAULT_SIM_TIME_SCALE if all_simulated else
                          DEFAULT_STANDIN_TIME_SCALE if stm32_kind == "simulated" else 1.0, lo=0.0, lo_open=True)
    rig_loss_max_pct = c.number(top, "rig_loss_max_pct", "", 0.0, lo=0.0, hi=100.0)
    models = top.get("models", DEFAULT_MANIFEST)
    if not isinstance(models, str):
        c.report("models", "expected the path of a models manifest")
        models = DEFAULT_MANIFEST
    models_path = Path(models)
    if not models_path.is_absolute() and base_dir is not None and "models" in top:
        models_path = base_dir / models_path
    text = {key: c.text(section, key, sect_name, "") or None for sect_name, section, key in
            (("stm32", stm32, "uart_tap"), ("android", android, "serial"), ("android", android, "apk"),
             ("android", android, "package"), ("gnss", gnss, "port"), ("stm32", stm32, "sensors"))}
    # Every value is read (and each problem reported) before the file is refused: none falls back to a default.
    uart_baudrate = c.number(stm32, "baudrate", "stm32", 921600, lo=BAUDRATE_RANGE[0], hi=BAUDRATE_RANGE[1],
                             integer=True)
    gnss_baudrate = c.number(gnss, "baudrate", "gnss", 9600, lo=BAUDRATE_RANGE[0], hi=BAUDRATE_RANGE[1],
                             integer=True)
    rig_name = c.text(top, "name", "", name)
    _check_can(c, can_section)
    sources = _host_sources(c, stm32, stm32_kind, base_dir)
    bench = parse_bench(c, stm32, stm32_kind, base_dir)
    android_port = c.text(android, "port", "android", "") or None
    if text["sensors"] and stm32_kind != "real":
        c.report("stm32.sensors", f"only a real STM32's sensors are stimulated on a bench, not kind {stm32_kind}")
    if android_port and stm32_kind != "real":
        c.report("android.port", f"only the app of a real STM32 reads a port of the rig's, not of kind {stm32_kind}")
    if stm32_kind == "real" and time_scale != 1.0:
        c.report("time_scale", f"a rig with a real STM32 runs at 1x real time; got {time_scale:g}")
    if android_kind == "adb" and not text["package"]:
        c.report("android.package", "is required for an adb device (the DTG app's package name)")
    if gnss_kind == "nmea" and not text["port"]:
        c.report("gnss.port", "is required for an NMEA feed (the serial port of the unit's GNSS input)")
    if profile and codec and get_profile(profile).id_bits > get_codec(codec).capabilities.max_id_bits:
        c.report("stm32.codec", f"{codec} cannot carry the {profile} profile's {get_profile(profile).id_bits}-bit "
                                f"CAN IDs (it carries {get_codec(codec).capabilities.max_id_bits}-bit IDs); "
                                f"use dtg-link-v2")
    bitrate = can_section.get("bitrate")
    wanted = get_profile(profile).bitrate_bps if profile else None
    if isinstance(bitrate, int) and not isinstance(bitrate, bool) and wanted is not None and bitrate != wanted:
        c.report("can.bitrate", f"{bitrate} does not match the {profile} profile's {wanted} bit/s")
    rig = RigConfig(
        name=rig_name, path=Path(file) if file else None, profile=profile,
        can=dict(can_section), stm32_kind=stm32_kind, stm32_sources=sources, codec=codec, uart_tap=text["uart_tap"],
        uart_baudrate=int(uart_baudrate), bench=bench, stm32_sensors=text["sensors"], android_kind=android_kind,
        android_port=android_port,
        adb_serial=text["serial"], apk=text["apk"], package=text["package"], gnss_kind=gnss_kind,
        gnss_port=text["port"], gnss_baudrate=int(gnss_baudrate),
        models=models_path, time_scale=float(time_scale), rig_loss_max_pct=float(rig_loss_max_pct),
    )
    scale_problem = time_scale_problem(rig) if "time_scale" in top and time_scale == top["time_scale"] else None
    if scale_problem is not None:
        c.report("time_scale", scale_problem)
    if c.problems:
        raise RigError(file, c.problems)
    return rig


def _check_can(c: Checker, can_section: dict) -> None:
    """The python-can settings the harness itself relies on: text for the interface and channel (or a channel
    number), a whole bit rate in the range of classic CAN. Other keys go to python-can as they are."""
    for key in ("interface",):
        if key in can_section and not isinstance(can_section[key], str):
            c.report(f"can.{key}", f"expected text (a python-can interface name); got {kind_of(can_section[key])}")
    channel = can_section.get("channel")
    if channel is not None and (isinstance(channel, bool) or not isinstance(channel, (str, int))):
        c.report("can.channel", f"expected text or a channel number; got {kind_of(channel)} {channel!r}")
    if "bitrate" in can_section:
        c.number(can_section, "bitrate", "can", None, lo=CAN_BITRATE_RANGE[0], hi=CAN_BITRATE_RANGE[1], integer=True)


def _host_sources(c: Checker, stm32: dict, kind: str, base_dir: Path | None) -> Path | None:
    """stm32.sources: required for kind host (a folder, relative to the rig file), refused for the other kinds."""
    text = c.text(stm32, "sources", "stm32", "") or None
    if kind != "host":
        if text:
            c.report("stm32.sources", f"only a host build has sources (stm32.kind: host), not kind {kind}")
        return None
    if not text:
        c.report("stm32.sources", "is required for kind host: the folder of the firmware's C sources (Core/Src, "
                                  "Core/Inc), e.g. ../firmware_sim/dtg_firmware")
        return None
    path = Path(text)
    if not path.is_absolute() and base_dir is not None:
        path = base_dir / path
    if not path.is_dir():
        c.report("stm32.sources", f"{text}: no such folder")
    return path


def load_rig(path: str | Path | None) -> RigConfig:
    """Read a rig file; None gives the built-in simulated rig."""
    if path is None:
        return BUILTIN_SIM_RIG
    path = Path(path)
    try:
        raw = read_limited(path, "rig")
    except FileTooLarge as exc:
        raise RigError(str(path), [Problem("", exc.problem)]) from None
    except OSError as exc:
        raise RigError(str(path), [Problem("", f"cannot read rig file: {exc.strerror}")]) from None
    data, lines = parse_yaml(decode_text(raw, str(path), RigError), str(path), RigError)
    return parse_rig(data, lines, str(path), path.parent, path.stem)
