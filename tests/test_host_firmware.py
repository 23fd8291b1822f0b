"""The unit's own C firmware in the loop (issue 19): the sample firmware built for the host against the host HAL, its
link framing byte for byte against the Python codecs, `dtg-hil firmware build` naming a HAL function the host HAL
lacks, the contract suite and three scenarios passing on rigs/host-firmware.yaml, and planted defects found: a CRC
sent low byte first (link conformance), a 104-byte write into an 83-byte buffer (AddressSanitizer), polling that
stops after 60 s (liveness)."""
from __future__ import annotations

import json
import math
import os
import random
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from firmware_sim.host_build import HOST_HAL_DIR, SAMPLE_FIRMWARE_DIR, build_firmware
from firmware_sim.host_firmware import MAX_FRAMES_PER_ADVANCE, FirmwareFault, HostFirmware, summarise_report
from harness.judge.contract import FAIL, check_link, check_liveness
from harness.rig.rigfile import RigError, load_rig, parse_rig
from harness.run.chain import run_scenario
from harness.run.contract import run_for_contract
from harness.tools.cli import main as cli_main
from harness.wire.link import CanFrame, SampleRecord, StatusRecord, get_codec
from harness.wire.signals import SIGNALS
from harness.world.scenario import load_scenario

ROOT = Path(__file__).resolve().parents[1]
RIG = ROOT / "rigs" / "host-firmware.yaml"
#: Three bundled scenarios the host firmware must pass (OBD-II signals and position: what a host build carries).
HOST_SCENARIOS = ("scenarios/id_silent_coolant.yaml", "scenarios/over_revving_urban.yaml",
                  "scenarios/excessive_idling_urban.yaml")

# Without a C compiler these skip; under CI they run (and fail): `make test` installs gcc when root.
pytestmark = pytest.mark.skipif(shutil.which("cc") is None and not os.environ.get("CI"),
                                reason="no C compiler (cc): `make test` installs gcc when root (apt-get install gcc)")


def _variant(tmp_path: Path, name: str, path: str, old: str, new: str) -> Path:
    """A copy of the sample firmware with one planted change (`old` must occur exactly once in `path`)."""
    tree = tmp_path / name
    shutil.copytree(SAMPLE_FIRMWARE_DIR, tree)
    source = tree / path
    text = source.read_text()
    assert text.count(old) == 1, f"{path}: the text to plant into is not there once: {old!r}"
    source.write_text(text.replace(old, new))
    return tree


def _short_drive(tmp_path: Path, name: str, duration_s: int, style: str) -> Path:
    scenario = tmp_path / f"{name}.yaml"
    scenario.write_text(f"name: {name}\nvehicle: passenger_car\nseed: 75\nroute:\n  generated:\n"
                        f"    duration_s: {duration_s}\n    mix: {{urban: 1}}\n    styles: {{{style}}}\n")
    return scenario


def _host_rig(sources: Path):
    return parse_rig({"name": "host-variant", "stm32": {"kind": "host", "sources": str(sources)}}, {}, "host-variant")


# ---------------------------------------------------------------------------------------------- the link, in C

_LINK_DRIVER = r"""
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "dtg_link.h"
static void put(const uint8_t *b, size_t n) { for (size_t i = 0; i < n; i++) printf("%02x", b[i]); printf("\n"); }
int main(void) {
  char kind[4];
  uint8_t out[LINK_FRAME_MAX];
  while (scanf("%3s", kind) == 1) {
    unsigned long seq, t;
    if (kind[0] == 'C') {
      unsigned codec, ext, dlc; unsigned long id; link_can_frame f = {0};
      scanf("%u %lu %lu %lu %u %u", &codec, &seq, &t, &id, &ext, &dlc);
      f.id = (uint32_t)id; f.extended = (uint8_t)ext; f.dlc = (uint8_t)dlc;
      for (unsigned i = 0; i < dlc; i++) { unsigned b; scanf("%x", &b); f.data[i] = (uint8_t)b; }
      put(out, link_encode_can((link_codec)codec, (uint32_t)seq, (uint32_t)t, &f, out));
    } else if (kind[0] == 'S') {
      link_sample s = {0};
      scanf("%lu %lu", &seq, &t);
      for (int i = 0; i < 10; i++) { char v[64]; scanf("%63s", v); s.has[i] = strcmp(v, "na") != 0;
        s.value[i] = s.has[i] ? strtod(v, NULL) : 0; }
      put(out, link_encode_sample((uint32_t)seq, (uint32_t)t, &s, out));
    } else {
      link_status s; unsigned long a, b, c, d;
      scanf("%lu %lu %lu %lu %lu %lu", &seq, &t, &a, &b, &c, &d);
      s.requests_sent = a; s.requests_unanswered = b; s.can_frames_received = c; s.can_frames_dropped = d;
      put(out, link_encode_status((uint32_t)seq, (uint32_t)t, &s, out));
    }
  }
  return 0;
}
"""


