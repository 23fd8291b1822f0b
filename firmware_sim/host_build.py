"""Building an STM32 HAL application's C sources for the host, against dtg-hil's host HAL (`HOST_HAL_DIR`).

`build_firmware(src_dir)` compiles every ``.c`` file under `src_dir` (``Core/Src`` and any other folder; startup,
system and newlib stub files, which only mean something on the chip, are left out: `SKIPPED`) with the system C
compiler (``cc``, or ``$CC``) and ``-fsanitize=address,undefined``, with every folder holding a ``.h`` file on the
include path after the host HAL's ``Inc`` (so ``#include "main.h"`` and ``#include "stm32f4xx_hal.h"`` resolve as in
a CubeMX project), and links it with the host HAL. Builds are kept by the hash of their inputs (sources, headers,
flags, compiler) under `cache_dir()`, so a session builds a firmware once.

A HAL name the application uses that the host HAL does not provide (a function left undefined at link time, or a
type, constant or macro the compiler does not know) fails the build with `UnprovidedHalError` naming each one and
where it is used. `harness.tools.firmware` is the CLI (``dtg-hil firmware build``).
"""
from __future__ import annotations

import hashlib
import os
import re
import shlex
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from harness.core.errors import DtgHilError

__all__ = ["HOST_HAL_DIR", "SAMPLE_FIRMWARE_DIR", "SANITIZER_FLAGS", "SKIPPED", "BuildError", "BuildResult",
           "UnprovidedHalError", "build_firmware", "cache_dir", "firmware_sources"]

HOST_HAL_DIR = Path(__file__).resolve().parent / "host_hal"
SAMPLE_FIRMWARE_DIR = Path(__file__).resolve().parent / "dtg_firmware"
SANITIZER_FLAGS = ("-fsanitize=address,undefined", "-fno-sanitize-recover=all", "-fno-omit-frame-pointer")
_CFLAGS = ("-std=gnu11", "-g", "-O1", "-Wall", "-Wno-unused-function", "-D_DEFAULT_SOURCE", "-DDTG_HOST_BUILD")
#: Files of a CubeMX project that only mean something on the chip (vector table, clock tree, newlib stubs).
SKIPPED = re.compile(r"^(startup_.*|system_stm32.*\.c|syscalls\.c|sysmem\.c)$")
#: Names that belong to ST's HAL (or its LL drivers and CMSIS register macros).
_HAL_NAME = re.compile(r"^(HAL_\w+|__HAL_\w+|LL_\w+|\w+_HandleTypeDef|\w+_InitTypeDef|\w+_TypeDef|__\w+)$")
_UNDEFINED = re.compile(r"undefined reference to [`'](\w+)'")
_UNKNOWN = (re.compile(r"error: unknown type name '(\w+)'"), re.compile(r"error: '(\w+)' undeclared"),
            re.compile(r"warning: implicit declaration of function '(\w+)'"),
            re.compile(r"error: implicit declaration of function '(\w+)'"))
_WHERE = re.compile(r"^(.*?):(\d+):\d+: ")


class BuildError(DtgHilError):
    """The firmware does not build for the host; the message holds the compiler's first errors."""


class UnprovidedHalError(BuildError):
    """The firmware uses HAL names the host HAL does not provide; `names` maps each to where it is used."""

    def __init__(self, names: dict[str, str]) -> None:
        self.names = names
        listed = "; ".join(f"{name} ({where})" for name, where in sorted(names.items()))
        super().__init__(f"the firmware uses {len(names)} HAL name(s) dtg-hil's host HAL does not provide: {listed} "
                         f"(the subset it provides: docs/firmware.md)")


@dataclass(frozen=True)
class BuildResult:
    executable: Path
    sources: tuple[Path, ...]
    cached: bool
    command: str


def cache_dir() -> Path:
    """Where host builds are kept (``$DTG_FIRMWARE_CACHE``, else a folder in the system's temporary directory)."""
    return Path(os.environ.get("DTG_FIRMWARE_CACHE") or Path(tempfile.gettempdir()) / "dtg-hil-firmware")


def firmware_sources(src_dir: Path) -> tuple[list[Path], list[Path]]:
    """The ``.c`` files to build and the include folders of an application tree."""
    src_dir = Path(src_dir)
    if not src_dir.is_dir():
        raise BuildError(f"{src_dir}: not a folder of firmware sources")
    sources = sorted(p for p in src_dir.rglob("*.c") if not SKIPPED.match(p.name) and "build" not in p.parts)
    includes = sorted({p.parent for p in src_dir.rglob("*.h")})
    if not sources:
        raise BuildError(f"{src_dir}: no .c files (expected an application tree such as Core/Src, Core/Inc)")
    return sources, includes


