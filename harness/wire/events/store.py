"""The collector's events in columns instead of objects, so a soak's 40,000 events and more take a few MiB.

`ReceivedEvent` is what the collector keeps per event (the event, its receive time, line number and logcat
stamp); `EventStore` keeps those compactly and rebuilds them on reading, equal to the ones stored (not the
same objects). No parsing, no locking: `harness.wire.events.collector` does both.
"""
from __future__ import annotations

from array import array
from collections.abc import Iterable
from dataclasses import dataclass

from harness.wire.events.schema import AnomalyResult, BehaviourResult, Event, FeatureDebug, FuelResult, RuleEvent

__all__ = ["EventStore", "ReceivedEvent"]


@dataclass(frozen=True)
class ReceivedEvent:
    """An event as the harness received it: `received_wall_s` on the collector's clock (time.monotonic)."""

    event: Event
    received_wall_s: float
    line_no: int
    logcat_time: str | None = None  # the device's own stamp, as printed (device clock; no year)


# How each field of a frequent event is stored, one column per field: "f" a float (array 'd'), "b" a bool
# (array 'b'), "i" an int >= 0 or None (array 'q', None as -1), "m" a ModelRef and "s" a str or None (both as
# an index into a table of the distinct values), "v" a tuple of floats or None (flat in one array 'd', its
# length in another, -1 for None). A row is checked whole before it is stored, so the columns never disagree.
_COLUMNS: dict[type, tuple[tuple[str, str], ...]] = {
    AnomalyResult: (("t_s", "f"), ("infer_ms", "f"), ("model", "m"), ("score", "f"), ("threshold", "f"),
                    ("alarm", "b"), ("signal_scores", "v"), ("seq", "i")),
    FuelResult: (("t_s", "f"), ("infer_ms", "f"), ("model", "m"), ("fuel_rate_lph", "f"), ("seq", "i")),
    BehaviourResult: (("t_s", "f"), ("infer_ms", "f"), ("model", "m"), ("label", "i"), ("class_name", "s"),
                      ("probabilities", "v"), ("seq", "i")),
    RuleEvent: (("t_s", "f"), ("type", "s"), ("value", "f"), ("limit", "f"), ("signal", "s"), ("seq", "i")),
    FeatureDebug: (("t_s", "f"), ("infer_ms", "f"), ("window_start_t_s", "f"), ("features", "v"),
                   ("n_samples", "i"), ("seq", "i")),
}
_INT64_MAX = 2 ** 63 - 1


class _Table:
    """Distinct values (model references, class names, rule types) by index: each is stored once."""

    def __init__(self) -> None:
        self.values: list = []
        self._index: dict = {}

    def index(self, value: object) -> int:
        found = self._index.get(value)
        if found is None:
            found = self._index[value] = len(self.values)
            self.values.append(value)
        return found


class _Columns:
    """The events of one class, a column per field (see `_COLUMNS`)."""

    def __init__(self, cls: type, tables: _Table) -> None:
        self.cls = cls
        self.fields = _COLUMNS[cls]
        self._tables = tables
        self._columns: list[array] = []
        for _, code in self.fields:
            if code == "v":
                self._columns.append(array("h"))  # lengths
                self._columns.append(array("d"))  # the values, all rows flat
            else:
                self._columns.append(array({"f": "d", "b": "b", "i": "q", "m": "l", "s": "l"}[code]))

    def cells(self, event: object) -> list | None:
        """The row's cells, or None when a value does not fit a column (the store keeps that event whole)."""
        try:
            return self._cells(event)
        except TypeError:  # an unhashable value for a table
            return None

    def _cells(self, event: object) -> list | None:
        cells: list = []
        for name, code in self.fields:
            value = getattr(event, name)
            if code == "f":
                if type(value) is not float:
                    return None
                cells.append(value)
            elif code == "b":
                if type(value) is not bool:
                    return None
                cells.append(value)
            elif code == "i":
                if value is None:
                    cells.append(-1)
                elif type(value) is int and 0 <= value <= _INT64_MAX:
                    cells.append(value)
                else:
                    return None
            elif code in "ms":
                if code == "s" and value is not None and type(value) is not str:
                    return None
                cells.append(self._tables.index(value))
            else:
                if value is None:
                    cells += [-1, ()]
                elif type(value) is tuple and len(value) < 2 ** 15 and all(type(v) is float for v in value):
                    cells += [len(value), value]
                else:
                    return None
        return cells

    def append(self, cells: list) -> None:
        for column, cell in zip(self._columns, cells, strict=False):
            if type(cell) is tuple:
                column.extend(cell)
            else:
                column.append(cell)

    def rows(self) -> Iterable[object]:
        """Every stored event, rebuilt, in the order stored."""
        cls, fields, table = self.cls, self.fields, self._tables.values
        columns = self._columns
        n_rows = len(columns[0])
        offsets = {}  # column index of a "v" field's values -> next offset
        for row in range(n_rows):
            values = []
            c = 0
            for _, code in fields:
                if code == "v":
                    length, flat = columns[c][row], columns[c + 1]
                    if length < 0:
                        values.append(None)
                    else:
                        start = offsets.get(c, 0)
                        values.append(tuple(flat[start:start + length]))
                        offsets[c] = start + length
                    c += 2
                    continue
                cell = columns[c][row]
                if code == "b":
                    cell = bool(cell)
                elif code == "i":
                    cell = None if cell < 0 else cell
                elif code in "ms":
                    cell = table[cell]
                values.append(cell)
                c += 1
            yield cls(*values)


