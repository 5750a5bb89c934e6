"""When a waiting ticket will be offered a connector: a range, never a single falsely precise number.

Model. Each compatible connector gets a range of remaining time until it frees: 0 when free now; for a
known session, the site's session lengths *among those that lasted longer than this one so far* (p25..p80)
minus its elapsed time, capped by the charging curve once the car is at 80 % or more (DC tapers, the
driver may leave any minute); without history, the charging curve alone (state of charge and power); for
a busy connector with no known session, 0..p80 of a whole session. Then the line is played out: the
ticket's turn is the ``ahead + 1``-th connector free, and each free before it is taken by a ticket ahead
and frees again after a session plus a hand-over gap. The play runs once with the optimistic ends (low)
and once with the pessimistic ones (high); low is rounded down and high up to whole minutes. The estimate
leans late (p80, a floor of a few minutes, generous battery and taper guesses): drivers forgive an early
turn more than a late one. ``None`` when there is no basis for the needed turns.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Sequence

import msgspec

LOW_Q, HIGH_Q = 0.25, 0.80
MIN_REMAINING_HIGH_S = 300.0  # a session past every typical length still "ends in a few minutes", not now
UNKNOWN_GAP_HIGH_S = 300.0  # hand-over gap when the site has no record of one yet
TAPER_SOC = 80.0  # above this DC power falls off and most drivers unplug
TAPER_SLOWDOWN = 2.0  # pessimistic: power above TAPER_SOC averages half of what it is now
SMALL_BATTERY_KWH, LARGE_BATTERY_KWH = 20.0, 100.0
MIN_POWER_KW = 0.5  # below this the car is idling or trickling: its power says nothing about when it ends
GRANULARITY_S = 60


class ChargingNow(msgspec.Struct, frozen=True, kw_only=True):
    elapsed_s: float  # since the current session started
    energy_kwh: float | None  # delivered so far
    power_kw: float | None  # current power
    soc_percent: float | None  # vehicle state of charge, if the station reports it


class ConnectorOutlook(msgspec.Struct, frozen=True, kw_only=True):
    """One connector the ticket can use that is in service
    (faulted/offline ones are left out by the caller)."""

    free_now: bool  # offerable right now (nobody on it)
    charging: ChargingNow | None  # the session on it, if busy and known; None if busy but no session known


class SiteHistory(msgspec.Struct, frozen=True, kw_only=True):
    session_lengths_s: tuple[float, ...]  # recent finished sessions at the site (any order)
    handover_gaps_s: tuple[float, ...]  # time from a session's end to the next start on the same connector


class Eta(msgspec.Struct, frozen=True, kw_only=True):
    low_s: int
    high_s: int


Span = tuple[float, float]


def _clean(values: Sequence[float]) -> list[float]:
    return sorted(v for v in values if math.isfinite(v) and v >= 0)


def _quantile(ordered: Sequence[float], q: float) -> float:
    """Linear interpolation between the closest ranks of an ascending, non-empty sequence."""
    pos = q * (len(ordered) - 1)
    i = int(pos)
    j = min(i + 1, len(ordered) - 1)
    return ordered[i] + (ordered[j] - ordered[i]) * (pos - i)


def _span(ordered: Sequence[float]) -> Span:
    return _quantile(ordered, LOW_Q), _quantile(ordered, HIGH_Q)


def _by_charge(now: ChargingNow) -> Span | None:
    """Time to 80 % (optimistic, smallest plausible battery) .. to 100 % (largest battery, tapering)."""
    soc, power = now.soc_percent, now.power_kw
    if soc is None or power is None or not power >= MIN_POWER_KW or not 0 <= soc <= 100:
        return None
    # Delivered energy bounds the battery from below: it cannot exceed what the car holds now.
    known = now.energy_kwh * 100 / soc if now.energy_kwh is not None and soc > 0 else 0.0
    small, large = max(SMALL_BATTERY_KWH, known), max(LARGE_BATTERY_KWH, known)
    to_taper, tapered = max(TAPER_SOC - soc, 0.0), 100 - max(soc, TAPER_SOC)
    low = small / 100 * to_taper / power * 3600
    high = large / 100 * (to_taper + TAPER_SLOWDOWN * tapered) / power * 3600
    return low, high


def _remaining(connector: ConnectorOutlook, lengths: Sequence[float]) -> Span | None:
    """How long until this connector frees, or None without any basis."""
    if connector.free_now:
        return 0.0, 0.0
    now = connector.charging
    if now is None:  # busy, start unknown: it may end any moment or have just begun
        return (0.0, max(_quantile(lengths, HIGH_Q), MIN_REMAINING_HIGH_S)) if lengths else None
    physics = _by_charge(now)
    if lengths:
        # Condition on survival: a session that has lasted this long is one of the longer ones.
        longer = [s - now.elapsed_s for s in lengths if s > now.elapsed_s]
        low, high = _span(longer) if longer else (0.0, 0.0)
        if physics is not None and (now.soc_percent or 0.0) >= TAPER_SOC:  # near full: the car tells best
            low, high = min(low, physics[0]), min(high, physics[1])
    elif physics is not None:
        low, high = physics
    else:
        return None
    return low, max(high, MIN_REMAINING_HIGH_S)


def _turn(frees: list[float], ahead: int, cycle: float | None) -> float | None:
    """When the ``ahead + 1``-th free happens; each free is taken and frees again after ``cycle``."""
    heapq.heapify(frees)
    for _ in range(ahead):
        if not frees:
            return None
        t = heapq.heappop(frees)
        if cycle is not None:
            heapq.heappush(frees, t + cycle)
    return frees[0] if frees else None


def estimate_wait(ahead: int, connectors: Sequence[ConnectorOutlook], history: SiteHistory) -> Eta | None:
    """How long until the ticket is offered a connector, given `ahead` waiting tickets before it that compete
    for these connectors."""
    if ahead < 0:
        raise ValueError("ahead must be >= 0")
    lengths, gaps = _clean(history.session_lengths_s), _clean(history.handover_gaps_s)
    # Connectors with no basis are left out: counting only the others can make the turn later, never
    # earlier, so the range still leans late; if the others are not enough, there is no estimate.
    spans = [s for s in (_remaining(c, lengths) for c in connectors) if s is not None]
    session = _span(lengths) if lengths else None
    gap = _span(gaps) if gaps else (0.0, UNKNOWN_GAP_HIGH_S)
    low = _turn([s[0] for s in spans], ahead, session[0] + gap[0] if session else None)
    high = _turn([s[1] for s in spans], ahead, session[1] + gap[1] if session else None)
    if low is None or high is None or not math.isfinite(high):
        return None
    if high == 0:  # a connector is free for this ticket right now: certain
        return Eta(low_s=0, high_s=0)
    low_s = math.floor(low / GRANULARITY_S) * GRANULARITY_S
    high_s = max(math.ceil(high / GRANULARITY_S) * GRANULARITY_S, low_s + GRANULARITY_S)
    return Eta(low_s=low_s, high_s=high_s)
