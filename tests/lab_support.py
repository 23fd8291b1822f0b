"""A lab on this machine for the tests: a real labgrid-coordinator on 127.0.0.1 (a free port), and per bench a
stand-in bench process (`firmware_sim.bench`) with a labgrid-exporter exporting it; places created with labgrid's
own client. Every process is started here and stopped by its PID; everything listens on 127.0.0.1 only."""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from harness.rig.phone import free_port

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
SER2NET = shutil.which("ser2net") or ("/usr/sbin/ser2net" if Path("/usr/sbin/ser2net").is_file() else None)
# labgrid's exporter starts ser2net listening on every interface ("tcp,PORT"); the tests keep it on loopback.
SER2NET_LOOPBACK = """#!/bin/bash
exec {ser2net} "${{@/,tcp,/,tcp(nodelay),127.0.0.1,}}"
"""


def _wait_for(check, timeout_s: float, what: str):
    deadline = time.monotonic() + timeout_s
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise TimeoutError(f"{what} not ready within {timeout_s:g} s")
        time.sleep(0.1)


def children(pid: int) -> list[int]:
    """The PIDs of a process's children (the ser2net instances of an exporter)."""
    out = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            out += [int(p) for p in (task / "children").read_text().split()]
        except OSError:
            pass
    return out


def stop(process: subprocess.Popen, sig: int = signal.SIGTERM, timeout_s: float = 10.0) -> None:
    if process.poll() is None:
        process.send_signal(sig)
        try:
            process.wait(timeout_s)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)


class Lab:
    """The coordinator, the benches and their exporters (`add_bench`), and `client(...)` to run labgrid-client."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        (folder / "bin").mkdir(parents=True, exist_ok=True)
        wrapper = folder / "bin" / "ser2net"
        wrapper.write_text(SER2NET_LOOPBACK.format(ser2net=SER2NET))
        wrapper.chmod(0o755)
        self.address = f"127.0.0.1:{free_port()}"
        self.env = {**os.environ, "LG_COORDINATOR": self.address, "PYTHONPATH": str(ROOT),
                    "PATH": f"{folder / 'bin'}{os.pathsep}{os.environ.get('PATH', '')}"}
        self.processes: list[subprocess.Popen] = []
        self.benches: dict[str, subprocess.Popen] = {}
        self.exporters: dict[str, subprocess.Popen] = {}
        try:
            self.coordinator = self._start([str(BIN / "labgrid-coordinator"), "-l", self.address], "coordinator")
            _wait_for(lambda: self.client("places", check=False).returncode == 0, 20, "labgrid-coordinator")
        except BaseException:
            self.close()
            raise

    def _start(self, args: list[str], log: str, **kwargs) -> subprocess.Popen:
        with (self.folder / f"{log}.log").open("ab") as out:
            process = subprocess.Popen(args, cwd=self.folder, env=self.env, stdout=kwargs.pop("stdout", out),
                                       stderr=out, **kwargs)
        self.processes.append(process)
        return process

    def client(self, *args: str, check: bool = True, user: str = "lab-admin") -> subprocess.CompletedProcess:
        return subprocess.run([str(BIN / "labgrid-client"), *args], cwd=self.folder, capture_output=True, text=True,
                              env={**self.env, "LG_USERNAME": user}, timeout=30, check=check,
                              stdin=subprocess.DEVNULL)

    def add_bench(self, place: str, tags: dict[str, str]) -> dict:
        """A stand-in bench, an exporter (named exp-<place>) exporting it as group <place>, and the place."""
        config = self.folder / f"{place}.yaml"
        bench = self._start([sys.executable, "-m", "firmware_sim.bench", "--exporter-config", str(config),
                             "--group", place, "--stdin-lifeline"], f"bench-{place}", stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE)
        ports = json.loads(bench.stdout.readline())
        self.benches[place] = bench
        self.exporters[place] = self.start_exporter(place)
        self.client("-p", place, "create")
        self.client("-p", place, "add-match", f"exp-{place}/{place}/*")
        self.client("-p", place, "set-tags", *(f"{k}={v}" for k, v in tags.items()))
        return ports

    def start_exporter(self, place: str) -> subprocess.Popen:
        exporter = self._start([str(BIN / "labgrid-exporter"), "-c", self.address, "-n", f"exp-{place}",
                                "--hostname", "127.0.0.1", str(self.folder / f"{place}.yaml")], f"exporter-{place}")
        _wait_for(lambda: f"exp-{place}/{place}/NetworkService" in self.client("resources").stdout, 30,
                  f"exporter of {place}")
        return exporter

    def holder(self, place: str) -> str | None:
        """Who holds `place` (labgrid's host/user), or None."""
        for line in self.client("-p", place, "show").stdout.splitlines():
            if line.strip().startswith("acquired:"):
                value = line.split(":", 1)[1].strip()
                return None if value in ("", "None") else value
        return None

    def close(self) -> None:
        for bench in self.benches.values():
            if bench.stdin:
                bench.stdin.close()
        for process in reversed(self.processes):
            stop(process)


# -- shared by the lab test modules --------------------------------------------------------------------------

def need_ser2net():
    if SER2NET is None:
        message = "ser2net is missing (make test installs Debian's as root: apt-get install ser2net)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    """A lab of two benches, `bench-a` and `bench-b` (tag bench=dtg), for a test module."""
    need_ser2net()
    lab = Lab(tmp_path_factory.mktemp("lab"))
    try:
        for place in ("bench-a", "bench-b"):
            lab.add_bench(place, {"bench": "dtg"})
        yield lab
    finally:
        lab.close()


def run_pytest(lab, user: str, *args: str) -> subprocess.Popen:
    """A pytest session of its own (harness.plugin blocks labgrid's own pytest plugin)."""
    return subprocess.Popen([sys.executable, "-m", "pytest", "-p", "harness.plugin", "-p", "no:cacheprovider", "-q",
                             *args], cwd=ROOT, env={**lab.env, "LG_USERNAME": user},
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, stdin=subprocess.DEVNULL)


def wait_holder(lab, place: str, user: str, timeout_s: float = 120.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not (lab.holder(place) or "").endswith("/" + user):
        assert time.monotonic() < deadline, f"{user} did not acquire {place}"
        time.sleep(0.2)


def results(artifacts: Path) -> dict[str, dict]:
    return {p.parent.name: json.loads(p.read_text()) for p in artifacts.rglob("result.json")}
