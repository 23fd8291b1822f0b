"""Drawing a fuzz input: pure random bytes, a mutation of one of the target's examples, or structure-aware.

`draw_input(rng, target, corpus)` picks the source by `SOURCES` weight: random bytes (printable text half the
time for a text parser; sizes drawn from an exponential, capped at the target's `max_size`), a mutation of an
example (`mutate`: one to eight of bit flips, interesting bytes, truncation at either end, deletion,
insertion, a chunk repeated up to 64 times, splicing with another example, a chunk copied over another, the
format's own tokens), or the target's own `structured(rng)` (a fifth of them mutated again). Everything comes
from the one `rng`, so a run is reproducible from its seed. No coverage feedback: the draws do not learn.
"""
from __future__ import annotations

import random
import string
from collections.abc import Sequence

from harness.tools.fuzz.target import FuzzTarget

__all__ = ["SOURCES", "draw_input", "mutate"]

#: How a run draws its inputs: (source, weight).
SOURCES = (("random", 0.2), ("mutation", 0.45), ("structured", 0.35))
#: Bytes that mean something to one of the formats (frame starts and ends, separators, digits), or are edges.
_INTERESTING = b"\x00\x01\x7f\x80\xff\xaa\x55\xd7\x47\x02\n\r$*,:{}[]\"\\ -.09eE"


def _random_input(rng: random.Random, target: FuzzTarget) -> bytes:
    size = int(min(target.max_size, rng.expovariate(1.0 / rng.choice((8, 40, 200)))))
    if target.text and rng.random() < 0.5:
        return "".join(rng.choice(string.printable) for _ in range(size)).encode()
    return rng.randbytes(size)


def mutate(rng: random.Random, data: bytes, corpus: Sequence[bytes], target: FuzzTarget) -> bytes:
    """`data` with one to eight generic mutations (`corpus` for splicing, the target's tokens for insertion),
    cut to the target's `max_size`."""
    out = bytearray(data)
    for _ in range(rng.choice((1, 1, 1, 2, 2, 3, 4, 8))):
        n = len(out)
        op = rng.randrange(11)
        if op == 0 and n:  # bit flips
            for _ in range(rng.randint(1, 4)):
                i = rng.randrange(n)
                out[i] ^= 1 << rng.randrange(8)
        elif op == 1 and n:
            out[rng.randrange(n)] = rng.choice(_INTERESTING)
        elif op == 2 and n:
            out[rng.randrange(n)] = rng.randrange(256)
        elif op == 3 and n:  # truncation, at either end
            cut = rng.randrange(n)
            out = out[:cut] if rng.random() < 0.7 else out[cut:]
        elif op == 4 and n:
            i = rng.randrange(n)
            del out[i:i + rng.randint(1, 16)]
        elif op == 5:
            i = rng.randint(0, n)
            out[i:i] = rng.randbytes(rng.randint(1, 16))
        elif op == 6 and n:  # a chunk repeated
            i = rng.randrange(n)
            chunk = out[i:i + rng.randint(1, 32)]
            out[i:i] = chunk * rng.randint(1, 64)
        elif op == 7 and corpus:  # splice with another example
            other = rng.choice(corpus)
            out = out[:rng.randint(0, n)] + other[rng.randint(0, len(other)):]
        elif op == 8 and n > 1:  # a chunk copied over another place
            i, j = rng.randrange(n), rng.randrange(n)
            length = rng.randint(1, 32)
            out[j:j + length] = out[i:i + length]
        elif op == 9 and target.tokens:
            i = rng.randint(0, n)
            out[i:i] = rng.choice(target.tokens)
        elif op == 10 and n:  # a byte range swapped for interesting bytes
            i = rng.randrange(n)
            out[i:i + 4] = bytes(rng.choice(_INTERESTING) for _ in range(rng.randint(0, 4)))
    return bytes(out[:target.max_size])


def draw_input(rng: random.Random, target: FuzzTarget, corpus: Sequence[bytes]) -> tuple[str, bytes]:
    """(source, input): pure random, a mutation of an example, or structure-aware (sometimes mutated too)."""
    roll = rng.random()
    if roll < SOURCES[0][1]:
        return "random", _random_input(rng, target)
    if roll < SOURCES[0][1] + SOURCES[1][1] and corpus:
        return "mutation", mutate(rng, rng.choice(corpus), corpus, target)
    data = target.structured(rng)  # not cut to max_size: a structure may legitimately be longer
    if rng.random() < 0.2:
        data = mutate(rng, data, corpus, target)
    return "structured", data
