"""A real STM32 on a bench (``stm32: {kind: real, ...}``): flashing it, resetting it, cutting its power and its UART.

The rig file says how, in the ``stm32`` section (docs/firmware.md, "Bringing a real board up")::

    stm32:
      kind: real
      firmware: {image: build/dtg.elf, flash: pyocd, target: stm32f407vg, probe: 066DFF3833584B3043115433}
      reset: openocd -f interface/stlink.cfg -f target/stm32f4x.cfg -c "init; reset run; exit"
      power: usbrelay BENCH_1={state}     # {state}: on or off
      uart_relay: usbrelay BENCH_2={state}

``flash`` is ``pyocd`` (pyOCD's Python API: `ConnectHelper.session_with_chosen_probe`, `FileProgrammer`; the
optional extra ``dtg-hil[bench]``) or a command template; ``reset``, ``power`` and ``uart_relay`` are command
templates. A template is one command line, split as a shell would (`shlex`) but run without a shell, with the
placeholders of `PLACEHOLDERS` filled in; it runs in the rig file's folder and must end within its timeout
(`TIMEOUT_S`). A command that fails or times out is a `BenchError`, an ERROR of the run (the harness could not set the
bench up), naming the command, its exit status and the last lines of its standard error. ``image`` is relative to the
rig file.

What it does not do: verify the flash by reading it back (pyOCD's programmer and st-flash verify on their own), power
a board up before the first flash, or hold a unit in reset between runs.
"""
from __future__ import annotations

import hashlib
import os
import shlex
import string
import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from harness.core.datafile import Checker
from harness.core.errors import DtgHilError

__all__ = ["COMMANDS", "FIRMWARE_KEYS", "PLACEHOLDERS", "TIMEOUT_S", "Bench", "BenchConfig", "BenchError",
           "FlashRecord", "parse_bench"]

#: The keys of ``stm32.firmware``.
FIRMWARE_KEYS = ("image", "flash", "target", "probe")
#: The command templates of a real STM32's section, beside ``firmware.flash``.
COMMANDS = ("reset", "power", "uart_relay")
#: The placeholders each template may use: the image's absolute path, the probe's UID, the target's name, and for
#: the switches the state they are put in (on, off).
PLACEHOLDERS: dict[str, tuple[str, ...]] = {
    "firmware.flash": ("image", "probe", "target"),
    "reset": ("image", "probe", "target"),
    "power": ("state", "probe", "target"),
    "uart_relay": ("state", "probe", "target"),
}
#: Wall seconds each command may take before it is stopped and counted failed.
TIMEOUT_S = {"firmware.flash": 180.0, "reset": 30.0, "power": 30.0, "uart_relay": 30.0}
#: Lines of a failed command's standard error quoted in the error.
STDERR_TAIL_LINES = 5


class BenchError(DtgHilError):
    """The bench could not be driven (a flash, reset, power or relay command failed; no probe; pyOCD missing): an
    ERROR of the run, never a verdict on the unit."""


@dataclass(frozen=True)
class BenchConfig:
    """How the harness drives a real STM32 (see the module docstring); None fields: the rig has no such means."""

    image: Path | None = None
    flash: str | None = None  # "pyocd" or a command template
    target: str | None = None
    probe: str | None = None
    reset: str | None = None
    power: str | None = None
    uart_relay: str | None = None
    folder: Path | None = None  # the rig file's folder: the commands run there

    def lacks(self, fault_kind: str) -> str | None:
        """Why the bench cannot carry out the device fault `fault_kind`, naming what the rig file lacks (None: it
        can)."""
        need = {"firmware_restart": ("reset", self.reset or self.flash == "pyocd"),
                "power_cycle": ("power", self.power),
                "uart_disconnect": ("uart_relay", self.uart_relay)}.get(fault_kind)
        if need is None:
            return f"a real STM32 has no action for {fault_kind}"
        return None if need[1] else f"{fault_kind} needs a stm32.{need[0]} command in the rig file, and it has none"