def test_the_firmware_frames_the_link_byte_for_byte_as_the_python_codecs(tmp_path):
    driver = tmp_path / "driver.c"
    driver.write_text(_LINK_DRIVER)
    exe = tmp_path / "driver"
    inc = SAMPLE_FIRMWARE_DIR / "Core" / "Inc"
    subprocess.run(["cc", "-std=gnu11", "-Wall", "-fsanitize=address,undefined", f"-I{inc}", str(driver),
                    str(SAMPLE_FIRMWARE_DIR / "Core" / "Src" / "dtg_link.c"), "-lm", "-o", str(exe)], check=True)
    rng = random.Random(19)
    v1, v2 = get_codec("raw-can-v1"), get_codec("dtg-link-v2")
    lines, expected = [], []
    for _ in range(300):
        ext = rng.random() < 0.5
        can_id = rng.randrange(1 << 29) if ext else rng.randrange(1 << 11)
        data = bytes(rng.randrange(256) for _ in range(rng.randrange(9)))
        seq, t_ms = rng.randrange(1 << 32), rng.randrange(1 << 32 - 1)
        frame = CanFrame(can_id, data, ext, t_ms / 1000)
        for number, codec in ((1, v1), (2, v2)):
            lines.append(f"C {number} {seq} {t_ms} {can_id} {int(ext)} {len(data)} {data.hex(' ')}")
            expected.append("" if ext and number == 1 else codec.encode(frame, seq).hex())
        values = []
        for field in range(10):
            kind = rng.random()
            # NaN, out of range (saturates), exact halves of the resolution (ties: round half to even), any value
            value = (None if kind < 0.1 else rng.choice([-1e12, 1e12]) if kind < 0.2
                     else rng.randrange(-4000, 4000) / (2 * (100 if field not in (1, 6, 7, 8, 9) else 4)) if kind < 0.5
                     else rng.uniform(-300, 300))
            if field in (7, 8) and value is not None and kind >= 0.5:
                value = rng.uniform(-180, 180)
            values.append(value)
        lines.append(f"S {seq} {t_ms} " + " ".join("na" if v is None else repr(v) for v in values))
        expected.append(v2.encode(SampleRecord(t_ms, tuple(values)), seq).hex())
        counters = [rng.randrange(1 << 32) for _ in range(4)]
        lines.append(f"T {seq} {t_ms} " + " ".join(map(str, counters)))
        expected.append(v2.encode(StatusRecord(t_ms, *counters), seq).hex())
    done = subprocess.run([str(exe)], input="\n".join(lines) + "\n", capture_output=True, text=True, check=True)
    got = done.stdout.splitlines()
    assert len(got) == len(expected)
    for line, want, have in zip(lines, expected, got, strict=True):
        assert have == want, line


# ---------------------------------------------------------------------------------------------- build, rig file

def test_firmware_build_exits_2_naming_an_unprovided_hal_function(tmp_path, capsys):
    tree = _variant(tmp_path, "iwdg", "Core/Src/main.c", "  MX_TIM6_Init();\n", "  MX_TIM6_Init();\n"
                    "  HAL_IWDG_Refresh(NULL);\n")
    assert cli_main(["firmware", "build", str(tree)]) == 2
    err = capsys.readouterr().err
    assert "HAL_IWDG_Refresh" in err and "Core/Src/main.c:" in err, err
    assert cli_main(["firmware", "build", str(SAMPLE_FIRMWARE_DIR)]) == 0
    assert "-fsanitize=address,undefined" in capsys.readouterr().out


