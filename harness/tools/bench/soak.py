"""`dtg-hil bench soak`: a long drive through the whole simulated chain, what it lost and how memory grew.

`bench_soak` drives a long generated route with a few anomalies (`soak_scenario`) through the whole simulated
chain (`harness.run.chain.run_scenario`: rest-bus, firmware, UART, app with its three models, events) and
reports what the run lost, by the run's own accounting, and how the process's memory grew: a thread samples
the resident set size and Python's allocated memory blocks (with `tracing=True` also the bytes Python has
traced, at a cost in speed) once per scenario minute (`harness.tools.bench.memory`). Scenario time is read from
the run's progress: the app scores one window per scenario second, so the soak hands `run_scenario` its models
behind a thin wrapper that counts the fuel model's calls. The figures compared are the samples at the end of
the first hour and at the end of the last (of the first and last tenth of the drive when it is shorter than
two hours). Resident memory is what the kernel gives the process, allocator caches included: a growth is a
bound on a leak, not a measure of one.
"""
from __future__ import annotations

import argparse
import dataclasses
import math
import sys
import time
import tracemalloc
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from harness.inference.features import WINDOW_S
from harness.inference.models import BUNDLED_MANIFEST
from harness.tools.bench.memory import MemorySample, MemorySampler, Progress
from harness.tools.exits import EXIT_BAD_INPUT, EXIT_FAILED, EXIT_OK

if TYPE_CHECKING:  # the soak's imports load onnxruntime: only `bench soak` pays for them, at run time
    from harness.judge.result import Accounting
    from harness.world.scenario import Scenario

__all__ = ["SOAK_ANOMALIES", "SOAK_HOURS_FOR_HOURLY", "SOAK_MAX_GROWTH", "SOAK_TIME_SCALE", "SoakResult",
           "add_soak_arguments", "bench_soak", "cmd_bench_soak", "soak_scenario"]

#: Anomalies of the soak drive, spread over it (behavioural, vehicle, position and sensor faults).
SOAK_ANOMALIES = (
    {"type": "overheating"},
    {"type": "harsh_braking"},
    {"type": "gps_jump"},
    {"type": "stuck_value", "signal": "coolant_temp"},
    {"type": "fuel_leak"},
    {"type": "spike_noise", "signal": "engine_rpm"},
)
#: The soak fails when resident memory grows by this much or more from the first segment's end to the last's.
SOAK_MAX_GROWTH = 0.10
#: The soak compares whole hours from a drive of this many hours on; shorter drives compare tenths.
SOAK_HOURS_FOR_HOURLY = 2.0
#: The soak's default requested time scale.
SOAK_TIME_SCALE = 105.0


def soak_scenario(hours: float, seed: int = 0) -> Scenario:
    """A generated route of `hours` (urban, rural and highway) with the `SOAK_ANOMALIES` spread evenly over it."""
    from harness.world.scenario import parse_scenario

    duration_s = hours * 3600.0
    slot_s = duration_s / (len(SOAK_ANOMALIES) + 1)
    anomalies = []
    for i, kind in enumerate(SOAK_ANOMALIES):
        anomalies.append({**kind, "at_s": round(slot_s * (i + 0.75), 1), "onset_s": round(min(30.0, 0.1 * slot_s), 1),
                          "sustain_s": round(min(300.0, 0.3 * slot_s), 1),
                          "recovery_s": round(min(30.0, 0.1 * slot_s), 1), "severity": 0.8})
    data = {"name": f"soak-{hours:g}h", "description": f"{hours:g} h generated drive for the soak benchmark",
            "vehicle": "passenger_car", "seed": seed, "route": {"generated": {"duration_s": duration_s}},
            "anomalies": anomalies,
            # The soak reports and judges its losses itself, beside its memory figures: no DataLossError.
            "expect": {"data_loss_max_pct": 100}}
    return parse_scenario(data, {}, "", name=data["name"])


