"""The app's rule-based event detector: threshold rules on the 1 Hz samples, beside the models.

The reference app raised harsh-braking, harsh-acceleration, overheating and low-fuel alerts from rules; this
detector keeps those and adds over-revving, excessive idling and erratic driving, which are rules of thumb
that DTG regulations and fleet tools also use, and stale data (a signal that stopped arriving: a bus fault, a
silent ECU), per signal. Each rule fires once when its condition starts and again only
after it has cleared (a hold-off), so one manoeuvre gives one event.

Limits are per vehicle where the vehicle matters (redline) and otherwise fixed; they are documented in
`docs/events.md`. What the detector does not do: learn, adapt limits to the driver, or look at position.
"""
from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass

from harness.wire.signals import SIGNALS

_SPEED, _RPM, _COOLANT, _FUEL, _ACCEL = (SIGNALS.index(name) for name in
                                         ("vehicle_speed", "engine_rpm", "coolant_temp", "fuel_level",
                                          "acceleration_x"))


@dataclass(frozen=True)
class RuleLimits:
    harsh_braking_mps2: float = -4.0  # deceleration, from the unit's accelerometer
    harsh_acceleration_mps2: float = 3.5
    overheating_c: float = 105.0
    low_fuel_pct: float = 10.0
    over_revving_rpm: float = 5650.0  # 87 % of a 6500 rpm redline; see `for_redline`
    idle_limit_s: float = 300.0  # parked with the engine running longer than this
    erratic_window_s: int = 30
    erratic_swings: int = 4  # sign changes of strong acceleration within the window
    erratic_accel_mps2: float = 1.5
    # A signal with no reading for longer than this is stale (it had one before). The firmware already blanks a
    # value older than its max age (1.5 s on the simulated rig); J1939's slowest group (VP, position) is every 5 s.
    stale_after_s: float = 5.0

    @classmethod
    def for_redline(cls, redline_rpm: float) -> RuleLimits:
        """Limits for a vehicle (the unit is configured with the redline of the vehicle it is fitted to)."""
        return cls(over_revving_rpm=round(0.87 * redline_rpm, -1))


@dataclass(frozen=True)
class RuleHit:
    type: str
    t_s: float
    value: float
    limit: float
    signal: str | None = None  # stale_data: the signal concerned


class RuleDetector:
    """Feed 1 Hz samples in time order; each call returns the events that start at that sample."""

    def __init__(self, limits: RuleLimits = RuleLimits()):
        self.limits = limits
        self._active: set[str] = set()
        self._idle_since: float | None = None
        self._idle_reported = False
        self._strong: deque[tuple[float, int]] = deque()
        self._last_reading_s: dict[int, float] = {}  # signal index -> time of its newest reading

    def _edge(self, kind: str, condition: bool) -> bool:
        """True when `condition` becomes true (one event per episode)."""
        if condition and kind not in self._active:
            self._active.add(kind)
            return True
        if not condition:
            self._active.discard(kind)
        return False

    def feed(self, t_s: float, sample: list[float] | tuple[float, ...]) -> list[RuleHit]:
        lim = self.limits
        speed, rpm, coolant, fuel, accel = (sample[i] for i in (_SPEED, _RPM, _COOLANT, _FUEL, _ACCEL))
        known = {name: not math.isnan(value) for name, value in
                 (("speed", speed), ("rpm", rpm), ("coolant", coolant), ("fuel", fuel), ("accel", accel))}
        hits: list[RuleHit] = []
        if known["accel"] and self._edge("harsh_braking", accel <= lim.harsh_braking_mps2):
            hits.append(RuleHit("harsh_braking", t_s, accel, lim.harsh_braking_mps2))
        if known["accel"] and self._edge("aggressive_acceleration", accel >= lim.harsh_acceleration_mps2):
            hits.append(RuleHit("aggressive_acceleration", t_s, accel, lim.harsh_acceleration_mps2))
        if known["coolant"] and self._edge("overheating", coolant >= lim.overheating_c):
            hits.append(RuleHit("overheating", t_s, coolant, lim.overheating_c))
        if known["fuel"] and self._edge("low_fuel", fuel <= lim.low_fuel_pct):
            hits.append(RuleHit("low_fuel", t_s, fuel, lim.low_fuel_pct))
        if known["rpm"] and self._edge("over_revving", rpm >= lim.over_revving_rpm):
            hits.append(RuleHit("over_revving", t_s, rpm, lim.over_revving_rpm))
        parked = known["speed"] and known["rpm"] and speed < 0.5 and rpm > 300.0
        if parked:
            if self._idle_since is None:
                self._idle_since, self._idle_reported = t_s, False
            idle_s = t_s - self._idle_since
            if idle_s >= lim.idle_limit_s and not self._idle_reported:
                self._idle_reported = True
                hits.append(RuleHit("excessive_idling", t_s, idle_s, lim.idle_limit_s))
        else:
            self._idle_since = None
        if known["accel"] and abs(accel) >= lim.erratic_accel_mps2:
            sign = 1 if accel > 0 else -1
            if not self._strong or self._strong[-1][1] != sign:
                self._strong.append((t_s, sign))
        while self._strong and self._strong[0][0] <= t_s - lim.erratic_window_s:
            self._strong.popleft()
        if self._edge("erratic_driving", len(self._strong) > lim.erratic_swings):
            hits.append(RuleHit("erratic_driving", t_s, float(len(self._strong) - 1), float(lim.erratic_swings)))
        hits += self._stale(t_s, sample)
        return hits

    def _stale(self, t_s: float, sample: list[float] | tuple[float, ...]) -> list[RuleHit]:
        """stale_data, once per signal and episode: a signal that had a reading has had none for > stale_after_s
        (a bus fault, a silent ECU). A signal never read (not on this unit's bus) is not stale: it is absent."""
        hits = []
        for i, value in enumerate(sample):
            if not math.isnan(value):
                self._last_reading_s[i] = t_s
            age_s = t_s - self._last_reading_s.get(i, t_s)
            if self._edge(f"stale_data:{i}", age_s > self.limits.stale_after_s):
                hits.append(RuleHit("stale_data", t_s, age_s, self.limits.stale_after_s, SIGNALS[i]))
        return hits
