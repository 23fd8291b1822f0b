"""A stand-in bench in a process of its own, for a lab of rigs (labgrid): the loopback rig's stand-ins on ptys
that a `labgrid-exporter` can export, so the harness reaches them only through the lab (docs/lab.md).

On the loopback rig the harness starts its stand-ins inside the run (`harness.run.chain`). A lab bench is
another machine: its CAN adapter, UART tap, GNSS port and phone are there, exported by labgrid, and the harness
acquires the place and opens them over the network. `StandinBench` is such a bench made of stand-ins:

- `can`: a simulated slcan adapter (`firmware_sim.slcan`) on the bench's CAN wire, for the harness's rest-bus;
- `unit_can`: a second slcan adapter on the same wire, where the STM32 plugs in;
- `unit_uart`: the STM32's UART TX line; what is written to it goes to the phone's UART and to the tap;
- `uart_tap`: the tap on that line (the harness only reads it);
- `gnss`: the unit's GNSS input line, where the harness's feed writes NMEA, and `unit_gnss`, where the
  STM32's GNSS receiver reads it;
- `phone`: a simulated phone speaking ADB on 127.0.0.1 (`firmware_sim.phone.device`) with the DTG package; the
  device its app reads the UART from is its property `dtg.uart_port`.

The exporter exports each line as a `RawSerialPort` (a `NetworkSerialPort` to clients, through ser2net) and the
phone as a `NetworkService` (address, port, username `shell`).

The STM32 of this version is simulated by the harness (docs/rig.md, "Bring-up of a real bench"): it plugs into
the bench through `unit_can`, `unit_uart` and `unit_gnss`, as a board would be wired to the bench's adapters.

Run it as ``python -m firmware_sim.bench --exporter-config FILE [--group NAME] [--stdin-lifeline]``: it writes
the labgrid exporter configuration of its ports to FILE, prints one JSON line naming them, and runs until SIGTERM
or SIGINT (or, with ``--stdin-lifeline``, the end of its standard input).

Not modelled: everything `firmware_sim.slcan`, `firmware_sim.phone.device` and the ptys do not model
(docs/loopback.md); the bench's relays copy bytes as they come, at no baud rate; a power switch (the bench
exports none).
"""
from __future__ import annotations

import argparse
import json
import select
import signal
import sys
import threading
import uuid
from pathlib import Path

import serial
import yaml

from firmware_sim.phone.device import SimAndroidDevice
from firmware_sim.phone.dtg_package import phone_apps
from firmware_sim.slcan import SlcanAdapter
from firmware_sim.uart import PtyPair

#: The phone property naming the device its app reads the STM32's UART from (`harness.rig.phone.PhoneSession`).
UART_PORT_PROP = "dtg.uart_port"
#: The serial speed the exporter's ser2net sets on each line (a pty ignores it).
LINE_SPEEDS = {"can": 115200, "unit_can": 115200, "unit_uart": 921600, "uart_tap": 921600, "gnss": 9600,
               "unit_gnss": 9600}


class _Relay(threading.Thread):
    """Copies what is written to one pty's port end onto the port end of others (read on their device end)."""

    def __init__(self, source: PtyPair, targets: list[PtyPair], stop: threading.Event) -> None:
        super().__init__(name=f"bench-relay-{source.port}", daemon=True)
        self._source, self._targets, self._halt = source, targets, stop
        self.bytes_copied = self.bytes_dropped = 0

    def run(self) -> None:
        while not self._halt.is_set():
            data = self._source.read_device(timeout_s=0.05)
            if not data:
                continue
            self.bytes_copied += len(data)
            for target in self._targets:
                try:
                    target.device.write(data)
                except serial.SerialTimeoutException:  # nobody reads that line: a real wire drops the bytes too
                    self.bytes_dropped += len(data)


class StandinBench:
    """The stand-ins of one bench (module docstring); `start()`, then `ports` and `exporter_config()`, `stop()`."""

    def __init__(self) -> None:
        self._stop = threading.Event()
        self._wire = "bench-" + uuid.uuid4().hex[:12]
        self._adapters: list[SlcanAdapter] = []
        self._ptys: dict[str, PtyPair] = {}
        self._relays: list[_Relay] = []
        self.phone: SimAndroidDevice | None = None

    def start(self) -> StandinBench:
        self._adapters = [SlcanAdapter(self._wire).start() for _ in ("can", "unit_can")]
        for name in ("unit_uart", "uart_tap", "phone_uart", "gnss", "unit_gnss"):
            self._ptys[name] = PtyPair(write_timeout_s=0.2)
        self._relays = [_Relay(self._ptys["unit_uart"], [self._ptys["phone_uart"], self._ptys["uart_tap"]], self._stop),
                        _Relay(self._ptys["gnss"], [self._ptys["unit_gnss"]], self._stop)]
        for relay in self._relays:
            relay.start()
        self.phone = SimAndroidDevice(apps=phone_apps(), props={UART_PORT_PROP: self._ptys["phone_uart"].port}).start()
        return self

    @property
    def ports(self) -> dict[str, str]:
        """Part -> the device path the exporter exports (the phone: its adb address, host:port)."""
        ports = {"can": self._adapters[0].port, "unit_can": self._adapters[1].port}
        ports.update({name: self._ptys[name].port for name in ("unit_uart", "uart_tap", "gnss", "unit_gnss")})
        ports["phone"] = self.phone.serial
        return ports

    def exporter_config(self, group: str) -> dict:
        """The labgrid exporter configuration of this bench: one resource group, a resource per part."""
        resources = {name: {"cls": "RawSerialPort", "port": path, "speed": LINE_SPEEDS[name]}
                     for name, path in self.ports.items() if name != "phone"}
        host, port = self.phone.serial.rsplit(":", 1)
        resources["phone"] = {"cls": "NetworkService", "address": host, "port": int(port), "username": "shell"}
        return {group: resources}

    def stop(self) -> None:
        self._stop.set()
        for relay in self._relays:
            relay.join(timeout=1.0)
        if self.phone is not None:
            self.phone.stop()
        for adapter in self._adapters:
            adapter.stop()
        for pty in self._ptys.values():
            pty.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m firmware_sim.bench", description=__doc__.splitlines()[0])
    parser.add_argument("--exporter-config", required=True, type=Path, help="write the labgrid exporter YAML here")
    parser.add_argument("--group", default="dtg-bench", help="the exporter's resource group (default: dtg-bench)")
    parser.add_argument("--stdin-lifeline", action="store_true",
                        help="stop also when standard input ends (a parent that dies takes the bench with it)")
    args = parser.parse_args(argv)
    bench = StandinBench().start()
    done = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: done.set())
    try:
        args.exporter_config.write_text(yaml.safe_dump(bench.exporter_config(args.group), sort_keys=False))
        print(json.dumps({"group": args.group, **bench.ports}), flush=True)
        while not done.is_set():  # until a signal, or (--stdin-lifeline) the parent closes our stdin
            readable, _, _ = select.select([sys.stdin] if args.stdin_lifeline else [], [], [], 0.2)
            if readable and not sys.stdin.buffer.read1(4096):
                break
    finally:
        bench.stop()
        for relay in bench._relays:
            print(f"{relay.name}: {relay.bytes_copied} bytes copied, {relay.bytes_dropped} dropped", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
