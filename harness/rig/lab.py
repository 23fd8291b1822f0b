"""A rig that is a place of a labgrid lab: acquired for the session, built from the place's resources, released.

Benches shared by people and CI are labgrid places (docs/lab.md): a `labgrid-coordinator` knows them, a
`labgrid-exporter` on each bench PC exports its ports (serial ports through ser2net as `NetworkSerialPort`, the
phone's adb address as a `NetworkService`), and a place holds one bench's resources, with a lock. `--rig
labgrid:PLACE` (or `labgrid:TAG=VALUE,...`, or a rig file with a `lab:` section) makes dtg-hil:

1. acquire the place through labgrid's own client (`labgrid.remote.client.ClientSession`), waiting up to
   `--dtg-lab-wait` seconds while someone else holds it; with a tag match, the first idle place that matches
   (so each pytest-xdist worker takes its own); then fail in one line naming the place and its holder;
2. build a `LabRig` (a `RigConfig`) from the place's resources: each role (`ROLES`) is the resource of that
   name, or the one the rig file's `lab.roles` maps it to;
3. watch the place during a run (`PlaceWatch`, a part of the run): a resource that disappears (its exporter
   gone) or becomes unavailable ends the run as an ERROR naming the resource and the place;
4. release the place at the end of the session (`release_all`: the plugin calls it at session finish, which
   pytest runs after a failure and after Ctrl-C too; an `atexit` hook catches the rest).

The STM32 of this version is simulated by the harness; it plugs into the bench through the `unit_*` roles (the
bench's second CAN adapter, the UART line to the phone and the tap, the GNSS receiver's line), as a board would
be wired to it (`firmware_sim.bench`, the stand-in bench). What this module does not do: power or reset a bench
(labgrid's power protocol; no role for it yet), reservations (`labgrid-client reserve`), or SSH proxies to
exporters behind a gateway (`proxy_required` resources are refused).
"""
from __future__ import annotations

import asyncio
import atexit
import dataclasses
import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.core.datafile import Checker, decode_text, parse_yaml
from harness.core.errors import DtgHilError
from harness.core.worker import Worker, WorkerError
from harness.rig.rigfile import SIMULATED, RigConfig, RigError, parse_rig

LAB_PREFIX = "labgrid:"
#: labgrid's own default port; `LG_COORDINATOR` (labgrid's variable) names another coordinator.
DEFAULT_COORDINATOR = "127.0.0.1:20408"
#: role -> what plays it (a resource of the place; the rig file's `lab.roles` may rename them).
ROLES = {
    "can": "the bench's CAN adapter, slcan over a NetworkSerialPort (the harness's rest-bus)",
    "unit_can": "the CAN port the simulated STM32 plugs into, slcan over a NetworkSerialPort",
    "uart_tap": "the UART tap on the STM32 -> phone line, a NetworkSerialPort",
    "unit_uart": "the STM32's UART TX line to the phone, a NetworkSerialPort",
    "gnss": "the line of the unit's GNSS input the harness's NMEA feed writes, a NetworkSerialPort",
    "unit_gnss": "the same line where the simulated STM32's GNSS receiver reads it, a NetworkSerialPort",
    "phone": "the phone's adb address, a NetworkService (address, port)",
}
#: The settings of `--rig labgrid:PLACE` (a rig file with a `lab:` section sets its own): the loopback rig's, at 5x:
#: every CAN frame crosses two ser2net links each way (an OBD-II round trip 9 ms of wall time or more on 127.0.0.1),
#: and the STM32 asks its nine PIDs one after another, each cycle within its second: at 20x a cycle ran late 149
#: times in 151, at 10x on a loaded machine 448 times in 655. At 5x on this loaded machine (2 CPUs, load average 5
#: to 8), in one run 8 of 5,895 OBD-II answers (0.14 %) came later than their 500 ms, in another 24 of 655 poll
#: cycles (3.7 %) ran late: rig-side loss up to 5 % is tolerated (the contract suite judges the tap's bytes).
DEFAULT_SETTINGS = {"name": "lab", "profile": "obd2", "stm32": {"kind": "simulated", "codec": "dtg-link-v2"},
                    "android": {"kind": "adb", "apk": SIMULATED, "package": "com.dtg.edgeai"},
                    "gnss": {"kind": "nmea", "baudrate": 9600}, "time_scale": 5, "rig_loss_max_pct": 5}
