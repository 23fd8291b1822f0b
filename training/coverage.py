"""Does the training generator's driving span real driving? Per-trip summary statistics
(`harness.world.cycles.drive_statistics`) of generated training trips, drawn as the dataset draws its train split
(`harness.world.dataset.plan_trips`), beside the same statistics of the bundled drive cycles.

    python -m training.coverage --trips 40 --seed 0 --duration-s 1800

prints the Markdown table of docs/models.md ("Training data"): the spread of each statistic over the generated
trips (min, p10, median, p90, max) and each cycle's value, marked `*` where it lies outside the generated range.
The cycles are only compared against, never fitted: the generator's ranges are set from what drivers do, and the
cycles stay unseen by training.
"""
from __future__ import annotations

import argparse

import numpy as np

from harness.world.cycles import BUNDLED_CYCLES, DRIVING, drive_statistics, generate_trip, load_cycle
from harness.world.dataset import plan_trips

#: The statistics the table shows, in order, with their headings.
HEADINGS = {
    "stops_per_km": "stops per km", "idle_share": "idle share", "speed_p50_kmh": "moving speed p50 km/h",
    "speed_p95_kmh": "moving speed p95 km/h", "accel_p95_ms2": "acceleration p95 m/s²",
    "decel_p95_ms2": "deceleration p95 m/s²", "jerk_p95_ms3": "jerk p95 m/s³", "rpa_ms2": "RPA m/s²",
}


def generated_statistics(seed: int, trips: int, duration_s: float, driving: str = "varied") -> list[dict[str, float]]:
    """`drive_statistics` of the first `trips` train-split trips `plan_trips(seed, ...)` draws, driven `driving`
    (`harness.world.cycles.DRIVING`: "varied" as the dataset drives them, "classic" as trip-gen/2 did)."""
    specs = [spec for spec in plan_trips(seed, trips, 0, 0, duration_s) if spec.split == "train"]
    return [drive_statistics(generate_trip(spec.seed, spec.duration_s, spec.mix, styles=spec.styles,
                                                  driving=driving).speed_kmh)
            for spec in specs]


def coverage_table(generated: list[dict[str, float]], cycles: dict[str, dict[str, float]]) -> str:
    """The Markdown table: spread over `generated`, then each cycle's value (`*`: outside the generated range)."""
    head = ["statistic", "min", "p10", "median", "p90", "max", *cycles]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for key, heading in HEADINGS.items():
        values = np.array([row[key] for row in generated])
        spread = [values.min(), *np.percentile(values, [10, 50, 90]), values.max()]
        cells = [f"{x:.3g}" for x in spread]
        for stats in cycles.values():
            inside = values.min() <= stats[key] <= values.max()
            cells.append(f"{stats[key]:.3g}" + ("" if inside else " *"))
        lines.append(f"| {heading} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m training.coverage", description=__doc__.split("\n\n")[0])
    parser.add_argument("--trips", type=int, default=40, help="generated trips (default 40)")
    parser.add_argument("--seed", type=int, default=0, help="the dataset seed the trips are drawn with (default 0)")
    parser.add_argument("--duration-s", type=float, default=1800.0, help="trip length (default 1800 s)")
    parser.add_argument("--driving", choices=DRIVING, default="varied",
                        help="how the trips are driven (default varied, as the dataset drives them)")
    args = parser.parse_args(argv)
    generated = generated_statistics(args.seed, args.trips, args.duration_s, args.driving)
    cycles = {name: drive_statistics(load_cycle(name).speed_kmh) for name in BUNDLED_CYCLES}
    print(f"{len(generated)} generated trips of {args.duration_s:g} s ({args.driving} driving, seed {args.seed}) "
          "against the bundled cycles")
    print(coverage_table(generated, cycles))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