@dataclass
class SoakResult:
    """The figures of one soak: the run's loss accounting, its speed, and memory at the ends of two segments."""

    hours: float
    time_scale_requested: float
    drive_s: float
    wall_s: float
    speed: float
    accounting: Accounting
    samples: list[MemorySample]
    segment_s: float  # length of the compared segments: an hour, or a tenth of a short drive
    sample_period_s: float  # scenario seconds between memory samples
    artifacts: Path
    verdict: str
    tracing: bool = False
    notes: list[str] = field(default_factory=list)

    @property
    def segment_name(self) -> str:
        return "hour" if self.segment_s == 3600.0 else "tenth"

    def _at(self, t_s: float) -> MemorySample | None:
        """The first sample at or after scenario time `t_s` (the last one if none is)."""
        later = [s for s in self.samples if s.t_s >= t_s - 1e-9]
        return later[0] if later else (self.samples[-1] if self.samples else None)

    @property
    def first_segment_end(self) -> MemorySample | None:
        return self._at(self.segment_s)

    @property
    def last_segment_end(self) -> MemorySample | None:
        return self.samples[-1] if self.samples else None

    @property
    def rss_growth(self) -> float:
        """Growth of resident memory from the end of the first segment to the end of the last, as a fraction."""
        first, last = self.first_segment_end, self.last_segment_end
        if first is None or last is None or not first.rss_bytes:
            return math.nan
        return (last.rss_bytes - first.rss_bytes) / first.rss_bytes

    @property
    def peak_rss_bytes(self) -> int:
        return max((s.rss_bytes for s in self.samples), default=0)

    @property
    def losses(self) -> dict[str, int]:
        """Every count of lost or damaged data, by where it was lost; all must be 0."""
        a = self.accounting
        requests_sent = a.obd_requests_answered + a.obd_requests_unanswered
        return {
            "CAN frames sent but not received by the firmware": a.can_frames_sent - requests_sent
            - a.firmware_frames_received,
            "frames the firmware received but did not forward": a.firmware_frames_received + requests_sent
            - a.firmware_frames_forwarded - a.firmware_frames_unforwardable,
            "link frames lost (sequence gaps)": a.link_frames_lost,
            "link frames with a CRC error": a.link_crc_errors,
            "samples sent but not received by the app": a.samples_sent - a.samples_received,
            "EdgeAI lines the harness could not parse": a.event_problems,
        }

    @property
    def frames_lost(self) -> int:
        return sum(abs(v) for v in self.losses.values())

    @property
    def passed(self) -> bool:
        return self.frames_lost == 0 and self.rss_growth < SOAK_MAX_GROWTH

    def report(self) -> str:
        a = self.accounting
        mib = 1024 * 1024
        first, last = self.first_segment_end, self.last_segment_end
        requests_sent = a.obd_requests_answered + a.obd_requests_unanswered
        status_records = a.link_frames_decoded - a.firmware_frames_forwarded - a.samples_received
        lines = [
            f"soak: {self.hours:g} h generated drive with {len(SOAK_ANOMALIES)} anomalies at "
            f"{self.time_scale_requested:g}x requested; artifacts in {self.artifacts}",
            f"  speed                {self.drive_s / 3600:.2f} h of drive in {self.wall_s:.1f} s wall = "
            f"{self.speed:.1f}x real time (setup and drain included)",
            f"  CAN                  {a.can_frames_sent} frames on the bus ({requests_sent} OBD requests), "
            f"{a.firmware_frames_received} received by the firmware, {a.firmware_frames_forwarded} forwarded "
            f"({a.firmware_frames_unforwardable} unforwardable)",
            f"  link                 {a.link_frames_decoded} frames decoded by the app ({a.firmware_frames_forwarded}"
            f" CAN + {a.samples_received} samples + {status_records} status), {a.link_frames_lost} lost by "
            f"sequence, {a.link_crc_errors} CRC errors",
            f"  samples              {a.samples_sent} sent, {a.samples_received} received; {a.windows_scored} "
            f"windows scored, {a.event_lines} EdgeAI lines, {a.event_problems} unparsable",
            f"  simulator lag        {a.obd_requests_unanswered} OBD requests unanswered in time, "
            f"{a.poll_cycles_late} poll cycles run late, {a.poll_ticks_missed} ticks missed",
            f"  frames lost          {self.frames_lost}"
            + ("" if not self.frames_lost else " (" + ", ".join(f"{k}: {v}" for k, v in self.losses.items() if v)
                                                + ")"),
        ]
        if first is not None and last is not None:
            lines += [
                f"  memory (RSS)         end of first {self.segment_name} {first.rss_bytes / mib:.1f} MiB "
                f"(t={first.t_s:.0f} s), end of last {self.segment_name} {last.rss_bytes / mib:.1f} MiB "
                f"(t={last.t_s:.0f} s): growth {100 * self.rss_growth:+.2f} % (limit {100 * SOAK_MAX_GROWTH:.0f} %); "
                f"peak {self.peak_rss_bytes / mib:.1f} MiB",
                f"  Python heap          {first.python_blocks} -> {last.python_blocks} allocated blocks "
                f"({100 * (last.python_blocks - first.python_blocks) / max(1, first.python_blocks):+.2f} %)"
                + (f"; traced {first.traced_bytes / mib:.1f} -> {last.traced_bytes / mib:.1f} MiB"
                   if first.traced_bytes is not None and last.traced_bytes is not None else ""),
                f"  memory samples       {len(self.samples)}, one every {self.sample_period_s:g} s of scenario "
                f"time; segments of {self.segment_s:g} s",
            ]
        else:
            lines.append("  memory               no samples (the run scored no window)")
        lines += [f"  note                 {note}" for note in self.notes]
        lines.append(f"  verdict              {'PASS' if self.passed else 'FAIL'}: {self.verdict}")
        return "\n".join(lines)


