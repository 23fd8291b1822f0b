"""python -m training --out models/ [--seed N] [--quick] [--data DIR]"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m training",
        description="Train the fuel, anomaly and behaviour models, export them to ONNX, calibrate, evaluate on "
                    "held-out trips and write models/manifest.json.")
    parser.add_argument("--out", required=True, type=Path, help="directory for the .onnx files and manifest.json")
    parser.add_argument("--seed", type=int, default=0, help="training and dataset seed (default: 0)")
    parser.add_argument("--quick", action="store_true",
                        help="small data and models for CI (under 3 minutes; not for shipping)")
    parser.add_argument("--data", type=Path, default=None,
                        help="a harness.world.dataset directory to train from; built there if it has no manifest.json "
                             "(default: built in a temporary directory)")
    args = parser.parse_args(argv)
    from training.pipeline import run

    run(args.out, seed=args.seed, quick=args.quick, data_dir=args.data)
    return 0


if __name__ == "__main__":
    sys.exit(main())
