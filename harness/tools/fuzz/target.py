"""What a fuzz target is: the parser it runs, its documented rejections, and where its inputs come from.

The shared base of the target modules (one per parser, like python-can's ``can/io`` formats over ``generic.py``):
`FuzzTarget`, the `REJECTED` marker a target returns when its parser rejected an input by value, `OracleError`
for a broken promise, and the helpers more than one target uses (`chunks`, `pick`). It runs nothing itself: the
engine (`harness.tools.fuzz.engine`) feeds the targets.
"""
from __future__ import annotations

import copy
import random
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.core.errors import DtgHilError

__all__ = ["REJECTED", "ROOT", "FuzzTarget", "OracleError", "chunks", "pick"]

#: The repository: bundled scenario and rig files are examples; tracebacks are located relative to it.
ROOT = Path(__file__).resolve().parents[3]


class OracleError(DtgHilError, AssertionError):
    """A parser broke one of its documented promises without raising (e.g. its output depends on chunking)."""


#: What a target's `run` returns when the parser rejected the input by value, as documented (the event parser's
#: `ParseProblem`, a line that is not an EdgeAI line), rather than by raising.
REJECTED = object()


@dataclass(frozen=True)
class FuzzTarget:
    """One parser under fuzz.

    `run(data, workdir)` feeds `data` to the parser and returns when it accepted it (`REJECTED` when the parser
    rejected it by value, as documented); it raises one of `accepted` (the parser's documented rejection) or
    `OracleError`, and anything else it raises is a finding.
    `workdir` is a private scratch folder (file-based loaders write the input there), prepared once per run by
    `prepare`. `examples()` are valid inputs, the mutation corpus; `structured(rng)` draws a structure-aware
    input; `tokens` are the format's own byte strings that mutations insert; `suffix` names reproducer files.
    """

    name: str
    parser: str
    accepted: tuple[type[BaseException], ...]
    run: Callable[[bytes, Path], object]
    examples: Callable[[], list[bytes]]
    structured: Callable[[random.Random], bytes]
    max_size: int = 1024
    text: bool = False  # the parser reads text: random inputs are printable text half the time
    tokens: tuple[bytes, ...] = ()
    suffix: str = ".bin"
    prepare: Callable[[Path], None] | None = None


def chunks(data: bytes) -> list[bytes]:
    """`data` cut into pieces of random sizes (1 to 40 bytes), the same cut for the same data."""
    rng = random.Random(zlib.crc32(data))
    out, pos = [], 0
    while pos < len(data):
        size = rng.choice((1, 1, 2, 3, 5, 8, 13, 21, 40)) if rng.random() < 0.7 else rng.randint(1, 40)
        out.append(data[pos:pos + size])
        pos += size
    return out


def pick(rng: random.Random, pool: Sequence[Any]) -> Any:
    """A value from `pool`; a fresh copy when it is a list or a dict, which the mutations then change in place."""
    return copy.deepcopy(rng.choice(pool))