LAB_KEYS = ("coordinator", "place", "tags", "roles")
POLL_S = 0.2


class LabError(DtgHilError, RuntimeError):
    """The lab could not give this session a bench: no such place, busy, unreachable, or a resource is missing."""


class PlaceBusy(LabError):
    """Every place the session may take is held by someone else, past the wait."""


class ResourceLost(LabError):
    """A resource of the acquired place disappeared or became unavailable during a run (rig-side, no verdict)."""


@dataclass(frozen=True)
class LabSpec:
    """Which place to take and how to build the rig from it."""
    coordinator: str
    place: str | None = None                      # a place's name, or None: any place matching `tags`
    tags: tuple[tuple[str, str], ...] = ()
    roles: tuple[tuple[str, str], ...] = tuple((role, role) for role in ROLES)  # role -> resource name
    settings: Any = None                          # the rig's other settings (a rig file's, or DEFAULT_SETTINGS)
    lines: Any = None
    file: str = ""

    def describe(self) -> str:
        return f"place '{self.place}'" if self.place else \
            "a place tagged " + ", ".join(f"{k}={v}" for k, v in self.tags)


@dataclass(frozen=True)
class LabRig(RigConfig):
    """A rig built from a labgrid place: `name` is ``labgrid:<place>``; `unit_*` are where the simulated STM32
    plugs in (python-can settings, serial URLs)."""
    place: str = ""
    coordinator: str = ""
    unit_can: dict | None = None
    unit_uart: str | None = None
    unit_gnss: str | None = None


def parse_lab_arg(arg: str | None) -> LabSpec | None:
    """The lab spec `--rig` names, or None when it names an ordinary rig file (or nothing).

    >>> parse_lab_arg("labgrid:bench-3").place
    'bench-3'
    >>> parse_lab_arg("labgrid:bench=dtg,site=ulm").tags
    (('bench', 'dtg'), ('site', 'ulm'))
    >>> parse_lab_arg("rigs/loopback.yaml") is None
    True
    """
    coordinator = os.environ.get("LG_COORDINATOR", DEFAULT_COORDINATOR)
    if arg and arg.startswith(LAB_PREFIX):
        what = arg[len(LAB_PREFIX):]
        if not what:
            raise LabError(f"--rig {arg}: name a place (labgrid:PLACE) or tags (labgrid:KEY=VALUE,...)")
        if "=" in what:
            pairs = [part.partition("=") for part in what.split(",")]
            if any(not key or not eq or not value for key, eq, value in pairs):
                raise LabError(f"--rig {arg}: tags must be KEY=VALUE pairs separated by commas")
            tags = tuple((key, value) for key, _, value in pairs)
            return LabSpec(coordinator, tags=tags, settings=DEFAULT_SETTINGS)
        return LabSpec(coordinator, place=what, settings=DEFAULT_SETTINGS)
    if not arg or not arg.endswith((".yaml", ".yml")) or not Path(arg).is_file():
        return None
    raw = Path(arg).read_bytes()
    data, lines = parse_yaml(decode_text(raw, arg, RigError), arg, RigError)
    if not isinstance(data, dict) or "lab" not in data:
        return None
    c = Checker(lines)
    lab = c.mapping(data["lab"], "lab", LAB_KEYS)
    place = c.text(lab, "place", "lab", "") or None
    tags = lab.get("tags", {})
    if not isinstance(tags, dict):
        c.report("lab.tags", "expected a mapping of tag names to values (labgrid-client set-tags)")
        tags = {}
    roles = c.mapping(lab.get("roles", {}), "lab.roles", tuple(ROLES))
    if (place is None) == (not tags):
        c.report("lab", "name either a place (lab.place) or tags to match (lab.tags), not both or neither")
    if c.problems:
        raise RigError(arg, c.problems)
    return LabSpec(c.text(lab, "coordinator", "lab", "") or coordinator, place,
                   tuple((str(k), str(v)) for k, v in tags.items()),
                   tuple((role, str(roles.get(role, role))) for role in ROLES),
                   {k: v for k, v in data.items() if k != "lab"}, lines, arg)


