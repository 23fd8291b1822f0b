"""Shared training plumbing: determinism, progress lines, batches."""
from __future__ import annotations

import sys
import time
from collections.abc import Callable

import numpy as np
import torch

Progress = Callable[[str], None]


def stderr_progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def make_deterministic(seed: int, threads: int = 1) -> None:
    """Same seed, same weights: seeded RNGs, deterministic kernels, a fixed thread count."""
    torch.manual_seed(seed)
    np.random.seed(seed % 2**32)
    torch.use_deterministic_algorithms(True)
    torch.set_num_threads(threads)
    try:
        torch.set_num_interop_threads(1)
    except RuntimeError:  # only settable once per process, before any parallel work
        pass


class Clock:
    def __init__(self) -> None:
        self.start = time.monotonic()

    def __str__(self) -> str:
        return f"{time.monotonic() - self.start:6.1f} s"


def batches(n: int, size: int, rng: np.random.Generator | None) -> list[np.ndarray]:
    order = rng.permutation(n) if rng is not None else np.arange(n)
    return [order[i:i + size] for i in range(0, n, size)]


@torch.no_grad()
def predict(fn: Callable[[torch.Tensor], torch.Tensor], x: np.ndarray, size: int = 2048) -> np.ndarray:
    out = [fn(torch.from_numpy(np.ascontiguousarray(x[i:i + size]))).numpy() for i in range(0, len(x), size)]
    return np.concatenate(out) if out else np.empty(0)
