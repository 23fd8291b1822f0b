"""The `dtg-hil` command line.

Exit codes: 0 success; 1 the work ran and failed; 2 bad input (an invalid scenario, an unknown name, a bad
option), with a message naming the file, the field and the valid choices.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from harness.inference.models import BUNDLED_MANIFEST
from harness.rig.rigfile import DEFAULT_STANDIN_TIME_SCALE
from harness.tools import firmware as firmware_cli
from harness.tools.bench import link as bench_link
from harness.tools.bench import plant as bench_plant
from harness.tools.bench import sim as bench_sim
from harness.tools.bench import soak as bench_soak
from harness.tools.exits import EXIT_BAD_INPUT, EXIT_FAILED, EXIT_OK
from harness.tools.fuzz import cli as fuzzing
from harness.world.cycles import BUNDLED_CYCLES, CycleError, load_cycle
from harness.world.scenario import Scenario, ScenarioError, load_scenario
from harness.world.vehicle import VEHICLES, PlantConditions, get_vehicle, simulate, summarize


def _scenario_paths(paths: list[str]) -> list[Path]:
    out: list[Path] = []
    for raw in paths:
        path = Path(raw)
        out.extend(sorted(p for p in path.iterdir() if p.suffix in (".yaml", ".yml")) if path.is_dir() else [path])
    return out


def _load_all(paths: list[str]) -> tuple[list[Scenario], int]:
    scenarios, bad = [], 0
    for raw in paths:
        if Path(raw).is_dir() and not _scenario_paths([raw]):
            print(f"{raw}: no scenario files (.yaml, .yml) in this folder", file=sys.stderr)
            bad += 1
    for path in _scenario_paths(paths):
        try:
            scenarios.append(load_scenario(path))
        except ScenarioError as exc:
            print(exc, file=sys.stderr)
            bad += 1
    return scenarios, bad


def cmd_scenario_validate(args: argparse.Namespace) -> int:
    scenarios, bad = _load_all(args.paths)
    for s in scenarios:
        route = s.route.cycle or (f"recording {s.route.recording}" if s.route.recording else
                                  f"generated {s.profile().duration_s:.0f} s")
        kinds = ", ".join(a.type if a.signal is None else f"{a.type}({a.signal})" for a in s.anomalies) or "clean"
        swept = f"; sweep of {len(s.variants())} variants" if s.sweep is not None else ""
        print(f"ok  {s.path}  {s.name}: {route}, {s.vehicle}, {s.profile().duration_s / 60:.1f} min; {kinds}{swept}")
    print(f"{len(scenarios)} valid, {bad} invalid")
    return EXIT_BAD_INPUT if bad else EXIT_OK


def cmd_scenario_new(args: argparse.Namespace) -> int:
    from harness.tools.template import TemplateError, new_scenario

    out = Path(args.out) if args.out else Path(f"{args.name}.yaml")
    if out.exists():
        print(f"{out}: exists; pass --out FILE to write elsewhere", file=sys.stderr)
        return EXIT_BAD_INPUT
    try:
        text = new_scenario(args.name, args.anomaly or [], base_dir=out.parent)
    except TemplateError as exc:
        print(exc, file=sys.stderr)
        return EXIT_BAD_INPUT
    out.write_text(text, encoding="utf-8")
    print(f"wrote {out}; check it with: dtg-hil scenario validate {out}; run it with: pytest -m sim {out}")
    return EXIT_OK


def _print_schema(schema: dict) -> int:
    import json

    print(json.dumps(schema, indent=2))
    return EXIT_OK


def cmd_scenario_schema(args: argparse.Namespace) -> int:
    from harness.world.scenario_schema import scenario_schema

    return _print_schema(scenario_schema())


def cmd_rig_schema(args: argparse.Namespace) -> int:
    from harness.rig.rig_schema import rig_schema

    return _print_schema(rig_schema())


def cmd_rig_validate(args: argparse.Namespace) -> int:
    from harness.rig.rigfile import RigError, load_rig

    good = bad = 0
    for path in args.paths:
        try:
            rig = load_rig(path)
        except RigError as exc:
            print(exc, file=sys.stderr)
            bad += 1
            continue
        good += 1
        kind = "simulated" if rig.simulated else "real hardware" + (f" (stand-ins: {', '.join(rig.standins)})"
                                                                   if rig.standins else "")
        print(f"ok  {path}  {rig.name}: {rig.profile}, CAN {rig.can.get('interface', 'from python-can config')}, "
              f"STM32 {rig.stm32_kind} ({rig.codec}), Android {rig.android_kind}, GNSS {rig.gnss_kind}; {kind}; "
              f"time scale {rig.time_scale:g}")
    print(f"{good} valid, {bad} invalid")
    return EXIT_BAD_INPUT if bad else EXIT_OK


def cmd_scenario_render(args: argparse.Namespace) -> int:
    from harness.report.plot import render_trace  # matplotlib is slow to import; only this command needs it

    if args.out and len(_scenario_paths(args.paths)) != 1:
        print("--out takes one scenario; use --out-dir for several", file=sys.stderr)
        return EXIT_BAD_INPUT
    scenarios, bad = _load_all(args.paths)
    if bad:
        return EXIT_BAD_INPUT
    for s in scenarios:
        out = Path(args.out) if args.out else Path(args.out_dir) / f"{s.path.stem}.png"
        trace = s.run_plant()
        render_trace(trace, out, f"{s.name} — {s.vehicle}, {s.route.cycle or 'generated route'}, seed {s.seed}")
        print(f"wrote {out}")
    return EXIT_OK


def cmd_vehicle_summary(args: argparse.Namespace) -> int:
    try:
        profile = load_cycle(args.cycle).repeated(args.repeat)
        vehicles = [get_vehicle(name) for name in (args.vehicle or list(VEHICLES))]
    except (CycleError, ValueError) as exc:
        print(exc, file=sys.stderr)
        return EXIT_BAD_INPUT
    print(f"cycle {profile.name}: {profile.provenance}")
    print(f"route: {'flat (as on a chassis dynamometer)' if args.hilliness == 0 else f'hilliness {args.hilliness}'}, "
          f"seed {args.seed}, ambient {args.ambient_c:g} degC, cold start")
    header = (f"{'vehicle':<14}{'distance km':>12}{'fuel L/100km':>14}{'idle L/h':>10}{'max rpm':>9}"
              f"{'coolant min..max degC':>23}{'settled':>9}{'fuel level vs integrated':>26}")
    print(header)
    for vehicle in vehicles:
        trace = simulate(profile, vehicle, seed=args.seed,
                         conditions=PlantConditions(ambient_c=args.ambient_c, hilliness=args.hilliness))
        s = summarize(trace, vehicle)
        print(f"{vehicle.name:<14}{s.distance_km:>12.2f}{s.fuel_l_per_100km:>14.2f}{s.idle_l_per_h:>10.2f}"
              f"{s.max_rpm:>9.0f}{f'{s.coolant_min_c:.1f}..{s.coolant_max_c:.1f}':>23}{s.coolant_settled_c:>9.1f}"
              f"{f'{s.fuel_level_drop_pct:.3f}% vs {s.fuel_level_drop_expected_pct:.3f}%':>26}")
    return EXIT_OK


def cmd_dataset_build(args: argparse.Namespace) -> int:
    from harness.world.dataset import build_dataset

    started = time.perf_counter()
    manifest = build_dataset(Path(args.out), args.seed, args.train_trips, args.val_trips, args.test_trips,
                             args.trip_duration_s)
    hours = sum(t["duration_s"] for t in manifest["trips"]) / 3600.0
    print(f"wrote {len(manifest['trips'])} trips ({hours:.1f} h of driving) to {args.out} in "
          f"{time.perf_counter() - started:.1f} s; dataset sha256 {manifest['dataset_sha256'][:16]}")
    return EXIT_OK


def cmd_bench_models(args: argparse.Namespace) -> int:
    from harness.inference.models import ManifestError, bench_models, format_bench

    try:
        rows = bench_models(args.manifest, runs=args.runs)
    except ManifestError as exc:
        print(exc, file=sys.stderr)
        return EXIT_BAD_INPUT
    print(format_bench(rows))
    return EXIT_OK


def cmd_record(args: argparse.Namespace) -> int:
    import os

    from harness.rig.record import RecordError, record_bus, record_scenario
    from harness.rig.rigfile import MAX_PACED_TIME_SCALE, MIN_TIME_SCALE, RigError, load_rig

    try:
        rig = load_rig(args.rig or os.environ.get("DTG_RIG"))
    except RigError as exc:
        print(exc, file=sys.stderr)
        return EXIT_BAD_INPUT
    if args.duration_s is not None and not 0 < args.duration_s < float("inf"):
        print(f"--duration-s must be a number > 0; got {args.duration_s:g}", file=sys.stderr)
        return EXIT_BAD_INPUT
    if args.time_scale is not None and not MIN_TIME_SCALE <= args.time_scale <= MAX_PACED_TIME_SCALE:
        print(f"--time-scale must be from {MIN_TIME_SCALE:g} to {MAX_PACED_TIME_SCALE:g} (a recording is paced by the "
              f"wall clock); got {args.time_scale:g}", file=sys.stderr)
        return EXIT_BAD_INPUT

    def progress(done_s: float, total_s: float, frames: int) -> None:
        print(f"  {done_s:.0f}/{total_s:.0f} s, {frames} frames", file=sys.stderr, flush=True)

    try:
        if rig.can.get("interface") == "virtual":
            if args.scenario is None:
                print(f"rig '{rig.name}' has a simulated CAN bus: pass --scenario FILE to drive it", file=sys.stderr)
                return EXIT_BAD_INPUT
            try:
                scenario = load_scenario(args.scenario)
            except ScenarioError as exc:
                print(exc, file=sys.stderr)
                return EXIT_BAD_INPUT
            stats = record_scenario(scenario, rig, Path(args.out), args.duration_s, progress, args.time_scale)
        else:
            if args.duration_s is None:
                print(f"rig '{rig.name}' has a real CAN interface: pass --duration-s to say how long to listen",
                      file=sys.stderr)
                return EXIT_BAD_INPUT
            stats = record_bus(rig, Path(args.out), args.duration_s, progress)
    except RecordError as exc:
        print(exc, file=sys.stderr)
        return EXIT_BAD_INPUT if "unknown log format" in str(exc) else EXIT_FAILED
    print(f"wrote {stats.frames} frames ({stats.profile}, {stats.duration_s:.0f} s) to {stats.path} in "
          f"{stats.wall_s:.1f} s")
    if stats.frames_skipped:
        print(f"warning: the rest-bus fell behind and skipped {stats.frames_skipped} broadcasts (the log has gaps); "
              "record again with a lower --time-scale", file=sys.stderr)
    return EXIT_OK


def build_parser() -> argparse.ArgumentParser:
    from harness.core.version import dtg_hil_version
    from harness.world.anomalies import ANOMALY_TYPES

    parser = argparse.ArgumentParser(prog="dtg-hil", description="Hardware-in-the-loop harness for a DTG edge-AI unit.")
    parser.add_argument("--version", action="version", version=f"dtg-hil {dtg_hil_version()}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    rig = commands.add_parser("rig", help="check rig files; the rig file format's JSON Schema")
    rig_cmds = rig.add_subparsers(dest="action", required=True, metavar="ACTION")
    rig_validate = rig_cmds.add_parser("validate", help="check rig files; exit 2 if any is invalid")
    rig_validate.add_argument("paths", nargs="+", metavar="FILE", help="rig files (YAML)")
    rig_validate.set_defaults(func=cmd_rig_validate)
    rig_cmds.add_parser("schema", help="print the rig file format as a JSON Schema (draft 2020-12)") \
        .set_defaults(func=cmd_rig_schema)

    scenario = commands.add_parser("scenario", help="write, validate and render scenario files")
    scenario_cmds = scenario.add_subparsers(dest="action", required=True, metavar="ACTION")
    validate = scenario_cmds.add_parser("validate", help="check scenario files; exit 2 if any is invalid")
    validate.add_argument("paths", nargs="+", metavar="PATH", help="scenario files (.yaml, .yml) or folders of them")
    validate.set_defaults(func=cmd_scenario_validate)
    new = scenario_cmds.add_parser("new", help="write a commented, valid scenario to NAME.yaml")
    new.add_argument("name", metavar="NAME", help="the scenario's name (letters, digits, - and _)")
    new.add_argument("--anomaly", action="append", metavar="TYPE[:SIGNAL]",
                     help=f"an anomaly to inject; repeat for several (types: {', '.join(ANOMALY_TYPES)}; a sensor "
                          "fault takes a signal, default coolant_temp); default: none, a clean drive")
    new.add_argument("--out", metavar="FILE", help="file to write (default: NAME.yaml; never overwritten)")
    new.set_defaults(func=cmd_scenario_new)
    scenario_cmds.add_parser("schema", help="print the scenario format as a JSON Schema (draft 2020-12)") \
        .set_defaults(func=cmd_scenario_schema)
    render = scenario_cmds.add_parser("render", help="plot the ten signals with anomaly windows shaded")
    render.add_argument("paths", nargs="+", metavar="PATH", help="scenario YAML files or folders of them")
    where = render.add_mutually_exclusive_group(required=True)
    where.add_argument("--out", metavar="FILE.png", help="output PNG (one scenario)")
    where.add_argument("--out-dir", metavar="DIR", help="folder for one PNG per scenario, named after the file")
    render.set_defaults(func=cmd_scenario_render)

    record = commands.add_parser("record", help="write what a rig's CAN bus carries to a BLF or ASC log (on the "
                                               "simulated rig: a scenario driven through the rest-bus)")
    record.add_argument("--scenario", metavar="FILE", help="scenario to drive (rigs with a simulated CAN bus)")
    record.add_argument("--rig", default=None, metavar="FILE",
                        help="rig file; default: $DTG_RIG, else the built-in simulated rig")
    record.add_argument("--out", required=True, metavar="FILE.blf|FILE.asc", help="log to write (format by suffix)")
    record.add_argument("--duration-s", type=float, default=None, metavar="S",
                        help="seconds to record; default: the whole scenario (required on a real bus)")
    record.add_argument("--time-scale", type=float, default=None, metavar="X",
                        help="scenario seconds per wall second on a simulated bus; default: the rig's time_scale, "
                             f"or {DEFAULT_STANDIN_TIME_SCALE:g} on a rig that is unpaced (the built-in one)")
    record.set_defaults(func=cmd_record)

    vehicle = commands.add_parser("vehicle", help="vehicle plant figures")
    vehicle_cmds = vehicle.add_subparsers(dest="action", required=True, metavar="ACTION")
    summary = vehicle_cmds.add_parser("summary", help="distance, fuel L/100km, idle L/h, max rpm, coolant range")
    summary.add_argument("--cycle", required=True, help=f"a bundled cycle ({', '.join(BUNDLED_CYCLES)}) or a CSV path")
    summary.add_argument("--vehicle", action="append", choices=list(VEHICLES),
                         help="vehicle preset; repeat for several (default: all)")
    summary.add_argument("--repeat", type=int, default=1, help="drive the cycle this many times (default: 1)")
    summary.add_argument("--hilliness", type=float, default=0.0,
                         help="route grade scale; 0 is a flat road as in type approval (default: 0)")
    summary.add_argument("--ambient-c", type=float, default=20.0, help="ambient temperature (default: 20)")
    summary.add_argument("--seed", type=int, default=0, help="route seed (default: 0)")
    summary.set_defaults(func=cmd_vehicle_summary)

    dataset = commands.add_parser("dataset", help="training and evaluation data")
    dataset_cmds = dataset.add_subparsers(dest="action", required=True, metavar="ACTION")
    build = dataset_cmds.add_parser("build", help="generate trips split by trip into train/val/test")
    build.add_argument("--out", required=True, metavar="DIR", help="output folder")
    build.add_argument("--seed", type=int, default=0, help="dataset seed (default: 0)")
    build.add_argument("--train-trips", type=int, default=24, help="normal-only training trips (default: 24)")
    build.add_argument("--val-trips", type=int, default=8, help="labelled validation trips (default: 8)")
    build.add_argument("--test-trips", type=int, default=8,
                       help="labelled generated test trips, besides the held-out real cycles (default: 8)")
    build.add_argument("--trip-duration-s", type=float, default=1800.0, help="generated trip length (default: 1800)")
    build.set_defaults(func=cmd_dataset_build)

    bench = commands.add_parser("bench", help="benchmarks that print figures")
    bench_cmds = bench.add_subparsers(dest="action", required=True, metavar="ACTION")
    plant = bench_cmds.add_parser("plant", help="time the vehicle plant generating trips with anomalies")
    plant.add_argument("--hours", type=float, default=10.0, help="hours of driving to generate (default: 10)")
    plant.add_argument("--seed", type=int, default=0, help="seed (default: 0)")
    plant.set_defaults(func=bench_plant.cmd_bench_plant)
    link = bench_cmds.add_parser("link", help="rest-bus -> CAN -> STM32 simulator -> pty -> decoder, frames lost")
    bench_link.add_link_arguments(link)
    link.set_defaults(func=bench_link.cmd_bench_link)
    model_bench = bench_cmds.add_parser("models", help="p50/p99 latency and size of each model, beside the reference's")
    model_bench.add_argument("--manifest", default=str(BUNDLED_MANIFEST),
                             help="models manifest (default: the bundled models, models/manifest.json of the "
                                  "checkout dtg-hil is installed from)")
    model_bench.add_argument("--runs", type=int, default=2000,
                             help="timed runs per model after warm-up (default: 2000)")
    model_bench.set_defaults(func=cmd_bench_models)
    sim = bench_cmds.add_parser("sim", help="a long drive (default 4 h) through the simulated rig on virtual time: "
                                            "scenario-seconds per CPU-second and where the CPU time goes")
    bench_sim.add_sim_arguments(sim)
    sim.set_defaults(func=bench_sim.cmd_bench_sim)
    soak = bench_cmds.add_parser("soak", help="a long drive through the simulated chain: frames lost and memory "
                                              "growth; exit 1 if a frame is lost or memory grows 10 %% or more")
    bench_soak.add_soak_arguments(soak)
    soak.set_defaults(func=bench_soak.cmd_bench_soak)
    fuzz = bench_cmds.add_parser("fuzz", help="feed every parser random, mutated and structure-aware inputs; exit 1 "
                                              "on an undocumented exception or a hang")
    fuzzing.add_fuzz_arguments(fuzz)
    fuzz.set_defaults(func=fuzzing.cmd_bench_fuzz)
    firmware_cli.add_firmware_commands(commands)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