class LabClient:
    """labgrid's `ClientSession` on an event loop in a thread of its own: the session's message pump keeps its
    view of places and resources current while the harness runs."""

    def __init__(self, coordinator: str, timeout_s: float = 10.0) -> None:
        from labgrid.remote.client import ClientSession
        from labgrid.util.proxy import proxymanager

        self.coordinator = coordinator
        self._timeout_s = timeout_s
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="labgrid-client", daemon=True)
        self._thread.start()

        async def start() -> ClientSession:
            session = ClientSession(proxymanager.get_grpc_address(coordinator, default_port=20408), self._loop)
            await session.start()
            return session
        try:
            self.session = self._call(start())
        except Exception as error:  # noqa: BLE001 - labgrid's and grpc's errors, named in one line
            self._stop_loop()
            raise LabError(f"cannot reach the labgrid coordinator at {coordinator}: {error}") from None
        self.identity = f"{self.session.gethostname()}/{self.session.getuser()}"

    async def _rpc(self, method: str, request) -> None:
        """A coordinator call, then a sync: when it returns, the session's view includes its effect."""
        await getattr(self.session.stub, method)(request)
        await self.session.sync_with_coordinator()

    def _call(self, coro, timeout_s: float | None = None):
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout_s or self._timeout_s)

    def places(self, spec: LabSpec) -> list:
        """The places `spec` may take, by name."""
        places = self.session.places
        if spec.place is not None:
            if spec.place not in places:
                raise LabError(f"no place '{spec.place}' at the labgrid coordinator {self.coordinator} (places: "
                               f"{', '.join(sorted(places)) or 'none'})")
            return [places[spec.place]]
        found = [p for _, p in sorted(places.items()) if all(p.tags.get(k) == v for k, v in spec.tags)]
        if not found:
            raise LabError(f"no place tagged {', '.join(f'{k}={v}' for k, v in spec.tags)} at the labgrid "
                           f"coordinator {self.coordinator}")
        return found

    def acquire(self, spec: LabSpec, wait_s: float, held: dict | None = None) -> str:
        """Acquire the place `spec` names (or the first idle one its tags match), waiting up to `wait_s` while
        all are held; returns its name once its resources are ready (ser2net started on the exporter). `held`
        (place -> client) has the place during each request, so that a session interrupted in it still releases
        it, and loses it again when the coordinator refused it (another session, maybe as the same user, has it)."""
        held = {} if held is None else held
        import grpc
        from labgrid.remote.generated import labgrid_coordinator_pb2

        deadline = time.monotonic() + wait_s
        while True:
            candidates = self.places(spec)
            for place in candidates:
                if place.acquired:
                    continue
                try:
                    self.session.check_matches(place)
                except Exception as error:  # noqa: BLE001 - labgrid's UserError: a match without its resource
                    raise LabError(f"place '{place.name}': {error} (is its exporter running?)") from None
                held[place.name] = self
                try:
                    self._call(self._rpc("AcquirePlace", labgrid_coordinator_pb2.AcquirePlaceRequest(
                        placename=place.name)))
                except grpc.aio.AioRpcError:
                    del held[place.name]
                    continue  # taken between our look and our request: try the next, or wait
                self._wait_ready(place.name, deadline=time.monotonic() + self._timeout_s)
                return place.name
            if time.monotonic() >= deadline:
                holders = "; ".join(f"'{p.name}' is held by {p.acquired} since "
                                    f"{time.strftime('%H:%M:%S', time.localtime(p.changed))}" for p in candidates)
                raise PlaceBusy(f"lab: {spec.describe()} not free after {wait_s:g} s (--dtg-lab-wait): {holders}")
            time.sleep(POLL_S)

    def resources(self, place_name: str) -> dict[str, Any]:
        """Resource name (a match's rename, else its own) -> labgrid's `ResourceEntry`, of the acquired place;
        raises `ResourceLost` naming the first one that is gone or unavailable."""
        place = self.session.places.get(place_name)
        if place is None or place.acquired != self.identity:
            now = "deleted" if place is None else f"held by {place.acquired or 'nobody'}"
            raise ResourceLost(f"place '{place_name}' is no longer acquired by this session ({now})")
        found = {}
        for path in place.acquired_resources:
            exporter, group, cls, name = path
            match = place.getmatch(path)
            role_name = match.rename if match is not None and match.rename else name
            entry = self.session.resources.get(exporter, {}).get(group, {}).get(name)
            where = f"resource '{role_name}' ({cls} {exporter}/{group}/{name}) of place '{place_name}'"
            if entry is None or "cls" not in entry.data:  # labgrid's client keeps a deleted resource's entry, empty
                raise ResourceLost(f"{where} disappeared: its exporter '{exporter}' is gone")
            if not entry.data.get("avail"):
                raise ResourceLost(f"{where} is no longer available on exporter '{exporter}'")
            found[role_name] = entry
        return found

    def _wait_ready(self, place_name: str, deadline: float) -> None:
        while True:
            entries = self.resources(place_name)
            waiting = [n for n, e in entries.items() if e.cls == "NetworkSerialPort" and not e.params.get("port")]
            if not waiting:
                return
            if time.monotonic() >= deadline:
                raise LabError(f"place '{place_name}': the exporter did not start {', '.join(waiting)} in time")
            time.sleep(POLL_S / 2)

    def release(self, place_name: str) -> bool:
        """Release `place_name` if this session holds it (never someone else's); True when it was released."""
        from labgrid.remote.generated import labgrid_coordinator_pb2

        place = self.session.places.get(place_name)
        if place is None or place.acquired != self.identity:
            return False
        self._call(self._rpc("ReleasePlace", labgrid_coordinator_pb2.ReleasePlaceRequest(placename=place_name)))
        return True

    def close(self) -> None:
        try:
            self._call(self.session.stop())
            self._call(self.session.close())
        finally:
            self._stop_loop()

    def _stop_loop(self) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=5.0)