def test_the_sample_firmware_builds_with_the_sanitizers_against_the_host_hal_only():
    result = build_firmware(SAMPLE_FIRMWARE_DIR)
    assert result.executable.is_file()
    assert "-fsanitize=address,undefined" in result.command and str(HOST_HAL_DIR / "Inc") in result.command
    # The application's own sources use no libc I/O or POSIX call: only the HAL (and string/math helpers).
    for source in result.sources:
        text = source.read_text()
        assert not re.search(r"\b(printf|fopen|read|write|usleep|pthread_\w+|getenv)\s*\(", text), source


def test_concurrent_builds_of_the_same_tree_share_the_cache_folder(tmp_path, monkeypatch):
    """Builders in several processes (pytest-xdist workers, a scenario run's subprocess) write the same cache
    folder: each links under its own name and renames it into place, so none finds its file gone or taken."""
    monkeypatch.setenv("DTG_FIRMWARE_CACHE", str(tmp_path))
    code = ("import sys; from firmware_sim.host_build import build_firmware, SAMPLE_FIRMWARE_DIR; "
            "print(build_firmware(SAMPLE_FIRMWARE_DIR).executable)")
    builders = [subprocess.Popen([sys.executable, "-c", code], cwd=ROOT, stdout=subprocess.PIPE,
                                 stderr=subprocess.PIPE, text=True) for _ in range(3)]
    outputs = [b.communicate(timeout=300) for b in builders]
    assert [b.returncode for b in builders] == [0, 0, 0], [err[-2000:] for _, err in outputs]
    executables = {out.strip() for out, _ in outputs}
    assert len(executables) == 1 and Path(executables.pop()).is_file()
    assert [p.name for p in tmp_path.rglob("*") if p.is_file()] == ["firmware"]


def test_the_host_firmware_rig_file():
    rig = load_rig(RIG)
    assert rig.stm32_kind == "host" and rig.stm32_sources.resolve() == SAMPLE_FIRMWARE_DIR
    assert rig.on_virtual_time and not rig.simulated and math.isinf(rig.time_scale)
    # the unit's own brake and acceleration sensors are the host build's ADC inputs, which the harness sets
    assert set(rig.injectable_signals) == set(SIGNALS)
    with pytest.raises(RigError, match=r"stm32.sources: is required for kind host"):
        parse_rig({"stm32": {"kind": "host"}}, {}, "x.yaml")
    with pytest.raises(RigError, match=r"stm32.sources: nowhere: no such folder"):
        parse_rig({"stm32": {"kind": "host", "sources": "nowhere"}}, {}, "x.yaml", ROOT)


def test_a_sanitizer_report_is_summarised_with_its_first_lines_and_the_firmware_source_line():
    report = ("==7==ERROR: AddressSanitizer: global-buffer-overflow on address 0x5 at pc 0x1 bp 0x2 sp 0x3\n"
              "WRITE of size 104 at 0x5 thread T0\n"
              "    #0 0x7f in __interceptor_memcpy ../../../../src/libsanitizer/sanitizer_common/x.inc:827\n"
              "    #1 0x55 in take_line /src/fw/Core/Src/dtg_nmea.c:113\n"
              "    #2 0x56 in host_idle /p/firmware_sim/host_hal/Src/host_hal.c:300\n")
    assert summarise_report(report, Path("/src/fw")) == (
        "ERROR: AddressSanitizer: global-buffer-overflow on address 0x5 at pc 0x1 bp 0x2 sp 0x3; "
        "WRITE of size 104 at 0x5 thread T0; at Core/Src/dtg_nmea.c:113 in take_line")
    assert summarise_report("all fine\n") == ""


# ---------------------------------------------------------------------------------------------- in the loop

@pytest.fixture(scope="module")
def hil_run(tmp_path_factory):
    artifacts = tmp_path_factory.mktemp("host-firmware")
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-m", "hil", "--rig", str(RIG), "--dtg-artifacts", str(artifacts),
         "-p", "no:cacheprovider", "-p", "no:labgrid", "-q", "-n", "2", "--dist", "loadfile", "tests/contract",
         *HOST_SCENARIOS],
        cwd=ROOT, capture_output=True, text=True, timeout=900, stdin=subprocess.DEVNULL)
    runs = {p.parent.name: json.loads(p.read_text()) for p in artifacts.glob("*/*/result.json")}
    return done, runs


