"""Data files (scenarios, rigs): safe YAML with line numbers, and a validator that collects every problem.

Every data file is read through `read_limited`, which refuses a file beyond its kind's size (`MAX_BYTES`) before
reading it: a mistaken 50 MB file is one line of error in milliseconds, never gigabytes of parser memory.

Files are data: PyYAML's safe loader composes them, and any tag beyond plain maps, lists and scalars
(`!!python/object`, ...) is rejected, so loading a file can never run code. Every value remembers the line it
came from, so a problem is reported as `file:line: field.path: message`, naming the valid choices.
"""
from __future__ import annotations

import math
import os
from dataclasses import dataclass
from typing import Any

import yaml

from harness.core.errors import DtgHilError


@dataclass(frozen=True)
class Problem:
    field_path: str
    message: str
    line: int | None = None
    column: int | None = None  # YAML syntax errors: where on the line the parser stopped


class DataFileError(DtgHilError, ValueError):
    """A data file (scenario, rig) is invalid; `problems` lists every problem found, with field and line."""

    def __init__(self, file: str, problems: list[Problem]):
        self.file = file
        self.problems = problems
        super().__init__(self.format())

    def format(self) -> str:
        lines = []
        for p in self.problems:
            where = f"{self.file}:{p.line}" if p.line else self.file
            where += f":{p.column}" if p.line and p.column else ""
            lines.append(f"{where}: {p.field_path}: {p.message}" if p.field_path else f"{where}: {p.message}")
        return "\n".join(lines)


_PLAIN_TAGS = ("tag:yaml.org,2002:map", "tag:yaml.org,2002:seq")
#: The most values (mappings, lists, scalars) a data file may hold once its aliases are expanded. Bundled
#: scenarios hold a few hundred; aliases nested a few levels deep ("billion laughs") would expand to billions.
MAX_VALUES = 100_000


#: The deepest nesting of flow collections (`[`, `{`) a data file may have. Ours nest a few levels; PyYAML's
#: scanner does work proportional to the depth for every token, so a few thousand levels take seconds.
MAX_FLOW_DEPTH = 100


class _TooManyValues(DtgHilError):
    pass


def _flow_depth(text: str) -> int:
    """The deepest nesting of `[` and `{` outside quotes and comments, an upper bound of the YAML's flow depth
    (brackets inside plain scalars count too, which only matters for text no data file holds)."""
    depth = deepest = 0
    quote = None
    comment = False
    for ch in text:
        if comment:
            comment = ch != "\n"
        elif quote:
            quote = None if ch == quote else quote
        elif ch in "'\"":
            quote = ch
        elif ch == "#":
            comment = True
        elif ch in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif ch in "]}":
            depth = max(depth - 1, 0)
    return deepest


def _to_python(node: yaml.Node, path: str, lines: dict[str, int], loader: yaml.SafeLoader,
               budget: list[int]) -> Any:
    """Convert a composed YAML node to Python data, recording the line of every field path. `budget` holds how
    many more values may be made; aliases share nodes, so each visit counts."""
    budget[0] -= 1
    if budget[0] < 0:
        raise _TooManyValues
    lines.setdefault(path, node.start_mark.line + 1)
    if not isinstance(node, yaml.ScalarNode) and node.tag not in _PLAIN_TAGS:
        raise yaml.constructor.ConstructorError(None, None, f"tag {node.tag!r} is not allowed", node.start_mark)
    if isinstance(node, yaml.MappingNode):
        out: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            key = loader.construct_object(key_node, deep=True)
            child = f"{path}.{key}" if path else str(key)
            lines[child] = key_node.start_mark.line + 1
            out[key] = _to_python(value_node, child, lines, loader, budget)
        return out
    if isinstance(node, yaml.SequenceNode):
        return [_to_python(item, f"{path}[{i}]", lines, loader, budget) for i, item in enumerate(node.value)]
    return loader.construct_object(node, deep=True)


