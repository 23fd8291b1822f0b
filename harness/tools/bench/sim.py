"""`dtg-hil bench sim`: how fast the simulated rig runs on virtual time, and where its CPU time goes.

It drives a long generated drive (default 4 h: urban, rural and highway, with a few anomalies so the models and
the rules have something to find) through the whole simulated chain with `harness.run.chain.run_scenario`, on the
built-in simulated rig (virtual time, unpaced unless `--time-scale` asks for pacing), and prints the speed in
scenario seconds per CPU second and per wall second, and a table of the run's CPU time by part: the plant, the
rest-bus and the bus, the STM32 simulator, link encoding and decoding, the UART (pty read through pyserial), the
app's features and each model (the app's own per-call thread CPU times), the rest of the app, metrics and
artifacts. The parts are measured with `time.thread_time` inside the one thread that runs the chain, so the table
adds up to the run's CPU time but for what the `other` row holds (setup, teardown, the scheduler itself).

What it does not measure: the paced rigs (the loopback rig and a bench run on the wall clock: `dtg-hil bench
soak`), and any model budget (`dtg-hil bench models` does, on onnxruntime with one thread, batch 1).
"""
from __future__ import annotations

import argparse
import dataclasses
import math
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from harness.inference.models import ModelSet
from harness.judge.result import RunResult
from harness.rig.rigfile import BUILTIN_SIM_RIG
from harness.run.chain import run_scenario
from harness.wire.events import AnomalyResult, BehaviourResult, FuelResult
from harness.world.scenario import Scenario, parse_scenario

DEFAULT_HOURS = 4.0


def long_drive(hours: float = DEFAULT_HOURS, seed: int = 0) -> Scenario:
    """A generated drive of `hours`, mixed urban/rural/highway, an anomaly of a few kinds every 40 minutes."""
    duration_s = round(hours * 3600.0)
    if duration_s < 600:
        raise ValueError(f"the drive must last at least 10 minutes, got {hours!r} h")
    kinds = ("overheating", "harsh_braking", "over_revving", "excessive_idling")
    anomalies = [{"type": kinds[i % len(kinds)], "at_s": at_s, "sustain_s": 90, "severity": 0.8}
                 for i, at_s in enumerate(range(1200, duration_s - 600, 2400))]
    data = {"name": f"bench-sim-{hours:g}h", "vehicle": "passenger_car", "seed": seed,
            "route": {"generated": {"duration_s": duration_s, "mix": {"urban": 0.4, "rural": 0.3, "highway": 0.3}}},
            "anomalies": anomalies,
            "expect": {"false_alarms_per_h_max": 1000}}
    return parse_scenario(data, {}, "", name=data["name"])


@dataclass(frozen=True)
class SimBench:
    scenario_s: float
    cpu_s: float
    wall_s: float
    instants: int
    rounds: int
    cpu_by_part: tuple[tuple[str, float], ...]  # (part, CPU seconds), in chain order
    verdict: str
    time_scale: float

    @property
    def speed_cpu(self) -> float:
        return self.scenario_s / self.cpu_s if self.cpu_s > 0 else math.inf

    @property
    def speed_wall(self) -> float:
        return self.scenario_s / self.wall_s if self.wall_s > 0 else math.inf

    def __str__(self) -> str:
        pacing = "unpaced" if math.isinf(self.time_scale) else f"paced at {self.time_scale:g}x"
        lines = [f"simulated rig on virtual time ({pacing}): {self.scenario_s / 3600:.2f} h of scenario",
                 f"  CPU time   {self.cpu_s:8.1f} s = {self.speed_cpu:6.0f} scenario-seconds per CPU-second",
                 f"  wall time  {self.wall_s:8.1f} s = {self.speed_wall:6.0f} scenario-seconds per wall-second",
                 f"  {self.instants} instants of virtual time, {self.rounds} rounds of the stages; verdict: "
                 f"{self.verdict}",
                 "",
                 f"{'part':<62}{'CPU s':>9}{'share':>8}{'ms per scenario-min':>21}"]
        lines.append("-" * len(lines[-1]))
        for part, cpu_s in self.cpu_by_part:
            share = 100.0 * cpu_s / self.cpu_s if self.cpu_s > 0 else 0.0
            lines.append(f"{part:<62}{cpu_s:>9.2f}{share:>7.1f}%{1000.0 * cpu_s / (self.scenario_s / 60):>21.2f}")
        lines.append(f"{'total':<62}{self.cpu_s:>9.2f}{100.0:>7.1f}%"
                     f"{1000.0 * self.cpu_s / (self.scenario_s / 60):>21.2f}")
        return "\n".join(lines)