def test_the_contract_suite_and_three_scenarios_pass_on_the_host_firmware(hil_run):
    done, runs = hil_run
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    assert " skipped" not in done.stdout and " failed" not in done.stdout, done.stdout[-3000:]
    for name in HOST_SCENARIOS:
        result = runs[Path(name).stem]
        assert result["outcome"] == "PASS" and result["rig"] == "host-firmware", result["verdict"]
        counts = result["accounting"]
        # every request answered (id-silent-coolant: the coolant PID's 60 s of silence time out once a second), every
        # frame forwarded, every sample decoded by the app
        silent_s = 60 if name.endswith("id_silent_coolant.yaml") else 0
        assert counts["obd_requests_unanswered"] == silent_s and counts["obd_requests_answered"] > 0
        assert counts["link_frames_lost"] == 0 and counts["link_crc_errors"] == 0
        assert counts["firmware_frames_forwarded"] == counts["can_frames_sent"]
        assert counts["samples_received"] == counts["samples_sent"] > 0



def test_a_crc_sent_low_byte_first_fails_link_conformance_naming_the_variant(tmp_path, models):
    tree = _variant(tmp_path, "crc-swapped", "Core/Src/dtg_link.c",
                    "  put_u32(out + V2_HEADER + payload_len, link_crc32(out + 2, V2_HEADER - 2 + payload_len));",
                    "  uint32_t crc = link_crc32(out + 2, V2_HEADER - 2 + payload_len);\n"
                    "  for (int i = 0; i < 4; i++) out[V2_HEADER + payload_len + i] = (uint8_t)(crc >> (8 * i));")
    run = run_for_contract(load_scenario(_short_drive(tmp_path, "crc", 120, "normal: 1")), _host_rig(tree), models,
                           tmp_path / "run")
    verdict = check_link(run)
    assert verdict.status == FAIL, str(verdict)
    assert "CRC-32/ISO-HDLC sent low byte first (byte-swapped)" in verdict.message, str(verdict)


def test_a_104_byte_write_into_an_83_byte_buffer_fails_the_run_naming_addresssanitizer_and_the_line(tmp_path, models):
    tree = _variant(tmp_path, "overflow", "Core/Src/dtg_nmea.c", "  memcpy(sentence, line, len);",
                    "  memcpy(sentence, line, 104);")
    line = next(i for i, text in enumerate((tree / "Core/Src/dtg_nmea.c").read_text().splitlines(), 1)
                if "memcpy(sentence, line, 104)" in text)
    artifacts = tmp_path / "run"
    with pytest.raises(FirmwareFault) as caught:
        run_scenario(load_scenario(_short_drive(tmp_path, "overflow", 120, "normal: 1")), _host_rig(tree), models,
                     artifacts)
    message = str(caught.value)
    assert "AddressSanitizer: global-buffer-overflow" in message and "WRITE of size 104" in message, message
    assert f"at Core/Src/dtg_nmea.c:{line} in take_line" in message, message
    result = json.loads((artifacts / "result.json").read_text())
    assert result["outcome"] == "FAIL" and result["verdict"].startswith("fail: the unit's firmware"), result
    assert "SUMMARY: AddressSanitizer: global-buffer-overflow" in (artifacts / "firmware.log").read_text()


def test_a_firmware_that_stops_polling_after_60_s_fails_liveness(tmp_path, models):
    tree = _variant(tmp_path, "stops", "Core/Src/dtg_obd.c", "void obd_run(uint32_t now_ms) {\n",
                    "void obd_run(uint32_t now_ms) {\n  if (now_ms >= 60000U) return;\n")
    rig = _host_rig(tree)
    runs = [run_for_contract(load_scenario(_short_drive(tmp_path, name, 240, style)), rig, models, tmp_path / name)
            for name, style in (("mixed", "normal: 1, eco: 1, aggressive: 1"), ("eco", "eco: 1"))]
    verdict = check_liveness(*runs, "driving style: a mix -> eco only")
    assert verdict.status == FAIL and "windows scored" in verdict.message, str(verdict)