def parse_yaml(text: str, file: str, error: type[DataFileError] = DataFileError) -> tuple[Any, dict[str, int]]:
    """Safe-load YAML text, returning the data and a map from field path to line number."""
    if _flow_depth(text) > MAX_FLOW_DEPTH:
        raise error(file, [Problem("", f"not valid YAML here: nested too deeply (more than {MAX_FLOW_DEPTH} "
                                       f"levels of [ and {{)")])
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line, column = (mark.line + 1, mark.column + 1) if mark is not None else (None, None)
        raise error(file, [Problem("", f"not valid YAML: {getattr(exc, 'problem', exc)}", line, column)]) from None
    except RecursionError:  # PyYAML's composer recurses once per level of nesting
        raise error(file, [Problem("", "not valid YAML here: nested too deeply")]) from None
    if node is None:
        return None, {}
    lines: dict[str, int] = {}
    try:
        return _to_python(node, "", lines, yaml.SafeLoader(""), [MAX_VALUES]), lines
    except _TooManyValues:
        raise error(file, [Problem("", f"not plain YAML data: more than {MAX_VALUES} values once its aliases are "
                                       f"expanded")]) from None
    except yaml.YAMLError as exc:  # e.g. a !!python tag: scenario files are data only, never objects
        mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
        raise error(file, [Problem("", f"not plain YAML data: {getattr(exc, 'problem', exc)}",
                                           mark.line + 1 if mark else None)]) from None
    except RecursionError:  # an alias to a node that contains it, or nesting past Python's stack
        raise error(file, [Problem("", "not plain YAML data: an alias that contains itself, or nested too "
                                       "deeply")]) from None
    except (TypeError, ValueError, AttributeError, KeyError) as exc:
        # PyYAML's constructors fail this way on data no file of ours holds: a list or mapping as a key, an
        # integer of more than 4300 digits, an empty !!timestamp, a !!bool that is not one.
        raise error(file, [Problem("", f"not plain YAML data: {type(exc).__name__}: {exc}")]) from None


# --- validation -------------------------------------------------------------------------------------------

class Checker:
    """Collects problems while reading fields; each reader returns a usable default after a problem."""

    def __init__(self, lines: dict[str, int]):
        self.lines = lines
        self.problems: list[Problem] = []

    def report(self, path: str, message: str) -> None:
        """Record a problem at a field path, with the line of that field or of its nearest parent."""
        where = path
        while where not in self.lines and where:
            where = where.rsplit(".", 1)[0] if "." in where else where.split("[", 1)[0] if "[" in where else ""
        self.problems.append(Problem(path, message, self.lines.get(where)))

    def mapping(self, data: Any, path: str, allowed: tuple[str, ...] | dict, required: tuple[str, ...] = ()) -> dict:
        if not isinstance(data, dict):
            self.report(path, f"expected a mapping with keys {', '.join(allowed)}; got {kind_of(data)}")
            return {}
        for key in data:
            if key not in allowed:
                self.report(f"{path}.{key}" if path else str(key),
                            f"unknown key '{key}'; expected one of: {', '.join(allowed)}")
        for key in required:
            if key not in data:
                self.report(f"{path}.{key}" if path else key, "is required")
        return data

    def number(self, data: dict, key: str, path: str, default: float | None, lo: float | None = None,
               hi: float | None = None, lo_open: bool = False, integer: bool = False) -> float | None:
        full = f"{path}.{key}" if path else key
        if key not in data:
            return default
        value = data[key]
        wanted = "an integer" if integer else "a number"
        if isinstance(value, bool) or not isinstance(value, (int, float)) or (integer and not isinstance(value, int)):
            self.report(full, f"expected {wanted}; got {kind_of(value)} {value!r}{_yaml_number_hint(value)}")
            return default
        try:
            finite = math.isfinite(value)
        except OverflowError:  # an integer beyond float range
            finite = False
        if not finite:
            shown = repr(value) if isinstance(value, float) else "an integer beyond float range"
            self.report(full, f"expected a finite number; got {shown}")
            return default
        if lo is not None and (value <= lo if lo_open else value < lo):
            self.report(full, f"must be {'>' if lo_open else '>='} {lo:g}; got {value:g}")
            return default
        if hi is not None and value > hi:
            self.report(full, f"must be <= {hi:g}; got {value:g}")
            return default
        return value

    def choice(self, data: dict, key: str, path: str, choices: tuple[str, ...] | list[str], default: str | None,
               what: str) -> str | None:
        full = f"{path}.{key}" if path else key
        if key not in data:
            return default
        value = data[key]
        if not isinstance(value, str) or value not in choices:
            shown = f"'{value}'" if isinstance(value, str) else f"{kind_of(value)} {value!r}"
            self.report(full, f"unknown {what} {shown}; expected one of: {', '.join(choices)}")
            return default
        return value

    def text(self, data: dict, key: str, path: str, default: str) -> str:
        if key not in data:
            return default
        if not isinstance(data[key], str):
            self.report(f"{path}.{key}" if path else key, f"expected text; got {kind_of(data[key])}")
            return default
        return data[key]


