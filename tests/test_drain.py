"""The end of a run loses nothing a correct unit sent: a slow but correct last window is waited for (the drain waits
until the app and the tap have handled every byte the firmware wrote, bounded), and a reader's stop() drains its
port. Neither counts as data loss, on virtual time or on a rig paced by the wall clock."""
from __future__ import annotations

import dataclasses
import json
import threading
import time
from pathlib import Path

import pytest

from firmware_sim.phone.app import AppSim
from firmware_sim.uart import PtyPair, UartCapture
from harness.rig.rigfile import BUILTIN_SIM_RIG, SIMULATED
from harness.run.chain import run_scenario
from harness.run.watch import wait_drained
from harness.wire.link import get_codec
from harness.world.scenario import parse_scenario

ROOT = Path(__file__).resolve().parents[1]
MANIFEST = ROOT / "models" / "manifest.json"
DURATION_S = 180.0
#: How long the slow app pauses on each of its last windows (the planted "slow but correct" app of issue 17).
PAUSE_S = 0.5



def _scenario():
    data = {"name": "slow-last-window", "vehicle": "passenger_car", "seed": 3,
            "route": {"generated": {"duration_s": DURATION_S, "mix": {"urban": 1.0}}}}
    return parse_scenario(data, {}, "", name=data["name"])


@pytest.fixture
def slow_last_windows(monkeypatch):
    """The app pauses PAUSE_S on the last window of the drive (its last sample's), then scores it correctly."""
    score = AppSim._score
    pauses = []
    last_t_s = _scenario().profile().duration_s - 1

    def slow(self, t_s, context):
        if t_s >= last_t_s:
            pauses.append(t_s)
            time.sleep(PAUSE_S)
        return score(self, t_s, context)

    monkeypatch.setattr(AppSim, "_score", slow)
    return pauses


# A simulated rig with the GNSS feed's stand-in runs each part in its own thread, paced by the wall clock. What is
# judged here is the unit's loss at the end of the run; the rig's own lag on a busy machine (a few OBD-II answers
# late) is tolerated, as tests/test_rig_lag.py judges that.
PACED_RIG = dataclasses.replace(BUILTIN_SIM_RIG, name="paced-sim", gnss_kind="nmea", gnss_port=SIMULATED,
                                time_scale=20.0, rig_loss_max_pct=5.0)


@pytest.mark.sim
@pytest.mark.parametrize("rig", [BUILTIN_SIM_RIG, PACED_RIG], ids=["virtual-time", "paced"])
def test_a_slow_last_window_is_no_data_loss(tmp_path, models, slow_last_windows, rig):
    assert rig.on_virtual_time == (rig is BUILTIN_SIM_RIG)
    result = run_scenario(_scenario(), rig, models, tmp_path / "run")  # a DataLossError would raise here
    assert slow_last_windows  # the pause happened
    acc = result.accounting
    assert acc.link_frames_decoded == acc.link_frames_expected > 0
    assert acc.samples_received == acc.samples_sent
    assert all(lost == 0 for _, lost, _ in acc.unit_loss())
    summary = json.loads((tmp_path / "run" / "result.json").read_text())
    assert summary["outcome"] == "PASS" and not [row for row in summary["data_loss"] if row["lost"]]


def test_stop_drains_what_is_already_in_the_port():
    """Bytes written before stop() are read and decoded even while the reader is busy on an earlier batch."""
    codec = get_codec("dtg-link-v2")
    encoder = codec.encoder()
    from harness.wire.link import CanFrame

    # 120 frames: within the pty's buffer (4 kB), so the writer never waits for the reader.
    frames = [encoder.encode(CanFrame(0x7E8, bytes([3, 0x41, 0x0D, i % 200]))) for i in range(120)]
    busy = threading.Event()
    release = threading.Event()

    def on_received(received):
        if not busy.is_set():
            busy.set()
            release.wait(5)  # the reader is slow on its first batch; the rest queues in the port behind it

    with PtyPair() as pty:
        port = pty.open_serial(timeout_s=0.02)
        capture = UartCapture(port, codec.decoder(), on_received=on_received).start()
        pty.device.write(frames[0])
        assert busy.wait(5)
        for data in frames[1:]:
            pty.device.write(data)
        threading.Timer(0.3, release.set).start()
        capture.stop(timeout_s=10)  # asked while the reader is busy: it still reads what is in the port
        stats = capture.stats
    assert stats.can_frames == len(frames) and stats.bytes_handled == stats.bytes_read == sum(map(len, frames))


def test_wait_drained_is_bounded_and_stops_for_a_dead_reader():
    assert wait_drained(lambda: 5, lambda: 5, timeout_s=0)
    looks = []

    def handled():
        looks.append(1)
        return 4

    assert not wait_drained(handled, lambda: 5, timeout_s=30, alive=lambda: False)
    assert len(looks) == 1  # a dead reader reads nothing more: no waiting for it
    assert not wait_drained(lambda: 4, lambda: 5, timeout_s=0.05)
