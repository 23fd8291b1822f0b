"""The firmware's latest-value store: the last frame of each message it decodes (OBD-II answers by PID, J1939 frames by
PGN) and the plant values they carry, each decoded once through the vehicle profile's DBC; values older than
max_value_age_s read as missing. What it does not model: DM1 fault codes, multi-frame transport (BAM)."""
from __future__ import annotations

import cantools
import cantools.j1939

from harness.wire.dbc import Profile, j1939_valid_max, load_database
from harness.wire.link import CanFrame

#: An OBD-II answer to service 01 (current data) starts [length, 0x41, PID, ...].
_OBD_POSITIVE_RESPONSE = 0x41


class LatestValues:
    """The latest frame of each message the unit decodes, and the plant values they carry.

    Pure bookkeeping: `note(frame)` keeps the frame if it is one the profile decodes (cheap; called for
    every frame); `values(t_s)` decodes the kept frames through the profile's DBC (once per sample).
    A value older than `max_value_age_s` (scenario seconds; None = never) counts as no reading.
    """

    def __init__(self, profile: Profile, max_value_age_s: float | None = None) -> None:
        self.profile = profile
        self._database = load_database(profile.name)
        self._max_value_age_s = max_value_age_s
        if profile.name == "obd2":
            self._response_id = self._database.get_message_by_name("OBD2_RESPONSE").frame_id
            self._obd_bindings = {b.pid: b for b in profile.signals if b.pid is not None}
        else:
            self._pgn_messages = {
                cantools.j1939.pgn_from_frame_id(m.frame_id): m for m in self._database.messages
            }
            self._j1939_bindings = {
                m.name: [b for b in profile.signals if b.message == m.name] for m in self._database.messages
            }
        self._latest: dict[object, tuple[float, bytes]] = {}  # key (PID or PGN) -> (time, data)
        self._pgn_of_id: dict[int, int] = {}  # cantools' PGN extraction costs ~40 us; a bus has few IDs

    def _pgn(self, frame_id: int) -> int:
        pgn = self._pgn_of_id.get(frame_id)
        if pgn is None:
            pgn = self._pgn_of_id[frame_id] = cantools.j1939.pgn_from_frame_id(frame_id)
        return pgn

    def note(self, frame: CanFrame, t_s: float) -> int | None:
        """Keep `frame` if it carries values; returns the OBD PID of a positive service 01 answer, else None."""
        data = frame.data
        if self.profile.name == "obd2":
            if (
                not frame.is_extended
                and frame.can_id == self._response_id
                and len(data) >= 3
                and data[1] == _OBD_POSITIVE_RESPONSE
            ):
                self._latest[data[2]] = (t_s, data)
                return data[2]
            return None
        if frame.is_extended:
            # match by PGN, so a different priority or source address still reads (as a DTG does)
            pgn = self._pgn(frame.can_id)
            if pgn in self._pgn_messages:
                self._latest[pgn] = (t_s, data)
        return None

    def values(self, t_s: float) -> dict[str, float | None]:
        """Plant channel -> latest value (None when none, too old, or "not available" on the bus)."""
        out: dict[str, float | None] = {b.channel: None for b in self.profile.signals}
        for key, (seen_s, data) in self._latest.items():
            if self._max_value_age_s is not None and t_s - seen_s > self._max_value_age_s:
                continue
            # A frame's values depend on its bytes alone: decode each (profile, key, bytes) once.
            cache_key = (self.profile.name, key, bytes(data))
            found = _DECODED.get(cache_key)
            if found is None:
                if len(_DECODED) >= _MAX_DECODED:
                    _DECODED.clear()
                found = _DECODED[cache_key] = tuple(self._decode(key, data).items())
            out.update(found)
        return out

    def _decode(self, key: object, data: bytes) -> dict[str, float]:
        """The plant values one kept frame carries (none for a frame that does not decode)."""
        out: dict[str, float] = {}
        if self.profile.name == "obd2":
            binding = self._obd_bindings.get(key)
            if binding is None:
                return out
            try:
                decoded = self._database.decode_message(self._response_id, data, decode_choices=False)
            except (cantools.database.DecodeError, KeyError, ValueError):
                return out  # too short for its PID, or a PID the DBC does not describe
            if binding.signal in decoded:
                out[binding.channel] = binding.from_bus(float(decoded[binding.signal]))
            return out
        message = self._pgn_messages[key]
        try:
            raw = message.decode(data, decode_choices=False, scaling=False)
        except (cantools.database.DecodeError, ValueError):
            return out
        for binding in self._j1939_bindings[message.name]:
            signal = message.get_signal_by_name(binding.signal)
            value = raw.get(binding.signal)
            if value is None or value > j1939_valid_max(signal.length):
                continue
            out[binding.channel] = binding.from_bus(float(signal.conversion.raw_to_scaled(value)))
        return out


#: (profile, PID or PGN, frame bytes) -> the plant values the frame carries (`LatestValues.values`).
_DECODED: dict[tuple, tuple] = {}


_MAX_DECODED = 65536