def _yaml_number_hint(value: Any) -> str:
    """A hint for text that Python reads as a number but YAML 1.1 does not: `1e6` and `1.0e6` are text to PyYAML,
    `1.0e+6` is a number."""
    if not isinstance(value, str):
        return ""
    try:
        float(value)
    except ValueError:
        return ""
    return " (in YAML an exponent needs a decimal point and a sign: write 1.0e+6, not 1e6)"


def kind_of(value: Any) -> str:
    return {dict: "a mapping", list: "a list", str: "text", bool: "a boolean", type(None): "nothing"}.get(
        type(value), "a number" if isinstance(value, (int, float)) else type(value).__name__)


#: The largest file of each kind the harness reads, in bytes: scenarios and rigs are a few kB (a scenario of 1 MiB
#: would be thousands of anomalies); a 72-hour 1 Hz drive cycle CSV is about 5 MB; a CAN recording of a 72-hour drive
#: in BLF (compressed) is about 200 MB; a models manifest a few kB.
MAX_BYTES: dict[str, int] = {
    "scenario": 1 << 20,
    "rig": 1 << 20,
    "drive cycle": 16 << 20,
    "recording": 512 << 20,
    "manifest": 1 << 20,
}


class FileTooLarge(DtgHilError, ValueError):
    """A data file is larger than its kind allows (`MAX_BYTES`); the message is one line: `file: problem`."""

    def __init__(self, path: str | os.PathLike, problem: str):
        self.path, self.problem = str(path), problem
        super().__init__(f"{self.path}: {problem}")


def size_problem(path: str | os.PathLike, kind: str) -> str | None:
    """Why the file at `path` is too large to read as a `kind` (a key of `MAX_BYTES`), or None (also when it
    cannot be stat'ed: the read that follows names that)."""
    limit = MAX_BYTES[kind]
    try:
        size = os.stat(path).st_size
    except OSError:
        return None
    if size > limit:
        return (f"{size / (1 << 20):.1f} MiB is too large for a {kind} file (at most {limit / (1 << 20):g} MiB); "
                f"is it the right file?")
    return None


def read_limited(path: str | os.PathLike, kind: str) -> bytes:
    """The bytes of the file at `path`, a `kind` of data file (a key of `MAX_BYTES`): `FileTooLarge` when it holds
    more than the kind's limit, found before reading (and checked again while reading: a file that grows, a FIFO).
    `OSError` as `open` raises it."""
    limit = MAX_BYTES[kind]
    problem = size_problem(path, kind)
    if problem is None:
        with open(path, "rb") as stream:
            raw = stream.read(limit + 1)
        if len(raw) <= limit:
            return raw
        problem = f"more than {limit / (1 << 20):g} MiB is too large for a {kind} file; is it the right file?"
    raise FileTooLarge(path, problem)


def decode_text(raw: bytes, file: str, error: type[DataFileError] = DataFileError) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise error(file, [Problem("", f"not UTF-8 text ({exc.reason} at byte {exc.start})")]) from None


# --- JSON Schema --------------------------------------------------------------------------------------------

#: The JSON Schema dialect of `dtg-hil scenario schema` and `dtg-hil rig schema`.
JSON_SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"


def number_schema(lo: float | None = None, hi: float | None = None, lo_open: bool = False,
                  integer: bool = False) -> dict[str, Any]:
    """The JSON Schema of what `Checker.number` accepts with the same limits.

    >>> number_schema(lo=0.0, hi=1.0, lo_open=True)
    {'type': 'number', 'exclusiveMinimum': 0.0, 'maximum': 1.0}
    """
    schema: dict[str, Any] = {"type": "integer" if integer else "number"}
    if lo is not None:
        schema["exclusiveMinimum" if lo_open else "minimum"] = lo
    if hi is not None:
        schema["maximum"] = hi
    return schema


def pick_properties(spec: dict[str, Any], keys: tuple[str, ...]) -> dict[str, Any]:
    """The properties of a mapping, one for each key its validator allows, in the validator's order: a key the
    validator allows and `spec` lacks is a KeyError, so a schema cannot fall behind its validator."""
    return {key: spec[key] for key in keys}


def object_schema(properties: dict[str, Any], required: tuple[str, ...] = (), **extra: Any) -> dict[str, Any]:
    """A mapping with these keys only (as `Checker.mapping` checks it)."""
    schema: dict[str, Any] = {"type": "object", "properties": properties, "additionalProperties": False}
    if required:
        schema["required"] = list(required)
    return {**schema, **extra}