class EventStore:
    """The collector's events in columns instead of objects: a soak's 40,000 events and more take a few MiB.

    Frequent kinds are stored field by field (`_COLUMNS`): floats in arrays, model references, class names and
    rule types once each, the logcat stamp as UTF-8 in one byte array. Status lines (one a minute, with their
    counters) and any event whose values do not fit the columns are kept as objects. Events are rebuilt on
    reading: equal to the ones stored, not the same objects.
    """

    def __init__(self) -> None:
        self._tables = _Table()
        self._by_class = {cls: _Columns(cls, self._tables) for cls in _COLUMNS}
        self._classes: list[type | None] = list(_COLUMNS)  # index = code in `_codes`; None: kept whole
        self._code = {cls: i for i, cls in enumerate(self._classes)}
        self._codes = array("b")
        self._whole: list[object] = []
        self._received_wall_s = array("d")
        self._line_no = array("q")
        self._stamps = bytearray()
        self._stamp_ends = array("q")

    def __len__(self) -> int:
        return len(self._codes)

    def append(self, event: object, received_wall_s: float, line_no: int, stamp: str | None) -> None:
        columns = self._by_class.get(type(event))
        cells = columns.cells(event) if columns is not None else None
        if cells is None:
            self._whole.append(event)
            self._codes.append(-1)
        else:
            columns.append(cells)
            self._codes.append(self._code[type(event)])
        self._received_wall_s.append(received_wall_s)
        self._line_no.append(line_no)
        self._stamps += (stamp or "").encode("utf-8", "surrogatepass")  # a stamp is never empty: "" is None
        self._stamp_ends.append(len(self._stamps))

    def events(self) -> list:
        """Every event, in arrival order."""
        rows = {cls: iter(columns.rows()) for cls, columns in self._by_class.items()}
        whole = iter(self._whole)
        classes = self._classes
        return [next(whole) if code < 0 else next(rows[classes[code]]) for code in self._codes]

    def received(self) -> list[ReceivedEvent]:
        """Every event with its receive time, line number and logcat stamp, in arrival order."""
        out = []
        start = 0
        stamps = self._stamps
        for event, wall_s, line_no, end in zip(self.events(), self._received_wall_s, self._line_no,
                                               self._stamp_ends, strict=False):
            stamp = stamps[start:end].decode("utf-8", "surrogatepass") if end > start else None
            start = end
            out.append(ReceivedEvent(event, wall_s, line_no, stamp))
        return out

    def of_class(self, cls: type) -> list:
        """The events of one class, in arrival order."""
        columns = self._by_class.get(cls)
        if columns is None:
            return [event for event in self._whole if type(event) is cls]
        if any(type(event) is cls for event in self._whole):  # rare: put them back in arrival order
            return [event for event in self.events() if type(event) is cls]
        return list(columns.rows())

