"""The shared base of the YAML data-file targets (``scenario``, ``scenario-data``, ``rig``): trees to YAML, mutated.

A data-file target's structure-aware input (`structured_yaml`) starts from a valid tree the target draws (a
scenario, a rig), mutates it *as a tree* (`mutate_tree`: wrong types, boundary and non-finite numbers, unknown
and missing keys, values wrapped in lists and mappings), writes it as YAML (`yaml_text`: nested mappings in
block or flow style at random, as the bundled files mix them), then mutates the *text* (`yaml_text_mutation`:
tags, anchors and aliases, self-referencing and exponentially expanding aliases, non-string keys, deep
nesting, huge integers, several documents, byte-order marks, long scalars). Its examples
(`datafile_examples`) are the bundled files and a few generated trees. `run_load` makes a file loader a
target's `run`; `yaml_target` gives the settings every YAML target shares.

The writer is not a YAML emitter: it quotes every string as JSON (a JSON string is a YAML double-quoted
scalar) and knows only the types the trees hold; whatever else YAML allows is left to the text mutations.
"""
from __future__ import annotations

import datetime as dt
import json
import math
import random
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from harness.tools.fuzz.target import ROOT, FuzzTarget, pick

__all__ = ["YAML_TOKENS", "datafile_examples", "mutate_tree", "run_load", "structured_yaml", "yaml_target",
           "yaml_text", "yaml_text_mutation"]

#: The format's own byte strings, which the generic mutations insert.
YAML_TOKENS = (b": ", b"- ", b"&a ", b"*a", b"!!python/object:os.system ", b"!!binary ", b"\t", b"{", b"}", b"[",
                b"]", b"? ", b"'", b'"', b".inf", b"-.inf", b".nan", b"~", b"\\0", b"\n", b"#", b"|", b">", b"%",
                b"@", b"`", b"---\n", b"...\n", b"<<: ", b"0x1F", b"0o17", b"1_000", b"2024-01-15", b"yes",
                b"\xef\xbb\xbf")


def _yaml_scalar(value: Any) -> str:
    if value is None:
        return "~"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        if math.isnan(value):
            return ".nan"
        if math.isinf(value):
            return ".inf" if value > 0 else "-.inf"
        return repr(value)
    if isinstance(value, int):
        return str(value)
    if isinstance(value, (dt.date, dt.datetime)):
        return value.isoformat()
    return json.dumps(str(value))  # a YAML double-quoted scalar: JSON escapes are YAML escapes


def _yaml_flow(value: Any) -> str:
    if isinstance(value, dict):
        return "{" + ", ".join(f"{_yaml_flow(k)}: {_yaml_flow(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ", ".join(_yaml_flow(v) for v in value) + "]"
    return _yaml_scalar(value)


def _yaml_block(value: Any, rng: random.Random, indent: int = 0) -> list[str]:
    """`value` as YAML lines, nested mappings in block or flow style at random (as scenario files mix them)."""
    pad = " " * indent
    lines = []
    if isinstance(value, dict):
        for key, item in value.items():
            key_text = _yaml_flow(key) if isinstance(key, str) else (
                f"? {_yaml_flow(key)}\n{pad}" if isinstance(key, (list, dict)) else _yaml_scalar(key))
            if isinstance(item, (dict, list)) and item and rng.random() < 0.7:
                lines.append(f"{pad}{key_text}:")
                lines.extend(_yaml_block(item, rng, indent + 2))
            else:
                lines.append(f"{pad}{key_text}: {_yaml_flow(item)}")
    elif isinstance(value, list):
        for item in value:
            lines.append(f"{pad}- {_yaml_flow(item)}")
    else:
        lines.append(pad + _yaml_flow(value))
    return lines


#: Values a wrong-typed or out-of-range field gets: other types, boundaries, non-finite and absurd numbers.
_YAML_ODD = (None, True, False, "", "x", "udds", "urban", "overheating", "1e3", "a\x00b.csv", "\u00e9\u20ac", 0, -1, 1,
             0.5, -0.0, 119, 120, 2**31, 2**63, -2**63, 1e9, 1e308, -1e308, math.inf, -math.inf, math.nan, [], [1, "a"],
             {}, {"a": 1}, dt.date(2024, 1, 15), "x" * 300 + ".csv", 10**400, "virtual", "simulated", "obd2",
             "dtg-link-v2", "raw-can-v1", 500000, 250000)
