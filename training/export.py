"""ONNX export of the torch models and their metadata, and the checks of an exported file: parity with torch and
latency (sessions open as the device runs them: harness.inference.models)."""
from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import onnx
import torch

from harness.inference.models import bench_example_inputs, bench_session, open_session

OPSET = 18


def set_metadata(model: onnx.ModelProto, metadata: dict[str, str]) -> None:
    del model.metadata_props[:]
    for key, value in metadata.items():
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value if isinstance(value, str) else json.dumps(value)


class _Outputs(torch.nn.Module):
    """Wraps a model so that the exported graph has exactly the contract's outputs."""

    def __init__(self, model: torch.nn.Module):
        super().__init__()
        self.model = model

    def forward(self, window: torch.Tensor):
        return self.model(window)


def export_torch(model: torch.nn.Module, path: Path, outputs: list[str], metadata: dict[str, str],
                 length_s: int = 60) -> None:
    """Export with a fixed [1, length_s, 10] float32 input named `window`, one self-contained file."""
    example = torch.zeros(1, length_s, 10, dtype=torch.float32)
    example[0, :, 0] = 50.0
    example[0, :, 1] = 2000.0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        program = torch.onnx.export(_Outputs(model).eval(), (example,), None, input_names=["window"],
                                    output_names=outputs, dynamo=True, external_data=False, opset_version=OPSET,
                                    verbose=False, optimize=True)
    onx = program.model_proto
    # The exporter keeps a Python stack trace per node: 80 % of the file, and of no use on a device.
    for node in onx.graph.node:
        node.doc_string = ""
        del node.metadata_props[:]
    del onx.graph.value_info[:]
    onnx.checker.check_model(onx)
    set_metadata(onx, metadata)
    onnx.save(onx, str(path))


def onnx_opset(path: Path) -> int:
    model = onnx.load(str(path))
    return max(o.version for o in model.opset_import if o.domain in ("", "ai.onnx"))


def parity(model: torch.nn.Module, path: Path, x: np.ndarray) -> float:
    """Largest |onnxruntime - torch| over the first output on windows `x` (cut to the graph's input length)."""
    sess = open_session(path)
    worst = 0.0
    for w in x[:, -sess.get_inputs()[0].shape[1]:]:
        got = sess.run(None, {"window": w[None].astype(np.float32)})[0]
        with torch.no_grad():
            want = model(torch.from_numpy(w[None].astype(np.float32)))
        want = want[0] if isinstance(want, tuple) else want
        worst = max(worst, float(np.max(np.abs(got - want.numpy()))))
    return worst


def bench_file(path: Path, name: str, runs: int) -> dict:
    """p50/p99 latency (ms) of an exported model file on `name`'s example input, and its size, as the manifest
    records them."""
    sess = open_session(path)
    feeds = bench_example_inputs()[name]
    if "window" in feeds:  # the LSTM-AE candidate takes 60 s where the shipped anomaly model takes its context
        feeds = {"window": feeds["window"][:, -sess.get_inputs()[0].shape[1]:]}
    p50, p99 = bench_session(sess, feeds, runs, warmup=min(200, runs))
    return {"p50_ms": round(p50, 4), "p99_ms": round(p99, 4), "runs": runs, "bytes": path.stat().st_size}
