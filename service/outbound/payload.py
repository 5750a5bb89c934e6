"""What an app backend receives: ``{id, type, created_at, data: Ticket}``, the ticket as it was right
after the event. The ticket's parts have the same shapes as in the drivers' API; ``driver_id`` and
``edrv_user_id`` are added, because a backend needs to know whose phone to wake."""

from __future__ import annotations

from datetime import datetime

import msgspec

from service.api.ticket_out import OfferOut, RequirementsOut, offer_out, requirements_out
from service.queue.model import Ticket, TicketStatus


class TicketData(msgspec.Struct, frozen=True):
    id: str
    location_id: str
    driver_id: str
    edrv_user_id: str | None
    status: TicketStatus
    requirements: RequirementsOut
    offer: OfferOut | None
    snoozes_used: int
    snoozed_until: datetime | None
    session_id: str | None
    reason: str | None
    created_at: datetime
    updated_at: datetime
    version: int
    """Counts the ticket's own changes: a receiver can drop a message older than one it already has."""


class TicketMessage(msgspec.Struct, frozen=True):
    id: str
    """Also the ``webhook-id`` header: the same on every attempt and replay, for deduplication."""
    type: str
    """The event, e.g. ``ticket.offered``."""
    created_at: datetime
    data: TicketData


_encoder = msgspec.json.Encoder()


def message_id(position: int) -> str:
    """A message is one event of the log, so its log position names it."""
    return f"msg_{position}"


def render(position: int, event_type: str, created_at: datetime, ticket: Ticket) -> bytes:
    data = TicketData(
        id=ticket.id,
        location_id=ticket.location_id,
        driver_id=ticket.driver_id,
        edrv_user_id=ticket.edrv_user_id,
        status=ticket.status,
        requirements=requirements_out(ticket),
        offer=offer_out(ticket),
        snoozes_used=ticket.snoozes_used,
        snoozed_until=ticket.snoozed_until if ticket.status == "waiting" else None,
        session_id=ticket.session_id,
        reason=ticket.reason,
        created_at=ticket.created_at,
        updated_at=ticket.updated_at,
        version=ticket.version,
    )
    return _encoder.encode(TicketMessage(message_id(position), event_type, created_at, data))