def cpu_table(result: RunResult, profile: dict) -> tuple[tuple[str, float], ...]:
    """The run's CPU seconds by part, from the scheduler's per-stage figures and the parts' own meters."""
    model_s = {kind: sum(e.infer_ms for e in result.collector.events if isinstance(e, cls)) / 1000.0
               for kind, cls in (("fuel", FuelResult), ("anomaly", AnomalyResult), ("behaviour", BehaviourResult))}
    uart = profile.get("UART", 0.0)
    app_rest = uart - profile.get("UART read", 0.0) - profile.get("link decode", 0.0) \
        - profile.get("app features", 0.0) - sum(model_s.values())
    rows = [("plant (speed profile, physics, anomalies)", profile.get("plant", 0.0)),
            ("device fault injector", profile.get("device fault injector", 0.0)),
            ("rest-bus (OBD-II responder / J1939) + bus", profile.get("rest-bus", 0.0)),
            ("bus fault injector", profile.get("bus fault injector", 0.0)),
            ("CAN log (monitor bus, BLF writer)", profile.get("CAN log", 0.0)),
            ("STM32 simulator (less link encode)",
             profile.get("STM32 simulator", 0.0) - profile.get("link encode", 0.0)),
            ("link encode (firmware)", profile.get("link encode", 0.0)),
            ("UART: pty read through pyserial", profile.get("UART read", 0.0)),
            ("link decode (app)", profile.get("link decode", 0.0)),
            ("app features (behaviour statistics)", profile.get("app features", 0.0)),
            ("model fuel", model_s["fuel"]),
            ("model anomaly", model_s["anomaly"]),
            ("model behaviour", model_s["behaviour"]),
            ("app other (samples, windows, rules, EdgeAI lines, collector)", app_rest),
            ("metrics", profile.get("metrics", 0.0)),
            ("artifacts (events.log, labels, result.json, run.png)", profile.get("artifacts", 0.0))]
    rows = [(part, cpu_s) for part, cpu_s in rows if part != "bus fault injector" or cpu_s > 0]
    rows.append(("other (setup, teardown, scheduler)", result.cpu_s - sum(cpu_s for _, cpu_s in rows)))
    return tuple(rows)


def bench_sim(hours: float = DEFAULT_HOURS, *, seed: int = 0, manifest: str | Path = BUILTIN_SIM_RIG.models,
              time_scale: float = math.inf, out: Path | None = None) -> SimBench:
    scenario = long_drive(hours, seed)
    rig = dataclasses.replace(BUILTIN_SIM_RIG, models=Path(manifest), time_scale=time_scale)
    profile: dict = {}
    with ModelSet.open(rig.models) as models, tempfile.TemporaryDirectory(prefix="dtg-bench-sim-") as scratch:
        folder = (out or Path(scratch)) / scenario.name
        started = time.monotonic()
        result = run_scenario(scenario, rig, models, folder, cpu_profile=profile)
        wall_s = time.monotonic() - started
    return SimBench(result.trace.duration_s, result.cpu_s, wall_s, profile.get("instants", 0),
                    profile.get("rounds", 0), cpu_table(result, profile),
                    "PASS" if result.judgement.passed else f"FAIL ({result.judgement.message})", time_scale)


def _hours(text: str) -> float:
    """`--hours`: a drive of 10 minutes to 72 hours (argparse's error, exit 2, otherwise)."""
    try:
        hours = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of hours, got {text!r}") from None
    if not (math.isfinite(hours) and 600 <= round(hours * 3600.0) <= 72 * 3600):
        raise argparse.ArgumentTypeError(f"the drive lasts 10 minutes to 72 hours (0.17 to 72), got {text}")
    return hours


def _time_scale(text: str) -> float:
    try:
        scale = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of scenario seconds per wall second, got {text!r}") \
            from None
    if not scale > 0:  # inf: unpaced
        raise argparse.ArgumentTypeError(f"must be > 0 (inf: unpaced), got {text}")
    return scale


def add_sim_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--hours", type=_hours, default=DEFAULT_HOURS,
                        help=f"length of the generated drive, 0.17 (10 min) to 72 (default: {DEFAULT_HOURS:g})")
    parser.add_argument("--seed", type=int, default=0, help="the drive's seed (default: 0)")
    parser.add_argument("--manifest", default=str(BUILTIN_SIM_RIG.models),
                        help=f"models manifest the app runs (default: {BUILTIN_SIM_RIG.models})")
    parser.add_argument("--time-scale", type=_time_scale, default=math.inf,
                        help="pace the run at this many scenario seconds per wall second (default: unpaced)")
    parser.add_argument("--out", default=None, help="keep the run's artifacts under this folder (default: discarded)")


def cmd_bench_sim(args: argparse.Namespace) -> int:
    result = bench_sim(args.hours, seed=args.seed, manifest=args.manifest, time_scale=args.time_scale,
                       out=Path(args.out) if args.out else None)
    print(result)
    return 0
