"""A small trial: can the behaviour model learn the driving-style definition from what the unit receives?

    python -m training.style_trial --out /tmp/style-trial [--train 40 --val 10 --test 10 --aug 120 --seed 0]
                                   [--export behaviour.onnx]

Builds a small dataset (`harness.world.dataset.build_dataset`: trips labelled with the style their driving earns,
`harness.world.driving_style`), trains `training.behaviour.train_behaviour` on it (with `--aug` generated trips
with anomalies), and prints the macro-F1 on the validation windows, on the test split's generated trips and its
drive-cycle trips, and on each bundled cycle driven clean by both vehicles (two laps, every window, stride 5 s):
macro-F1 there over the styles present in the labels or the predictions (`harness.judge.metrics.behaviour`, as
a run reports it), with the earned and the predicted class shares. `--export` writes the model as ONNX with the
shipped model's metadata, to try it on the bundled scenarios through a rig file's `models:`.

Not the full training (`python -m training` is): fewer trips, and the windows' figures are a trial's.
"""
from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np

from harness.inference.features import behaviour_features_batch
from harness.judge.metrics.behaviour import macro_f1 as judged_macro_f1
from harness.wire.behaviour import STYLES
from harness.world.cycles import BUNDLED_CYCLES, load_cycle
from harness.world.dataset import build_dataset
from harness.world.vehicle import VEHICLES, get_vehicle, simulate
from training.behaviour import train_behaviour
from training.data import Windows, load_split, make_windows
from training.evaluate import macro_f1, trip_from_trace


def _confusion(truth: np.ndarray, pred: np.ndarray) -> list[list[int]]:
    m = np.zeros((len(STYLES), len(STYLES) + 1), dtype=np.int64)
    np.add.at(m, (truth, pred), 1)
    return m.tolist()


def _shares(x: np.ndarray) -> str:
    counts = np.bincount(x, minlength=len(STYLES)) / max(len(x), 1)
    return " ".join(f"{s} {c:.2f}" for s, c in zip(STYLES, counts, strict=True))


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(prog="python -m training.style_trial", description=__doc__.split("\n")[0])
    ap.add_argument("--out", type=Path, default=None, help="dataset folder (default: a temporary one)")
    ap.add_argument("--train", type=int, default=40)
    ap.add_argument("--val", type=int, default=10)
    ap.add_argument("--test", type=int, default=10)
    ap.add_argument("--aug", type=int, default=120, help="generated trips with anomalies added to training")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--export", type=Path, default=None, help="write the model as ONNX here")
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        data = args.out or Path(tmp) / "data"
        manifest = build_dataset(data, args.seed, args.train, args.val, args.test, progress=lambda _: None)
        train, val, test = (load_split(data, s) for s in ("train", "val", "test"))
    train_w, val_w, test_w = make_windows(train, 3), make_windows(val, 5), make_windows(test, 5)
    model = train_behaviour(train_w, val_w, args.seed, 1000, progress=lambda m: print(m, flush=True),
                            aug_trips=args.aug)

    def predict(w: Windows) -> np.ndarray:
        return model.predict(behaviour_features_batch(w.x)).astype(np.int64)

    out = {"val_macro_f1": macro_f1(val_w.style, predict(val_w))}
    pred = predict(test_w)
    routes = {t["file"]: t["route"] for t in manifest["trips"]}
    generated = np.array([routes[t.name] == "generated" for t in test])[test_w.trip]
    out["test_generated_macro_f1"] = macro_f1(test_w.style[generated], pred[generated])
    if (~generated).any():
        out["test_cycles_macro_f1"] = judged_macro_f1(_confusion(test_w.style[~generated], pred[~generated]))
    print(f"validation macro-F1 {out['val_macro_f1']:.3f}; test generated trips {out['test_generated_macro_f1']:.3f}"
          + (f", test cycle trips {out['test_cycles_macro_f1']:.3f}" if "test_cycles_macro_f1" in out else ""))
    for cycle in BUNDLED_CYCLES:
        for k, vehicle in enumerate(VEHICLES):
            trip = trip_from_trace(cycle, simulate(load_cycle(cycle).repeated(2), get_vehicle(vehicle), seed=k))
            w = make_windows([trip], 5)
            p = predict(w)
            f1 = judged_macro_f1(_confusion(w.style, p))
            out[f"{cycle}/{vehicle}"] = f1
            print(f"{cycle:13s} {vehicle:13s} macro-F1 {f1:.3f} accuracy {np.mean(p == w.style):.3f}  "
                  f"earned: {_shares(w.style)}  said: {_shares(p)}")
    if args.export is not None:
        _export(model, args.export)
    return out


def _export(model, path: Path) -> None:
    import onnx

    from harness.inference.models import BUNDLED_MANIFEST
    from training.behaviour import export_behaviour

    shipped = onnx.load(str(Path(BUNDLED_MANIFEST).parent / "behaviour.onnx"))
    export_behaviour(model, path, {p.key: p.value for p in shipped.metadata_props})
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