#: Boundary numbers (and non-finite) only: each has some probability of being far out of range.
_YAML_NUMBERS = (0, -1, 1, 0.5, 1e-9, 59.9, 60, 119.9, 120, 121, 3.0, 3.01, 100, 100.01, 1e6, 1e9, 1e308, 10**400,
                 math.inf, -math.inf, math.nan, 2**64)


def _yaml_paths(value: Any, path: tuple = ()) -> Iterator[tuple]:
    if isinstance(value, dict):
        for key, item in value.items():
            yield path + (key,)
            yield from _yaml_paths(item, path + (key,))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield path + (index,)
            yield from _yaml_paths(item, path + (index,))


def _nudged(rng: random.Random, old: Any) -> Any:
    """A number near `old` (negated, scaled, off by a little), or a boundary number."""
    if isinstance(old, bool) or not isinstance(old, (int, float)) or rng.random() < 0.3:
        return rng.choice(_YAML_NUMBERS)
    try:
        return rng.choice((-old, old * 10, old + 0.5, old - 1, int(old)))
    except (OverflowError, ValueError):  # inf, nan, or an int too large for a float
        return 0


def mutate_tree(rng: random.Random, tree: dict, unknown_keys: tuple[str, ...]) -> None:
    """Wrong types, boundary numbers, unknown and missing keys, at random places in the tree."""
    for _ in range(rng.choice((0, 1, 1, 1, 2, 2, 3, 5))):
        paths = list(_yaml_paths(tree))
        if not paths:
            return
        path = rng.choice(paths)
        parent: Any = tree
        for key in path[:-1]:
            parent = parent[key]
        key = path[-1]
        roll = rng.random()
        if roll < 0.35:
            parent[key] = pick(rng, _YAML_ODD)
        elif roll < 0.6:
            parent[key] = _nudged(rng, parent[key])
        elif roll < 0.72 and isinstance(parent, dict):
            del parent[key]
        elif roll < 0.84 and isinstance(parent, dict):
            parent[rng.choice(unknown_keys + (1, None, True, 2.5))] = pick(rng, _YAML_ODD)
        elif roll < 0.92:
            parent[key] = [parent[key]]
        elif isinstance(parent, list):
            parent.append(rng.choice(parent) if parent else None)
        else:
            parent[key] = {"nested": parent[key]}


