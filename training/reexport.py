"""Re-export the shipped fuel and anomaly models with the current graph code, from their own weights.

`python -m training.reexport [--models models/]`: when the graph code changes its layout but not its function
(e.g. fewer, larger nodes: the device pays per node), the trained weights need not change. They are read back from
the shipped ONNX files, the torch models are rebuilt around them, exported again and written only if the new graphs
agree with the shipped ones on windows of driving neither was fitted on (`training.evaluate.eval_trips`, every
anomaly type): scores within `SCORE_TOLERANCE`, no window on the other side of the shipped threshold, fuel within
`FUEL_TOLERANCE_LPH`. The manifest gets the new files' sha256, sizes and latency, and a `reexport` record of what
was compared; the threshold and the training metrics stay those of the training run.

Every state entry is read from the initializer of its own name (the graph code uses the fitted constants as they
are, so the exporter keeps them named; graphs exported before that hold some folded into reshaped copies, found
through `_LEGACY_FOLDED`). A fitted entry (`FITTED`) the graph lacks stops it; a constant of the code (a range, a
floor, the gear lines) must equal what this tree builds; and the fuel model inside the anomaly graph must be the
shipped fuel model.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import onnx
import torch
from onnx import numpy_helper

from harness.core.errors import DtgHilError
from harness.inference.features import CONTEXT_S, context_windows
from harness.inference.models import open_session, sha256_file
from training.anomaly_features import GEAR_LINES, AnomalyFeatures
from training.anomaly_model import AnomalyModel
from training.channels import Channels
from training.evaluate import eval_trips
from training.export import bench_file, export_torch
from training.feature_catalogue import FEATURES
from training.nets import CROSS_CHANNELS, FUEL_CHANNELS, CrossPredictor, FeatureAE, FuelTCN

SCORE_TOLERANCE = 1e-3
FUEL_TOLERANCE_LPH = 1e-3
#: The state entries fitted at training time (by their last name part): each must come from the shipped graph.
#: Every other entry is a constant of the code (ranges, floors, the gear lines): where the graph holds it, it must
#: equal what this tree's code builds, or the shipped model is not this code's.
FITTED = ("weight", "bias", "fallback", "mean", "std", "fuel_proxy", "centre", "scale", "scale_hi", "scale_lo")
#: Graphs exported before these constants kept their names (model 1.0.0 as trained) hold them folded into
#: reshaped copies: (file, state entry) → (initializer, shape).
_LEGACY_FOLDED = {
    ("anomaly", "features.fallback"): ("view", (1, 1, 10)),
    ("anomaly", "features.gear_lines"): ("view_1", (1, 1, len(GEAR_LINES))),
    ("anomaly", "features.fuel.channels.mean"): ("view_5", (1, len(FUEL_CHANNELS), 1)),
    ("anomaly", "features.fuel.channels.std"): ("view_6", (1, len(FUEL_CHANNELS), 1)),
    ("anomaly", "features.cross.channels.mean"): ("view_8", (1, len(CROSS_CHANNELS), 1)),
    ("anomaly", "features.cross.channels.std"): ("view_9", (1, len(CROSS_CHANNELS), 1)),
    ("anomaly", "features.fuel_proxy"): ("view_11", (1, 1, 9)),
    ("fuel", "channels.fallback"): ("view", (1, 1, 10)),
    ("fuel", "channels.mean"): ("view_1", (1, len(FUEL_CHANNELS), 1)),
    ("fuel", "channels.std"): ("view_2", (1, len(FUEL_CHANNELS), 1)),
}


class ReexportError(DtgHilError, RuntimeError):
    """The shipped graphs cannot be read back, or the new ones do not agree with them."""


def _initializers(path: Path) -> dict[str, np.ndarray]:
    return {i.name: numpy_helper.to_array(i) for i in onnx.load(str(path)).graph.initializer}


def _lookup(inits: dict[str, np.ndarray], model: str, name: str) -> np.ndarray | None:
    if "model." + name in inits:
        return inits["model." + name]
    legacy = _LEGACY_FOLDED.get((model, name))
    if legacy is not None and legacy[0] in inits and inits[legacy[0]].shape == legacy[1]:
        return inits[legacy[0]]
    if name.endswith(".fallback"):  # the exporter keeps one copy of the fill-in values the modules share
        shared = "features.fallback" if model == "anomaly" else "channels.fallback"
        return _lookup(inits, model, shared) if name != shared else None
    return None


def _load(module: torch.nn.Module, inits: dict[str, np.ndarray], model: str, prefix: str = "") -> None:
    """Set every state entry of `module` (named `prefix` + its name in the graph) from the shipped graph."""
    state = module.state_dict()
    for name, tensor in state.items():
        value = _lookup(inits, model, prefix + name)
        fitted = name.rsplit(".", 1)[-1] in FITTED
        if value is None:
            if fitted:
                raise ReexportError(f"{model}.onnx: no initializer for the fitted {prefix + name!r}; this tool "
                                    f"reads graphs exported by this project's training only")
            continue
        value = torch.from_numpy(np.array(value, dtype=np.float32 if tensor.is_floating_point() else value.dtype))
        if not fitted and value.numel() != tensor.numel():
            continue  # a constant of the code laid out differently by an older graph
        value = value.reshape(tensor.shape)
        if not fitted and not torch.allclose(value.to(tensor.dtype), tensor, rtol=1e-6, atol=0.0):
            raise ReexportError(f"{model}.onnx: {prefix + name} differs from what this tree's code builds; the "
                                f"shipped model is not this code's (retrain instead)")
        state[name] = value
    module.load_state_dict(state)


def rebuild(models_dir: Path) -> tuple[FuelTCN, AnomalyModel]:
    """The shipped fuel model (standalone) and anomaly model as torch modules with their trained weights."""
    inits = {m: _initializers(models_dir / f"{m}.onnx") for m in ("fuel", "anomaly")}
    width = next((v.shape[0] for k, v in inits["fuel"].items() if k == "model.inp.bias"), None)
    if width is None:
        raise ReexportError("fuel.onnx: no initializer 'model.inp.bias' (the TCN's input layer)")
    blank = np.zeros(10, dtype=np.float32)

    def fuel_model() -> FuelTCN:
        return FuelTCN(Channels(blank, FUEL_CHANNELS), width=width)

    fuel = fuel_model()
    _load(fuel, inits["fuel"], "fuel")
    features = AnomalyFeatures(fuel_model(), blank, CrossPredictor(Channels(blank, CROSS_CHANNELS)))
    a = inits["anomaly"]
    ae = FeatureAE(len(FEATURES)) if "model.ae.enc.0.weight" in a else None
    ones = np.ones(len(FEATURES), dtype=np.float32)
    model = AnomalyModel(features, ones, ones, ae, ones, ones)
    _load(model, a, "anomaly")
    shipped, inside = fuel.state_dict(), model.features.fuel.state_dict()
    if any(not torch.equal(shipped[k], inside[k]) for k in shipped):
        raise ReexportError("fuel.onnx and anomaly.onnx hold different fuel models: they were not trained together")
    return fuel.eval(), model.eval()


def _windows(seed: int, trips: int, every: int) -> np.ndarray:
    """Context windows of generated drives with every anomaly type (the held-out evaluation generator)."""
    return np.concatenate([context_windows(t.samples)[::every] for t in eval_trips(seed, trips, 1800.0, per_trip=7)])


def _compare(old: Path, new: Path, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    a, b = open_session(old), open_session(new)
    length = a.get_inputs()[0].shape[1]
    got_a, got_b = [], []
    for w in x[:, -length:].astype(np.float32):
        got_a.append(np.concatenate([o.reshape(-1) for o in a.run(None, {"window": w[None]})]))
        got_b.append(np.concatenate([o.reshape(-1) for o in b.run(None, {"window": w[None]})]))
    return np.array(got_a), np.array(got_b)


def reexport(models_dir: Path, seed: int = 7, trips: int = 6, every: int = 5, say=print) -> dict:
    """Re-export fuel.onnx and anomaly.onnx in `models_dir` (see the module); returns the `reexport` record."""
    manifest_path = models_dir / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    threshold = float(manifest["models"]["anomaly"]["threshold"])
    fuel, anomaly = rebuild(models_dir)
    work = models_dir / ".reexport"
    work.mkdir(exist_ok=True)
    x = _windows(seed, trips, every)
    say(f"reexport comparing on {len(x)} windows of {trips} generated drives with anomalies (seed {seed})")
    record: dict = {"windows": int(len(x)), "eval_seed": seed, "models": {}}
    staged = {}
    for name, model, outputs, length in (("fuel", fuel, ["fuel_rate_lph"], 60),
                                         ("anomaly", anomaly, ["score", "signal_scores"], CONTEXT_S)):
        old = models_dir / f"{name}.onnx"
        meta = {p.key: p.value for p in onnx.load(str(old)).metadata_props}
        new = work / f"{name}.onnx"
        export_torch(model, new, outputs, meta, length)
        got_old, got_new = _compare(old, new, x)
        worst = float(np.max(np.abs(got_old - got_new)))
        entry = {"from_sha256": sha256_file(old), "nodes_before": len(onnx.load(str(old)).graph.node),
                 "nodes_after": len(onnx.load(str(new)).graph.node), "max_abs_output_change": worst}
        if name == "anomaly":
            flips = int(np.sum((got_old[:, 0] > threshold) != (got_new[:, 0] > threshold)))
            entry["alarm_flips"] = flips
            if worst > SCORE_TOLERANCE or flips:
                raise ReexportError(f"anomaly: the new graph differs by {worst:.3g} (tolerance {SCORE_TOLERANCE}), "
                                    f"{flips} windows on the other side of the threshold; nothing written")
        elif worst > FUEL_TOLERANCE_LPH:
            raise ReexportError(f"fuel: the new graph differs by {worst:.3g} L/h (tolerance {FUEL_TOLERANCE_LPH}); "
                                f"nothing written")
        say(f"reexport {name}: {entry['nodes_before']} -> {entry['nodes_after']} nodes, largest output change "
            f"{worst:.2e}" + (f", {entry['alarm_flips']} alarm flips" if name == "anomaly" else ""))
        record["models"][name] = entry
        staged[name] = new
    runs = int(manifest["config"]["bench_runs"])
    for name, new in staged.items():
        old = models_dir / f"{name}.onnx"
        before = bench_file(old, name, runs)
        after = bench_file(new, name, runs)
        record["models"][name]["bench_before"], record["models"][name]["bench_after"] = before, after
        say(f"reexport {name}: p50 {before['p50_ms']:.3f} -> {after['p50_ms']:.3f} ms, p99 {before['p99_ms']:.3f} -> "
            f"{after['p99_ms']:.3f} ms (side by side, this machine)")
    for name, new in staged.items():
        path = models_dir / f"{name}.onnx"
        new.replace(path)
        entry = manifest["models"][name]
        entry.update(sha256=sha256_file(path), bytes=path.stat().st_size,
                     bench_at_training=record["models"][name]["bench_after"])
    work.rmdir()
    record["command"] = "python -m training.reexport --models " + str(models_dir)
    record["note"] = ("graphs re-exported from the trained weights by training.reexport; threshold, metrics and "
                      "quantisation figures are the training run's")
    manifest["reexport"] = record
    manifest_path.write_text(json.dumps(manifest, indent=1) + "\n")
    return record


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m training.reexport", description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", type=Path, default=Path("models"), help="the models directory (manifest.json)")
    args = parser.parse_args(argv)
    try:
        reexport(args.models)
    except (ReexportError, FileNotFoundError, KeyError) as exc:
        print(f"python -m training.reexport: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