def _compiler() -> str:
    compiler = os.environ.get("CC") or "cc"
    if shutil.which(compiler) is None:
        raise BuildError(f"no C compiler: {compiler!r} is not on PATH (apt-get install gcc; `make test` installs it "
                         f"when root)")
    return compiler


def _relative(path: str, root: Path) -> str:
    try:
        return str(Path(path).resolve().relative_to(root.resolve()))
    except ValueError:
        return path


def _unprovided(output: str, root: Path) -> dict[str, str]:
    names: dict[str, str] = {}
    for line in output.splitlines():
        where = _WHERE.match(line)
        for pattern in _UNKNOWN:
            match = pattern.search(line)
            if match and _HAL_NAME.match(match.group(1)) and where:
                names.setdefault(match.group(1), f"{_relative(where.group(1), root)}:{where.group(2)}")
        match = _UNDEFINED.search(line)
        if match and _HAL_NAME.match(match.group(1)):
            origin = re.match(r"^(?:\S*ld: )?(.*?):(\d+):? undefined", line)
            names.setdefault(match.group(1), f"{_relative(origin.group(1), root)}:{origin.group(2)}" if origin
                             else "at link time")
    return names


def _run(command: list[str], root: Path) -> None:
    done = subprocess.run(command, capture_output=True, text=True, stdin=subprocess.DEVNULL)
    output = done.stdout + done.stderr
    names = _unprovided(output, root)
    if names:
        raise UnprovidedHalError(names)
    if done.returncode != 0:
        errors = [line for line in output.splitlines() if "error" in line] or output.splitlines()
        raise BuildError(f"the firmware does not build for the host ({shlex.join(command[:1])} exit "
                         f"{done.returncode}): " + " | ".join(errors[:5]))


def build_firmware(src_dir: Path, *, defines: tuple[str, ...] = (), out_dir: Path | None = None) -> BuildResult:
    """Build the application under `src_dir` for the host with the sanitizers (see the module docstring)."""
    src_dir = Path(src_dir).resolve()
    sources, includes = firmware_sources(src_dir)
    compiler = _compiler()
    hal_sources = sorted((HOST_HAL_DIR / "Src").glob("*.c"))
    flags = [*_CFLAGS, *SANITIZER_FLAGS, *(f"-D{d}" for d in defines), f"-I{HOST_HAL_DIR / 'Inc'}",
             *(f"-I{folder}" for folder in includes)]
    digest = hashlib.sha256(" ".join([compiler, *flags]).encode())
    for path in [*sources, *hal_sources, *sorted(src_dir.rglob("*.h")), *sorted(HOST_HAL_DIR.rglob("*.h"))]:
        digest.update(str(path).encode() + b"\0" + path.read_bytes())
    folder = Path(out_dir) if out_dir is not None else cache_dir() / digest.hexdigest()[:20]
    executable = folder / "firmware"
    command = [compiler, *flags, *map(str, sources), *map(str, hal_sources), "-lm", "-o", str(executable)]
    if executable.is_file() and out_dir is None:
        return BuildResult(executable, tuple(sources), True, shlex.join(command))
    folder.mkdir(parents=True, exist_ok=True)
    # Each file compiled alone first: a HAL name the host HAL lacks is named with the file and line that uses it.
    with tempfile.TemporaryDirectory(prefix="dtg-fw-") as scratch:
        objects = []
        for i, source in enumerate([*sources, *hal_sources]):
            obj = Path(scratch) / f"{i}-{source.stem}.o"
            _run([compiler, *flags, "-c", str(source), "-o", str(obj)], src_dir)
            objects.append(str(obj))
        # Linked under a name of this build's own, then renamed at once: builds of the same tree in other
        # processes (pytest-xdist workers, a scenario run's subprocess) share the cache folder, and one fixed
        # partial name let one rename the file another was still writing, or find it gone.
        partial = folder / f".firmware-{os.getpid()}-{os.urandom(4).hex()}.partial"
        try:
            _run([compiler, *SANITIZER_FLAGS, *objects, "-lm", "-o", str(partial)], src_dir)
            partial.replace(executable)
        finally:
            partial.unlink(missing_ok=True)
    return BuildResult(executable, tuple(sources), False, shlex.join(command))