def bench_soak(
    hours: float = 4.0,
    time_scale: float = 100.0,
    *,
    manifest: str | Path = BUNDLED_MANIFEST,
    out: str | Path | None = None,
    seed: int = 0,
    tracing: bool = False,
    echo: bool = True,
) -> SoakResult:
    """Drive `hours` of a generated route through the simulated chain at `time_scale`; account for every frame
    and sample the memory. Prints the report when `echo` is true, and returns the figures either way."""
    from harness.inference.models import ModelSet
    from harness.rig.rigfile import BUILTIN_SIM_RIG
    from harness.run.chain import run_scenario

    if not (math.isfinite(hours) and hours > 0):
        raise ValueError(f"hours must be a finite number > 0, got {hours!r}")
    if not (math.isfinite(time_scale) and time_scale > 0):
        raise ValueError(f"time scale must be a finite number > 0, got {time_scale!r}")
    if hours * 3600.0 < 120.0:
        raise ValueError(f"a soak drives a generated route of at least 120 s (0.0334 h); got {hours:g} h")
    scenario = soak_scenario(hours, seed)
    # once a scenario minute; shorter drives (compared by tenths) at least six times per tenth
    sample_period_s = 60.0 if hours >= SOAK_HOURS_FOR_HOURLY else min(60.0, hours * 3600.0 / 60.0)
    # The soak reports the simulator's lag itself ("simulator lag" below): no RigLagError either.
    rig = dataclasses.replace(BUILTIN_SIM_RIG, time_scale=time_scale, rig_loss_max_pct=100.0)
    artifacts = Path(out) if out is not None else Path("reports") / time.strftime("%Y%m%d-%H%M%S") / "soak"
    if echo:
        print(f"soak: {hours:g} h at {time_scale:g}x (about {hours * 3600 / time_scale:.0f} s of wall time after "
              f"the plant), artifacts in {artifacts}", flush=True)
    if tracing:
        tracemalloc.start()
    try:
        with ModelSet.open(manifest) as models:
            progress = Progress(models)
            sampler = MemorySampler(sample_period_s / time_scale, progress).start()
            try:
                result = run_scenario(scenario, rig, progress, artifacts)
            finally:
                sampler.stop()
    finally:
        if tracing:
            tracemalloc.stop()
    drive_s = result.trace.duration_s
    # the first window is full when the app holds WINDOW_S samples (t = 1 ... WINDOW_S s): the first fuel call's time
    samples = sampler.samples(float(WINDOW_S), time_scale, drive_s)
    segment_s = 3600.0 if hours >= SOAK_HOURS_FOR_HOURLY else drive_s / 10.0
    soak = SoakResult(hours, time_scale, drive_s, result.wall_s, result.speed, result.accounting, samples, segment_s,
                      sample_period_s, artifacts, "", tracing)
    if progress.windows != result.accounting.windows_scored:
        soak.notes.append(f"the wrapper counted {progress.windows} fuel calls, the app "
                          f"{result.accounting.windows_scored} windows: memory samples' scenario times are approximate")
    problems = []
    if soak.frames_lost:
        problems.append(f"{soak.frames_lost} frames lost")
    if not soak.rss_growth < SOAK_MAX_GROWTH:
        problems.append(f"memory grew {100 * soak.rss_growth:.2f} % (limit {100 * SOAK_MAX_GROWTH:.0f} %)")
    soak.verdict = "; ".join(problems) or (f"no frame lost, memory grew {100 * soak.rss_growth:+.2f} % "
                                           f"(< {100 * SOAK_MAX_GROWTH:.0f} %)")
    if echo:
        print(soak.report(), flush=True)
    return soak


def add_soak_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of `dtg-hil bench soak`."""
    parser.add_argument("--hours", type=float, default=4.0, help="hours of drive (default: 4)")
    # Requested a little above 100x: the speed printed counts setup and drain too, so a run asked for exactly
    # 100x shows just under it.
    parser.add_argument("--time-scale", type=float, default=SOAK_TIME_SCALE,
                        help=f"scenario seconds per wall second requested (default: {SOAK_TIME_SCALE:g})")
    parser.add_argument("--seed", type=int, default=0, help="route seed (default: 0)")
    parser.add_argument("--manifest", default=str(BUNDLED_MANIFEST),
                        help="models manifest (default: the bundled models, models/manifest.json of the checkout "
                             "dtg-hil is installed from)")
    parser.add_argument("--out", metavar="DIR", help="folder for the run's artifacts (default: reports/<time>/soak)")
    parser.add_argument("--tracemalloc", action="store_true",
                        help="also trace Python's allocations (exact Python heap figures; slows the run)")


def cmd_bench_soak(args: argparse.Namespace) -> int:
    """Run the soak; exit 1 if a frame was lost or memory grew by 10 % or more, 2 on bad input."""
    from harness.inference.models import ManifestError
    from harness.judge.result import RunError

    try:
        result = bench_soak(args.hours, args.time_scale, manifest=args.manifest, out=args.out, seed=args.seed,
                            tracing=args.tracemalloc)
    except (ValueError, ManifestError) as error:
        print(error, file=sys.stderr)
        return EXIT_BAD_INPUT
    except RunError as error:
        print(f"soak: the run failed: {error}", file=sys.stderr)
        return EXIT_FAILED
    return EXIT_OK if result.passed else EXIT_FAILED
