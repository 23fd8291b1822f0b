"""`dtg-hil firmware build SRC_DIR`: build an STM32 HAL application's C sources for the host against dtg-hil's host
HAL, with AddressSanitizer and UBSan (`firmware_sim.host_build`); a rig file with ``stm32: {kind: host, sources:
SRC_DIR}`` runs the result in the loop (docs/firmware.md).

Exit 0 with the executable's path; 2 when the tree uses a HAL name the host HAL does not provide (each named, with
the file and line using it), when it does not compile, or when SRC_DIR is not a folder of sources."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from firmware_sim.host_build import BuildError, UnprovidedHalError, build_firmware
from harness.tools.exits import EXIT_BAD_INPUT, EXIT_OK


def add_firmware_commands(commands) -> None:
    """Register ``firmware build`` on the CLI's sub-command parsers."""
    firmware = commands.add_parser("firmware", help="the unit's own C firmware built for the host (docs/firmware.md)")
    actions = firmware.add_subparsers(dest="action", required=True, metavar="ACTION")
    build = actions.add_parser("build", help="compile SRC_DIR (Core/Src, Core/Inc) against the host HAL with "
                                             "-fsanitize=address,undefined; exit 2 naming any HAL name it lacks")
    build.add_argument("src_dir", type=Path, metavar="SRC_DIR")
    build.add_argument("-o", "--output", type=Path, default=None,
                       help="folder for the executable (default: the build cache, reused while the sources match)")
    build.add_argument("-D", dest="defines", action="append", default=[], metavar="NAME[=VALUE]",
                       help="a preprocessor definition (repeatable), e.g. -D DTG_LINK_RAW_CAN_V1")
    build.set_defaults(func=cmd_firmware_build)


def cmd_firmware_build(args: argparse.Namespace) -> int:
    try:
        result = build_firmware(args.src_dir, defines=tuple(args.defines), out_dir=args.output)
    except UnprovidedHalError as error:
        print(f"{args.src_dir}: {error}", file=sys.stderr)
        for name, where in sorted(error.names.items()):
            print(f"  {name}: used at {where}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except BuildError as error:
        print(f"{args.src_dir}: {error}", file=sys.stderr)
        return EXIT_BAD_INPUT
    state = "up to date (cached)" if result.cached else "built"
    print(f"{result.executable}: {state} from {len(result.sources)} source file(s) with the host HAL and "
          f"-fsanitize=address,undefined")
    return EXIT_OK