def _template(c: Checker, section: dict, key: str, path: str, field: str) -> str | None:
    """A command template: text, splittable as a shell would, with known placeholders only."""
    text = c.text(section, key, path, "") or None
    if text is None:
        return None
    valid = PLACEHOLDERS[field]
    shown = ", ".join("{" + name + "}" for name in valid)
    try:
        words = shlex.split(text)
        names = [name for word in words for _, name, _, _ in string.Formatter().parse(word) if name is not None]
    except ValueError as error:
        c.report(f"stm32.{field}", f"not a command line ({error}); placeholders: {shown}")
        return None
    if not words:
        c.report(f"stm32.{field}", "is empty; expected a command line")
        return None
    unknown = sorted({name for name in names if name not in valid})
    if unknown:
        c.report(f"stm32.{field}", f"unknown placeholder {', '.join('{' + n + '}' for n in unknown)}; valid: {shown}")
        return None
    return text


def parse_bench(c: Checker, stm32: dict, kind: str, base_dir: Path | None) -> BenchConfig | None:
    """The bench fields of the ``stm32`` section (`COMMANDS`, ``firmware``): only a real STM32 has them."""
    present = [key for key in ("firmware", *COMMANDS) if key in stm32]
    if kind != "real":
        for key in present:
            c.report(f"stm32.{key}", f"only a real STM32 (stm32.kind: real) is flashed or switched, not kind {kind}")
        return None
    firmware = c.mapping(stm32.get("firmware", {}), "stm32.firmware", FIRMWARE_KEYS)
    image_text = c.text(firmware, "image", "stm32.firmware", "") or None
    flash = c.text(firmware, "flash", "stm32.firmware", "") or None
    if flash is not None and flash != "pyocd":
        flash = _template(c, firmware, "flash", "stm32.firmware", "firmware.flash")
    target = c.text(firmware, "target", "stm32.firmware", "") or None
    probe = c.text(firmware, "probe", "stm32.firmware", "") or None
    commands = {key: _template(c, stm32, key, "stm32", key) for key in COMMANDS}
    image = None
    if image_text is not None:
        image = Path(image_text)
        if not image.is_absolute() and base_dir is not None:
            image = base_dir / image
    if firmware and flash is None and "flash" not in firmware:
        c.report("stm32.firmware.flash", "is required with a firmware: pyocd, or a command template "
                                         "(placeholders {image}, {probe}, {target})")
    if flash is not None and image is None:
        c.report("stm32.firmware.image", "is required to flash: the firmware image, relative to the rig file")
    if flash == "pyocd" and target is None:
        c.report("stm32.firmware.target", "is required with flash: pyocd (pyOCD's target name, e.g. stm32f407vg)")
    return BenchConfig(image=image, flash=flash, target=target, probe=probe, folder=base_dir, **commands)


@dataclass(frozen=True)
class FlashRecord:
    """What was flashed: the image, its sha256, how (pyocd or the command line), and the wall seconds it took."""

    image: str
    sha256: str
    method: str
    seconds: float

    def to_json(self) -> dict:
        return {"image": self.image, "sha256": self.sha256, "flashed_with": self.method,
                "flash_s": round(self.seconds, 3)}


