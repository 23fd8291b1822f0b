"""`dtg-hil bench fuzz`: its options, the run, and ``--replay`` of one saved input.

Exit 0 when no input raised an undocumented exception or hung, 1 otherwise, 2 on bad options (see
docs/robustness.md). `harness.tools.cli` wires this in; the engine is `harness.tools.fuzz.engine`.
"""
from __future__ import annotations

import argparse
import math
import sys
import tempfile
from pathlib import Path

from harness.tools.exits import EXIT_BAD_INPUT, EXIT_FAILED, EXIT_OK
from harness.tools.fuzz.engine import describe, run_fuzz, run_one
from harness.tools.fuzz.target import FuzzTarget
from harness.tools.fuzz.targets import get_target, target_names

__all__ = ["add_fuzz_arguments", "cmd_bench_fuzz"]


def add_fuzz_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of `dtg-hil bench fuzz`."""
    parser.add_argument("--inputs", type=int, default=100_000, help="inputs per target (default: 100000)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the input generator (default: 0)")
    parser.add_argument("--target", action="extend", nargs="+", choices=target_names(), metavar="NAME",
                        help=f"targets to fuzz, one or more of: {', '.join(target_names())} (default: all)")
    parser.add_argument("--out", default="reports/fuzz", metavar="DIR",
                        help="folder for reproducers, the slowest inputs and report.txt (default: reports/fuzz)")
    parser.add_argument("--time-limit-s", type=float, default=1.0,
                        help="wall seconds one input may take before it counts as a hang (default: 1)")
    parser.add_argument("--minimize-s", type=float, default=10.0,
                        help="wall seconds spent shrinking each finding's input (default: 10)")
    parser.add_argument("--memory-limit-mb", type=int, default=2048,
                        help="address space the run may grow by before allocations fail; 0 for no cap "
                             "(default: 2048)")
    parser.add_argument("--replay", metavar="FILE",
                        help="run one saved input through the --target (exactly one) and print what it did")


def _replay(target: FuzzTarget, path: Path, time_limit_s: float) -> int:
    data = path.read_bytes()
    with tempfile.TemporaryDirectory(prefix=f"fuzz-{target.name}-") as scratch:
        if target.prepare is not None:
            target.prepare(Path(scratch))
        outcome = run_one(target, data, Path(scratch), time_limit_s)
    print(f"{target.name} on {path} ({len(data)} bytes): {outcome.kind} in {1000 * outcome.elapsed_s:.1f} ms")
    if outcome.error is not None:
        print(outcome.traceback or describe(outcome.error))
    return EXIT_FAILED if outcome.failed else EXIT_OK


def cmd_bench_fuzz(args: argparse.Namespace) -> int:
    """Fuzz the chosen targets; exit 1 if any input raised an undocumented exception or hung."""
    names = list(dict.fromkeys(args.target or target_names()))
    if args.inputs < 0 or not (math.isfinite(args.time_limit_s) and args.time_limit_s > 0) or args.minimize_s < 0:
        print("--inputs and --minimize-s must be >= 0, --time-limit-s a number > 0", file=sys.stderr)
        return EXIT_BAD_INPUT
    if args.replay:
        if len(names) != 1:
            print(f"--replay needs exactly one --target; expected one of: {', '.join(target_names())}",
                  file=sys.stderr)
            return EXIT_BAD_INPUT
        try:
            return _replay(get_target(names[0]), Path(args.replay), args.time_limit_s)
        except OSError as exc:
            print(f"cannot read {args.replay}: {exc.strerror}", file=sys.stderr)
            return EXIT_BAD_INPUT
    out = Path(args.out)
    print(f"fuzzing {', '.join(names)}: {args.inputs} inputs each, seed {args.seed}; findings go to {out}/",
          flush=True)
    report = run_fuzz([get_target(name) for name in names], args.inputs, args.seed, out, args.time_limit_s,
                      minimize_s=args.minimize_s, memory_limit_mb=args.memory_limit_mb or None,
                      backstop_s=max(30.0, 10 * args.time_limit_s),
                      echo=lambda line: print(line, flush=True))
    print(report.format(), flush=True)
    return EXIT_FAILED if report.failed else EXIT_OK