def build_rig(spec: LabSpec, place_name: str, entries: dict[str, Any]) -> LabRig:
    """The rig a place stands for: its settings (`spec.settings`) with each role's resource filled in."""
    roles = dict(spec.roles)
    missing = [f"{role} (resource '{name}')" for role, name in roles.items() if name not in entries]
    if missing:
        raise LabError(f"place '{place_name}' has no {', '.join(missing)}; it has: "
                       f"{', '.join(sorted(entries)) or 'nothing'} (map roles with lab.roles in a rig file)")
    url = {}
    for role, name in roles.items():
        entry = entries[name]
        params = entry.params
        if params.get("extra", {}).get("proxy_required"):
            raise LabError(f"place '{place_name}': resource '{name}' needs an SSH proxy, which dtg-hil does not do")
        want = "NetworkService" if role == "phone" else "NetworkSerialPort"
        if entry.cls != want:
            raise LabError(f"place '{place_name}': role {role} needs a {want}, resource '{name}' is a {entry.cls}")
        if role == "phone":
            url[role] = f"{params['address']}:{params['port']}"
        else:
            # ser2net answers no SET_CONTROL (modem lines) on a line without them, as on a pty: pyserial need not wait
            url[role] = f"socket://{params['host']}:{params['port']}" if params.get("protocol") == "raw" else \
                f"rfc2217://{params['host']}:{params['port']}?ign_set_control"
    settings = dict(spec.settings)
    bitrate = (settings.get("can") or {}).get("bitrate")
    settings["can"] = {"interface": "slcan", "channel": url["can"], "sleep_after_open": 0,
                       **({"bitrate": bitrate} if bitrate is not None else {})}
    settings["stm32"] = {**settings.get("stm32", {}), "uart_tap": url["uart_tap"]}
    settings["android"] = {**settings.get("android", {}), "kind": "adb", "serial": url["phone"]}
    settings["gnss"] = {**settings.get("gnss", {}), "kind": "nmea", "port": url["gnss"]}
    base = parse_rig(settings, spec.lines or {}, spec.file, Path(spec.file).parent if spec.file else None,
                     name=f"{LAB_PREFIX}{place_name}")
    if base.stm32_kind != "simulated":
        raise LabError(f"place '{place_name}': a lab place drives a simulated STM32 only (a real board: a rig file "
                       f"with stm32: {{kind: real}}, docs/firmware.md)")
    return LabRig(**{**dataclasses.asdict(base), "name": f"{LAB_PREFIX}{place_name}", "can": base.can},
                  place=place_name, coordinator=spec.coordinator,
                  unit_can={"interface": "slcan", "channel": url["unit_can"], "sleep_after_open": 0,
                            "bitrate": base.can.get("bitrate")},
                  unit_uart=url["unit_uart"], unit_gnss=url["unit_gnss"])