def test_a_firmware_that_hangs_fails_the_run_naming_where_it_spins(tmp_path, models, monkeypatch):
    monkeypatch.setattr("firmware_sim.host_firmware.HANG_WALL_S", 3.0)
    tree = _variant(tmp_path, "hang", "Core/Src/dtg_obd.c", "void obd_run(uint32_t now_ms) {\n",
                    "void obd_run(uint32_t now_ms) {\n  while (now_ms >= 30000U) __NOP();\n")
    artifacts = tmp_path / "run"
    with pytest.raises(FirmwareFault) as caught:
        run_scenario(load_scenario(_short_drive(tmp_path, "hang", 120, "normal: 1")), _host_rig(tree), models,
                     artifacts)
    message = str(caught.value)
    assert "hung: no idle report within 3 s of wall time" in message and "at t=30.000 s" in message, message
    assert "ERROR: AddressSanitizer: ABRT" in message and "Core/Src/dtg_obd.c:" in message, message
    assert "in obd_run" in message, message
    assert json.loads((artifacts / "result.json").read_text())["outcome"] == "FAIL"


def test_a_raw_can_v1_rig_builds_the_firmware_for_that_codec_and_its_frames_pass_link_conformance(tmp_path, models):
    rig = parse_rig({"name": "host-v1", "stm32": {"kind": "host", "sources": str(SAMPLE_FIRMWARE_DIR),
                                                  "codec": "raw-can-v1"}}, {}, "host-v1")
    run = run_for_contract(load_scenario(_short_drive(tmp_path, "v1", 120, "normal: 1")), rig, models, tmp_path / "run")
    verdict = check_link(run)
    assert verdict.passed and "pass raw-can-v1 (CRC-16/MODBUS), 0 CRC errors" in verdict.message, str(verdict)
    counts = run.result.accounting
    # 9 requests a second, each forwarded next to its answer
    assert counts.firmware_frames_forwarded == 2 * counts.restbus_frames_sent > 0
    assert counts.can_frames_sent == counts.firmware_frames_forwarded


def test_a_firmware_that_busy_waits_on_hal_gettick_instead_of_wfi_sends_the_same_bytes(tmp_path, models):
    spinning = _variant(tmp_path, "spin", "Core/Src/main.c", "    if (rx.tail == rx.head) __WFI();", "")
    scenario = load_scenario(_short_drive(tmp_path, "spin", 120, "normal: 1"))
    for name, sources in (("wfi", SAMPLE_FIRMWARE_DIR), ("spin", spinning)):
        run_for_contract(scenario, _host_rig(sources), models, tmp_path / name)
    wfi, spin = ((tmp_path / name / "uart.bin").read_bytes() for name in ("wfi", "spin"))
    assert len(wfi) > 50_000 and spin == wfi


class _Sink:
    def __init__(self) -> None:
        self.data = bytearray()

    def write(self, data: bytes) -> int:
        self.data += data
        return len(data)


def test_a_burst_of_frames_at_one_instant_reaches_the_firmware_in_parts_and_is_all_forwarded(tmp_path):
    from harness.core.clock import VirtualClock
    from harness.wire.virtual_bus import Frame, SimBus

    executable = build_firmware(SAMPLE_FIRMWARE_DIR).executable
    sink, clock = _Sink(), VirtualClock()
    with SimBus(channel="burst-i19", preserve_timestamps=True) as wire, \
            SimBus(channel="burst-i19", preserve_timestamps=True) as vehicle:
        firmware = HostFirmware(executable, wire, sink, clock, end_s=0.5, log_path=tmp_path / "firmware.log")
        firmware.start_stepped()
        try:
            burst = 3 * MAX_FRAMES_PER_ADVANCE + 7  # more frames than one move of the clock carries
            for i in range(burst):
                vehicle.send(Frame(arbitration_id=0x100 + i % 0x600, is_extended_id=False, data=bytes([i % 256] * 8),
                                   timestamp=0.0))
            assert firmware.step(0.0)
            requests = []
            message = vehicle.recv(timeout=0)
            while message is not None:
                requests.append(message)
                message = vehicle.recv(timeout=0)
        finally:
            firmware.stop()
    # the firmware's first request (boot, t=0) went on the wire; every frame of the burst was forwarded, after it
    assert [m.arbitration_id for m in requests] == [0x7DF] and bytes(requests[0].data)[:3] == b"\x02\x01\x0d"
    frames = [r.record for r in get_codec("dtg-link-v2").decoder().feed(bytes(sink.data))]
    forwarded = [f for f in frames if isinstance(f, CanFrame) and f.can_id != 0x7DF]
    assert len(forwarded) == burst and [f.data[0] for f in forwarded] == [i % 256 for i in range(burst)]
