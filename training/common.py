"""Shared training plumbing: determinism, progress lines, batches, the epoch loop."""
from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import TypeVar

import numpy as np
import torch
from torch import nn

Progress = Callable[[str], None]
Module = TypeVar("Module", bound=nn.Module)


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


def fit(model: Module, loss_of: Callable[[np.ndarray], torch.Tensor], n: int, rng: np.random.Generator,
        epochs: int, batch_size: int, lr: float, progress: Progress, line: str, clock: Clock, *,
        validate: Callable[[], float] | None = None, higher_is_better: bool = False,
        one_cycle: bool = True) -> Module:
    """Train `model` for `epochs` passes over n rows in `batches` drawn from `rng`; returns it in eval mode.

    `loss_of(idx)` is the mean loss of the rows idx. AdamW (weight decay 1e-4) at `lr`, on a one-cycle schedule
    (15 % warm-up) unless `one_cycle` is False. After each epoch `validate()` (in eval mode) scores the model and
    `progress` gets `line` formatted with epoch, epochs, loss (the epoch's mean) and val, then the clock; with a
    `validate` the weights of the best epoch (highest or lowest score) are the ones kept.
    """
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=1e-4)
    sched = None
    if one_cycle:
        steps = epochs * ((n + batch_size - 1) // batch_size)
        sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=steps, pct_start=0.15)
    best, best_state = (-np.inf if higher_is_better else np.inf), None
    for epoch in range(1, epochs + 1):
        model.train()
        total = 0.0
        for idx in batches(n, batch_size, rng):
            loss = loss_of(idx)
            opt.zero_grad()
            loss.backward()
            opt.step()
            if sched is not None:
                sched.step()
            total += float(loss.detach()) * len(idx)
        model.eval()
        val = validate() if validate is not None else None
        progress(f"{line.format(epoch=epoch, epochs=epochs, loss=total / n, val=val)}  {clock}")
        if val is not None and (val > best if higher_is_better else val < best):
            best, best_state = val, {k: v.clone() for k, v in model.state_dict().items()}
    if validate is not None:
        model.load_state_dict(best_state)
    return model.eval()
