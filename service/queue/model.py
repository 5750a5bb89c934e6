"""The driver queue's state: tickets, offers, a site's connectors as the queue sees them, and policy.

Pure data (msgspec Structs); nothing here knows about the log, the database or HTTP. A queue exists per
eDRV location; its state is the fold of the ``queue-<location_id>`` stream (see ``fold.py``).
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from typing import Literal

import msgspec

TicketStatus = Literal["waiting", "offered", "held", "fulfilled", "no_show", "cancelled", "removed"]
LIVE: tuple[TicketStatus, ...] = ("waiting", "offered", "held")

ConnectorState = Literal["offerable", "in_use", "faulted", "unavailable", "offline", "unknown"]
"""What a connector means to the queue. ``in_use``: a car is (or is about to be) plugged in; which car
only the session tells. ``faulted`` / ``unavailable`` / ``offline`` end any offer on it."""


_IN_USE = frozenset({"preparing", "charging", "suspended_ev", "suspended_evse", "finishing", "occupied"})
_BLOCKED: dict[str, ConnectorState] = {
    "faulted": "faulted",
    "unavailable": "unavailable",
    "reserved": "unavailable",  # reserved by someone else, through OCPP: not ours to offer
}


def classify_connector(
    status: str, *, online: bool, station_active: bool, connector_active: bool
) -> ConnectorState:
    """A connector's OCPP status (normalised, snake case) and its station's state, as the queue reads them."""
    if not online:
        return "offline"
    if not (station_active and connector_active):
        return "unavailable"
    if status == "available":
        return "offerable"
    if status in _IN_USE:
        return "in_use"
    return _BLOCKED.get(status, "unknown")


def normalise_connector_type(raw: str) -> str:
    """``Type2`` / ``TYPE_2`` / ``type 2`` → ``TYPE2``: drivers and stations spell types differently."""
    return re.sub(r"[^A-Z0-9]", "", raw.upper())


class SiteConnector(msgspec.Struct, frozen=True, kw_only=True):
    chargestation_id: str
    connector_id: str
    type: str | None
    power_kw: float | None
    state: ConnectorState

    @property
    def spot(self) -> str:
        return spot_of(self.chargestation_id, self.connector_id)


def spot_of(chargestation_id: str, connector_id: str) -> str:
    """One string naming a connector (connector ids are only unique within their station)."""
    return f"{chargestation_id}/{connector_id}"


class Requirements(msgspec.Struct, frozen=True, kw_only=True):
    """What a driver can use: any of ``connector_types`` (empty: any type), at least ``min_power_kw``,
    and only ``chargestation_ids`` when given."""

    connector_types: tuple[str, ...] = ()
    min_power_kw: float | None = None
    chargestation_ids: tuple[str, ...] = ()

    def accepts(self, connector: SiteConnector) -> bool:
        if self.chargestation_ids and connector.chargestation_id not in self.chargestation_ids:
            return False
        if self.connector_types and (
            connector.type is None
            or normalise_connector_type(connector.type)
            not in {normalise_connector_type(t) for t in self.connector_types}
        ):
            return False
        return self.min_power_kw is None or (
            connector.power_kw is not None and connector.power_kw >= self.min_power_kw
        )


class Policy(msgspec.Struct, frozen=True, kw_only=True):
    """Per location, set by operators."""

    respond_within_s: int = 180
    plug_in_within_s: int = 600
    max_snoozes: int = 2
    max_queue_length: int = 200
    paused: bool = False


class Offer(msgspec.Struct, frozen=True, kw_only=True):
    chargestation_id: str
    connector_id: str
    offered_at: datetime
    respond_by: datetime
    hold_until: datetime | None = None
    """Set when the driver accepts: the plug-in deadline."""

    @property
    def spot(self) -> str:
        return spot_of(self.chargestation_id, self.connector_id)


class Ticket(msgspec.Struct, frozen=True, kw_only=True):
    id: str
    location_id: str
    driver_id: str
    edrv_user_id: str | None
    requirements: Requirements
    status: TicketStatus
    rank: int
    """Join order; lower is earlier. Never changes: snoozing keeps the driver's place."""
    priority: bool = False
    """Back at the head of the line after an offer was taken away through no fault of the driver."""
    offer: Offer | None = None
    snoozes_used: int = 0
    snoozed_until: datetime | None = None
    """After a snooze the ticket keeps its place but is passed over for new offers until then."""
    session_id: str | None = None
    reason: str | None = None
    """Why the ticket ended (removed, no-show) or last lost its offer (revoked)."""
    idempotency_key: str | None = None
    created_at: datetime
    updated_at: datetime
    version: int = 1
    """Counts the ticket's own events: changes whenever the ticket does."""

    @property
    def live(self) -> bool:
        return self.status in LIVE

    @property
    def deadline(self) -> datetime | None:
        """When the ticket must next change by itself (no answer, no show, snooze over), if ever."""
        if self.status == "offered" and self.offer is not None:
            return self.offer.respond_by
        if self.status == "held" and self.offer is not None:
            return self.offer.hold_until
        if self.status == "waiting":
            return self.snoozed_until
        return None

    def line_key(self) -> tuple[bool, int]:
        return (not self.priority, self.rank)

    def eligible_at(self, now: datetime) -> bool:
        """Waiting and not snoozed: may be offered a connector now."""
        return self.status == "waiting" and (self.snoozed_until is None or self.snoozed_until <= now)


class QueueState(msgspec.Struct, frozen=True, kw_only=True):
    """What commands decide from: the policy and the live tickets. Ended tickets leave the state (the
    tickets read model keeps them), so a busy site's state stays as small as its current line."""

    location_id: str
    version: int = 0
    """The stream version this state reflects."""
    policy: Policy = Policy()
    tickets: dict[str, Ticket] = {}
    next_rank: int = 1
    sessions_seen: dict[str, tuple[str, ...]] = {}
    """Per connector (``spot``), the last few sessions that changed a ticket: a session is acted on once,
    even when it is reported again after later ones."""

    def line(self) -> list[Ticket]:
        """Live tickets in line order: those put back at the head first, then by join order."""
        return sorted(self.tickets.values(), key=Ticket.line_key)

    def ticket_of_driver(self, driver_id: str) -> Ticket | None:
        return next((t for t in self.tickets.values() if t.driver_id == driver_id), None)

    def ticket_of_edrv_user(self, edrv_user_id: str) -> Ticket | None:
        return next((t for t in self.line() if t.edrv_user_id == edrv_user_id), None)

    def holder_of(self, spot: str) -> Ticket | None:
        return next((t for t in self.tickets.values() if t.offer is not None and t.offer.spot == spot), None)


def seconds(n: int) -> timedelta:
    return timedelta(seconds=n)


def requirements_of(
    connector_types: list[str] | None, min_power_kw: float | None, chargestation_ids: list[str] | None
) -> Requirements:
    """Requirements as a driver states them, normalised so equal needs compare equal."""
    return Requirements(
        connector_types=tuple(sorted({normalise_connector_type(t) for t in connector_types or ()} - {""})),
        min_power_kw=min_power_kw,
        chargestation_ids=tuple(sorted(set(chargestation_ids or ()))),
    )