#: Images flashed in this process, by (image, sha256, flash, probe): a session flashes each once; a failed flash is
#: remembered too, so every run of the session is an ERROR with its cause and the board is not flashed again.
_FLASHED: dict[tuple, FlashRecord | BenchError] = {}
_FLASH_LOCK = threading.Lock()


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as file:
        for block in iter(lambda: file.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


class Bench:
    """The bench's actions for one rig (`BenchConfig`): flash once a session, reset, power, UART relay."""

    def __init__(self, config: BenchConfig, rig_name: str) -> None:
        self.config = config
        self.rig_name = rig_name
        self.actions: list[str] = []  # what was done, in order (result.json)

    def _values(self, state: str | None = None) -> dict[str, str]:
        config = self.config
        return {"image": str(config.image.resolve()) if config.image else "", "probe": config.probe or "",
                "target": config.target or "", "state": state or ""}

    def run(self, field: str, template: str, state: str | None = None) -> None:
        """Run the command `template` of `field`, its placeholders filled in; BenchError when it fails."""
        argv = [word.format(**self._values(state)) for word in shlex.split(template)]
        shown = shlex.join(argv)
        started = time.monotonic()
        try:
            done = subprocess.run(argv, cwd=self.config.folder, stdin=subprocess.DEVNULL, capture_output=True,
                                  timeout=TIMEOUT_S[field], check=False)
        except subprocess.TimeoutExpired as expired:
            raise BenchError(f"rig '{self.rig_name}': stm32.{field} `{shown}` did not end within "
                             f"{TIMEOUT_S[field]:g} s{_tail(expired.stderr)}") from None
        except OSError as error:
            raise BenchError(f"rig '{self.rig_name}': stm32.{field} `{shown}` could not run: {error}") from None
        if done.returncode != 0:
            raise BenchError(f"rig '{self.rig_name}': stm32.{field} `{shown}` failed with exit status "
                             f"{done.returncode}{_tail(done.stderr)}")
        self.actions.append(f"{field}{' ' + state if state else ''} ({time.monotonic() - started:.2f} s)")

    def flash(self) -> FlashRecord | None:
        """Flash the image once in this process (None: the rig flashes nothing); the same record, or the same
        error, for every later run of the session."""
        config = self.config
        if config.flash is None:
            return None
        if not config.image.is_file():
            raise BenchError(f"rig '{self.rig_name}': stm32.firmware.image {config.image}: no such file")
        sha256 = _sha256(config.image)
        key = (str(config.image.resolve()), sha256, config.flash, config.probe, config.target)
        with _FLASH_LOCK:
            if key not in _FLASHED:
                started = time.monotonic()
                try:
                    if config.flash == "pyocd":
                        _pyocd_flash(config, self.rig_name)
                    else:
                        self.run("firmware.flash", config.flash)
                    _FLASHED[key] = FlashRecord(str(config.image), sha256, config.flash, time.monotonic() - started)
                except BenchError as error:
                    _FLASHED[key] = error
            done = _FLASHED[key]
        if isinstance(done, BenchError):
            raise BenchError(str(done))
        return done

    def reset(self) -> None:
        """Reset the unit: the reset command, else pyOCD's reset when it flashes with pyOCD, else nothing."""
        if self.config.reset is not None:
            self.run("reset", self.config.reset)
        elif self.config.flash == "pyocd":
            _pyocd_flash(self.config, self.rig_name, reset_only=True)
            self.actions.append("reset (pyocd)")

    def power(self, state: str) -> None:
        self.run("power", self.config.power, state)

    def uart_relay(self, state: str) -> None:
        self.run("uart_relay", self.config.uart_relay, state)


def _tail(stderr: bytes | str | None) -> str:
    text = stderr.decode(errors="replace") if isinstance(stderr, bytes) else (stderr or "")
    lines = [line for line in text.strip().splitlines() if line.strip()][-STDERR_TAIL_LINES:]
    return ": " + " | ".join(lines) if lines else " (nothing on its standard error)"


def _pyocd_flash(config: BenchConfig, rig_name: str, reset_only: bool = False) -> None:
    """Program `config.image` (or only reset the target) through pyOCD's Python API, on the probe `config.probe`
    (any single probe when None)."""
    try:
        from pyocd.core.helpers import ConnectHelper
        from pyocd.flash.file_programmer import FileProgrammer
    except ImportError as error:
        raise BenchError(f"rig '{rig_name}': stm32.firmware.flash: pyocd needs the pyocd package, which is not "
                         f"installed ({error}); pip install 'dtg-hil[bench]', or give a flash command") from None
    probe = f"probe {config.probe}" if config.probe else "any debug probe"
    try:
        session = ConnectHelper.session_with_chosen_probe(blocking=False, return_first=config.probe is None,
                                                          unique_id=config.probe,
                                                          options={"target_override": config.target})
    except Exception as error:  # noqa: BLE001 - pyOCD raises its own and USB errors: all are the bench's
        raise BenchError(f"rig '{rig_name}': pyOCD could not open {probe}: {type(error).__name__}: {error}") from None
    if session is None:
        raise BenchError(f"rig '{rig_name}': pyOCD found no {probe} (is it plugged in, and is the UID in "
                         f"stm32.firmware.probe right? `pyocd list` lists the probes)")
    try:
        with session:
            if not reset_only:
                FileProgrammer(session).program(os.fspath(config.image))
            session.target.reset()
    except Exception as error:  # noqa: BLE001 - as above
        raise BenchError(f"rig '{rig_name}': pyOCD failed on {probe} ({config.target}): "
                         f"{type(error).__name__}: {error}") from None
