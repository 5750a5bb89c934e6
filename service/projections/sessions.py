"""Charging sessions, one ``SessionView`` per ``session-<id>`` stream, out-of-order safe.

The status comes from the event type where that is unambiguous (``session.ended`` is ended whatever the
payload says) and from ``data.status`` in any casing otherwise. Energy is reported in Wh
(``metrics.energyConsumed``) or by a meter in Wh or kWh; numbers may arrive as strings.
"""

from __future__ import annotations

from datetime import datetime

import msgspec

from service.eventlog.model import RecordedEvent
from service.projections.resources import EnergyReport, Measured, Metrics, SessionPayload, decode, time_of

SESSION_STATUSES = ("created", "started", "ended", "cancelled", "failed")
SESSION_EVENTS = (
    "session.created",
    "session.started",
    "session.updated",
    "session.ended",
    "session.cancelled",
    "session.start_failure",
    "session.stop_failure",
)
_BY_TYPE = {
    "session.created": "created",
    "session.started": "started",
    "session.ended": "ended",
    "session.cancelled": "cancelled",
    "session.start_failure": "failed",
}
_FINISHED = ("ended", "cancelled", "failed")


class Money(msgspec.Struct, frozen=True, gc=False):
    amount: float | None
    currency: str | None


class SessionView(msgspec.Struct, frozen=True, gc=False, kw_only=True):
    id: str
    user_id: str | None
    chargestation_id: str | None
    connector_id: str | None
    status: str
    started_at: datetime | None
    ended_at: datetime | None
    energy_kwh: float | None
    power_kw: float | None
    soc_percent: float | None
    cost: Money | None
    updated_at: datetime


def evolve_session(session: SessionView | None, event: RecordedEvent) -> SessionView | None:
    if event.type not in SESSION_EVENTS:
        return session
    payload = decode(SessionPayload, event.data)
    updated_at = time_of(payload.updated_at, event.occurred_at)
    if session is not None and updated_at < session.updated_at:
        return session  # an older report delivered late
    status = _BY_TYPE.get(event.type) or normalise_session_status(payload.status)
    if status is None:
        status = session.status if session else "created"
    metrics = payload.metrics or Metrics()
    report = payload.energy_report or EnergyReport()
    started_at = time_of(metrics.charging_start, event.occurred_at) if metrics.charging_start else None
    stopped_at = time_of(metrics.charging_stop, event.occurred_at) if metrics.charging_stop else None
    if status not in _FINISHED or (started_at and stopped_at and stopped_at < started_at):
        stopped_at = None  # a stop time before the start (seen in eDRV's own example) is no stop
    known = session
    return SessionView(
        id=payload.id,
        user_id=payload.user or (known.user_id if known else None),
        chargestation_id=payload.chargestation or (known.chargestation_id if known else None),
        connector_id=payload.connector or (known.connector_id if known else None),
        status=status,
        started_at=started_at or (known.started_at if known else None),
        ended_at=stopped_at or (known.ended_at if known and status in _FINISHED else None),
        energy_kwh=_max(_energy_kwh(metrics, report), known.energy_kwh if known else None),
        power_kw=_kilo(report.power, "w") if report.power else (known.power_kw if known else None),
        soc_percent=(
            report.state_of_charge.value
            if report.state_of_charge and report.state_of_charge.value is not None
            else (known.soc_percent if known else None)
        ),
        cost=(
            Money(payload.cost.amount, payload.cost.currency and payload.cost.currency.upper())
            if payload.cost
            else (known.cost if known else None)
        ),
        updated_at=updated_at,
    )


def normalise_session_status(raw: str | None) -> str | None:
    """``Started`` / ``STARTED`` / ``started`` → ``started``; anything unknown → None."""
    if raw is None:
        return None
    status = raw.strip().lower()
    if status in ("canceled", "cancelled"):
        return "cancelled"
    return status if status in SESSION_STATUSES else None


def _max(reported: float | None, known: float | None) -> float | None:
    """A session's energy never goes down: a late or reset report of less is not news."""
    if reported is None or known is None:
        return known if reported is None else reported
    return max(reported, known)


def _energy_kwh(metrics: Metrics, report: EnergyReport) -> float | None:
    """``metrics.energyConsumed`` is Wh; without it, the meter reading minus the start reading."""
    if metrics.energy_consumed is not None:
        return metrics.energy_consumed / 1000
    meter = _kilo(report.energy_meter, "wh") if report.energy_meter else None
    if meter is not None and metrics.meter_start is not None:
        return max(meter - metrics.meter_start / 1000, 0.0)
    return None


def _kilo(measured: Measured, base_unit: str) -> float | None:
    """A value in ``base_unit`` or kilo-``base_unit``, in kilo (W → kW, Wh → kWh)."""
    if measured.value is None:
        return None
    unit = (measured.unit or "").strip().lower()
    return measured.value / 1000 if unit == base_unit else measured.value