# -- the session's places: one client per coordinator, released at session end -----------------------------------

_clients: dict[str, LabClient] = {}
_held: dict[str, LabClient] = {}  # place -> the client that holds it
_lock = threading.Lock()


def acquire_rig(spec: LabSpec, wait_s: float) -> LabRig:
    """Acquire a place for this session and build its rig (module docstring)."""
    with _lock:
        client = _clients.get(spec.coordinator)
        if client is None:
            client = _clients[spec.coordinator] = LabClient(spec.coordinator)
        place = client.acquire(spec, wait_s, _held)
    try:
        return build_rig(spec, place, client.resources(place))
    except BaseException:
        release_all()
        raise


def release_all() -> list[str]:
    """Release every place this process holds and close its clients; returns the places released. Never raises:
    a place that cannot be released (coordinator gone) is named in the returned list's text."""
    released = []
    with _lock:
        for place, client in list(_held.items()):
            try:
                if client.release(place):
                    released.append(place)
            except Exception as error:  # noqa: BLE001 - at session end every place gets its try
                released.append(f"{place} (NOT released: {error})")
            del _held[place]
        for address, client in list(_clients.items()):
            try:
                client.close()
            except Exception:  # noqa: BLE001 - closing a channel to a coordinator that is gone
                pass
            del _clients[address]
    return released


atexit.register(release_all)


class PlaceWatch(Worker):
    """A part of a run on a lab rig: checks the place's resources every `POLL_S` and fails (its `error`, which
    the run's watchdog reports) with `ResourceLost` naming the resource and the place."""

    error_type = WorkerError

    def __init__(self, rig: LabRig) -> None:
        super().__init__(f"lab-watch-{rig.place}")
        client = _held.get(rig.place)
        if client is None:
            raise LabError(f"place '{rig.place}' is not acquired by this session")
        self._client, self._place = client, rig.place

    def _work(self) -> None:
        while not self._stop_requested.wait(POLL_S):
            self._client.resources(self._place)  # raises ResourceLost


def place_loss(rig: RigConfig, wait_s: float = 2.0) -> str | None:
    """Why a run on a lab rig lost its bench (a `ResourceLost` message), or None: for a run that failed some other
    way first (a line that broke with its exporter), looking for up to `wait_s` while the coordinator notices."""
    client = _held.get(rig.place) if isinstance(rig, LabRig) else None
    deadline = time.monotonic() + wait_s
    while client is not None:
        try:
            client.resources(rig.place)
        except ResourceLost as lost:
            return str(lost)
        if time.monotonic() >= deadline:
            break
        time.sleep(POLL_S)
    return None