def yaml_text_mutation(rng: random.Random, text: str) -> str:
    """YAML-level attacks on the text: tags, anchors and aliases, complex keys, nesting, odd documents."""
    roll = rng.random()
    if roll < 0.25:
        return text
    if roll < 0.33:  # a tag on a value: python object tags must be refused, plain ones may pass
        tag = rng.choice(("!!python/object/apply:os.system [\"echo owned\"]", "!!python/name:os.system",
                          "!!binary aGVsbG8=", "!!timestamp 2024-01-15", "!!str 5", "!!int \"7\"", "!!float \"1e3\"",
                          "!custom x", "!!set {a, b}", "!!omap [{a: 1}]", "!!null ''", "!!bool yes", "!!merge <<"))
        lines = text.splitlines()
        index = rng.randrange(len(lines))
        if ":" in lines[index]:
            head = lines[index].split(":", 1)[0]
            lines[index] = f"{head}: {tag}"
        return "\n".join(lines) + "\n"
    if roll < 0.38:  # anchors and aliases, merged mappings
        return "base: &b {vehicle: passenger_car, seed: 1}\n" + text + rng.choice(
            ("extra: *b\n", "<<: *b\n", "copy: [*b, *b]\n", "missing: *nope\n"))
    if roll < 0.39:  # an alias that expands exponentially: must not take exponential time
        depth, fan = (3, 4) if rng.random() < 0.9 else (9, 9)
        bomb = ["l0: &l0 [x, x, x, x, x, x, x, x, x]"]
        for level in range(1, depth + 1):
            bomb.append(f"l{level}: &l{level} [" + ", ".join([f"*l{level - 1}"] * fan) + "]")
        return "\n".join(bomb) + "\n" + text
    if roll < 0.42:  # a node that contains itself
        return text + rng.choice(("loop: &r [*r]\n", "loop: &r {self: *r}\n", "anomalies: &r [*r]\n"))
    if roll < 0.47:  # a key that is not a string: a sequence or a mapping as a key
        return text + rng.choice(("? [a, b]\n: 1\n", "{[1]: 2}: 3\n", "? {a: 1}\n: x\n", "1: one\n", "~: null\n",
                                  "2024-01-15: date\n", "[x]: y\n"))
    if roll < 0.50:  # deep nesting (600 is past the recursion limit; PyYAML takes ~1 s to fail at 3000)
        depth = rng.choice((50, 600))
        return text + "deep: " + "[" * depth + "]" * depth + "\n"
    if roll < 0.53:  # an integer literal longer than Python converts by default
        lines = text.splitlines()
        index = rng.randrange(len(lines))
        if ":" in lines[index]:
            lines[index] = lines[index].split(":", 1)[0] + ": " + "9" * rng.choice((400, 4301, 6000))
        return "\n".join(lines) + "\n"
    if roll < 0.58:  # several documents, a byte-order mark, tabs, a document end, CR LF, flow noise
        return rng.choice(("---\n" + text + "---\nname: two\n", "\ufeff" + text, text.replace("  ", "\t", 1),
                           text + "...\n", text.replace("\n", "\r\n"), "%YAML 1.1\n---\n" + text, text + "}\n",
                           "- " + text, text + "name: dup\nname: dup2\n"))
    if roll < 0.62:  # a very long scalar
        return text + "description: " + json.dumps("x" * rng.choice((1000, 10_000))) + "\n"
    return text


def yaml_text(value: Any, rng: random.Random) -> str:
    """`value` (a data-file tree) as a YAML document, each nested mapping in block or flow style at random.

    >>> print(yaml_text({"name": "x", "route": {"cycle": "udds"}, "seed": 1}, random.Random(0)), end="")
    "name": "x"
    "route": {"cycle": "udds"}
    "seed": 1
    """
    return "\n".join(_yaml_block(value, rng)) + "\n"


def structured_yaml(tree: Callable[[random.Random], dict],
                    unknown_keys: tuple[str, ...]) -> Callable[[random.Random], bytes]:
    """A target's `structured`: a valid tree from `tree(rng)`, mutated as a tree (with `unknown_keys` among the
    keys it adds), written as YAML, then mutated as text."""
    def structured(rng: random.Random) -> bytes:
        data = tree(rng)
        mutate_tree(rng, data, unknown_keys)
        return yaml_text_mutation(rng, yaml_text(data, rng)).encode("utf-8", "surrogatepass")

    return structured


def datafile_examples(folder: str, tree: Callable[[random.Random], dict], seed: int,
                      limit: int = 64) -> Callable[[], list[bytes]]:
    """A target's `examples`: the bundled ``ROOT/folder/*.yaml`` files (at most `limit`), then 8 generated trees."""
    def examples() -> list[bytes]:
        rng = random.Random(seed)
        bundled = [path.read_bytes() for path in sorted((ROOT / folder).glob("*.yaml"))[:limit]]
        return bundled + [yaml_text(tree(rng), rng).encode() for _ in range(8)]

    return examples


def run_load(loader: Callable[[Path], object], filename: str) -> Callable[[bytes, Path], object]:
    def run(data: bytes, workdir: Path) -> object:
        path = workdir / filename
        path.write_bytes(data)
        return loader(path)

    return run


def yaml_target(name: str, parser: str, accepted: tuple[type[BaseException], ...],
                run: Callable[[bytes, Path], object], examples: Callable[[], list[bytes]],
                structured: Callable[[random.Random], bytes],
                prepare: Callable[[Path], None] | None = None) -> FuzzTarget:
    """A YAML data-file target: text of up to 4 KiB, the YAML tokens, ``.yaml`` reproducers."""
    return FuzzTarget(name, parser, accepted, run, examples, structured, max_size=4096, text=True,
                      tokens=YAML_TOKENS, suffix=".yaml", prepare=prepare)
