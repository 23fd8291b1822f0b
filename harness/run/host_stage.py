"""The STM32 stage of a rig with ``stm32: {kind: host, sources: ...}``: the unit's C firmware, built for the host
(`firmware_sim.host_build`) and run as its own process (`firmware_sim.host_firmware.HostFirmware`) in place of the
simulated STM32, and a firmware failure turned into a FAIL of the unit with its report among the artifacts."""
from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

from firmware_sim.host_build import BuildError, build_firmware
from firmware_sim.host_firmware import FirmwareFault, HostFirmware
from firmware_sim.host_sensors import sensor_commands
from harness.judge.result import RunError
from harness.rig.gnss_feed import NmeaFeed
from harness.rig.rigfile import RigConfig
from harness.run.artifacts import write_error_result
from harness.run.watch import Watch
from harness.wire.dbc import get_profile
from harness.wire.nmea import LINE_END
from harness.wire.signals import Trace
from harness.world.scenario import Scenario

__all__ = ["FIRMWARE_LOG", "HOST_DEFINES", "host_firmware", "unit_fault", "write_fault_result"]

#: Preprocessor definitions a host build gets for the rig's link codec.
HOST_DEFINES = {"raw-can-v1": ("DTG_LINK_RAW_CAN_V1",), "dtg-link-v2": ("DTG_LINK_DTG_LINK_V2",)}
#: The firmware process's output (a sanitizer's report among it), in the run's folder.
FIRMWARE_LOG = "firmware.log"


def host_firmware(rig: RigConfig, bus, uart, clock, trace: Trace, duration_s: float, artifacts: Path,
                  gnss_start_utc: datetime) -> HostFirmware:
    """The rig's firmware built (or taken from the build cache) and ready to start on virtual time; its GNSS input
    gets the drive's position as the rig's NMEA feed would write it (RMC and GGA, one epoch a second), its I2C bus
    the plant's brake pressure and acceleration through the board's sensors (`firmware_sim.host_sensors`)."""
    if not rig.on_virtual_time:
        raise RunError(f"rig '{rig.name}': a host build of the firmware runs on virtual time only (can: {{interface: "
                       f"virtual}}, android: {{kind: simulated}}); a bench with real parts takes stm32: {{kind: real}}")
    try:
        # The rig's codec is told to the build (the sample firmware speaks raw-can-v1 with DTG_LINK_RAW_CAN_V1)
        build = build_firmware(rig.stm32_sources, defines=HOST_DEFINES.get(rig.codec, ()))
    except BuildError as error:
        raise RunError(f"rig '{rig.name}': the firmware {rig.stm32_sources} does not build: {error}") from error
    gnss = None
    if rig.gnss_kind != "none":
        feed = NmeaFeed("(the host firmware's USART2)", trace, clock, start_utc=gnss_start_utc,
                        baudrate=rig.gnss_baudrate, end_s=duration_s)

        def gnss(epoch: int) -> bytes:
            return "".join(sentence + LINE_END for sentence in feed.epoch_sentences(float(epoch))).encode("ascii")
    def sensors(t_s: float) -> dict[str, str]:  # the unit's own brake-pressure sensor and accelerometer
        return sensor_commands(trace.reading_at(t_s))

    return HostFirmware(build.executable, bus, uart, clock, codec=rig.codec, end_s=duration_s, gnss_sentences=gnss,
                        log_path=artifacts / FIRMWARE_LOG, source_root=rig.stm32_sources,
                        can_bitrate=get_profile(rig.profile).bitrate_bps, sensors=sensors)


def unit_fault(error: BaseException) -> FirmwareFault | None:
    """The firmware failure behind `error` (the scheduler wraps a stage's exception, the run wraps the scheduler's)."""
    seen = set()
    while error is not None and id(error) not in seen:
        if isinstance(error, FirmwareFault):
            return error
        seen.add(id(error))
        error = error.__cause__ or error.__context__
    return None


def write_fault_result(scenario: Scenario, rig: RigConfig, artifacts: Path, fault: FirmwareFault,
                       watch: Watch) -> None:
    """result.json of a run the unit's firmware ended: the outcome FAIL with the report's first lines, what the parts
    had counted, and where the whole report is."""
    write_error_result(scenario, rig, artifacts, RunError(str(fault)), watch)
    path = artifacts / "result.json"
    summary = json.loads(path.read_text())
    summary.update(outcome="FAIL", verdict=f"fail: {fault}", error=None, unit_fault=str(fault),
                   firmware_log=str(fault.log_path) if fault.log_path else None)
    path.write_text(json.dumps(summary, indent=1, default=str) + "\n")
