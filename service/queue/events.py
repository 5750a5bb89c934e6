"""What happened to a queue, in the past tense. Each is stored as one event in ``queue-<location_id>``;
the event's type is the ``TYPE`` below, its data the struct as JSON."""

from __future__ import annotations

from datetime import datetime
from typing import ClassVar, Literal

import msgspec

from service.queue.model import Policy, Requirements

RevokeReason = Literal[
    "connector_faulted", "connector_unavailable", "station_offline", "connector_gone", "queue_jumper"
]


class QueueEvent(msgspec.Struct, frozen=True, kw_only=True):
    TYPE: ClassVar[str]
    at: datetime


class TicketEvent(QueueEvent, frozen=True, kw_only=True):
    ticket_id: str


class TicketJoined(TicketEvent, frozen=True, kw_only=True):
    TYPE = "ticket.joined"
    driver_id: str
    edrv_user_id: str | None
    requirements: Requirements
    rank: int
    idempotency_key: str | None = None


class TicketOffered(TicketEvent, frozen=True, kw_only=True):
    TYPE = "ticket.offered"
    chargestation_id: str
    connector_id: str
    respond_by: datetime


class OfferAccepted(TicketEvent, frozen=True, kw_only=True):
    TYPE = "ticket.accepted"
    hold_until: datetime


class OfferSnoozed(TicketEvent, frozen=True, kw_only=True):
    """Back to waiting, keeping the place; ``by`` the driver, or by no answer in time."""

    TYPE = "ticket.snoozed"
    by: Literal["driver", "no_answer"]
    snoozed_until: datetime


class SnoozeEnded(TicketEvent, frozen=True, kw_only=True):
    TYPE = "ticket.snooze_ended"


class OfferRevoked(TicketEvent, frozen=True, kw_only=True):
    """The connector went away through no fault of the driver: back to the head of the line."""

    TYPE = "ticket.offer_revoked"
    reason: RevokeReason
    chargestation_id: str
    connector_id: str
    session_id: str | None = None
    """The queue jumper's session."""


class TicketFulfilled(TicketEvent, frozen=True, kw_only=True):
    TYPE = "ticket.fulfilled"
    session_id: str
    chargestation_id: str
    connector_id: str
    jumped: bool = False
    """Charging on a connector that was offered to someone else."""


class TicketNoShow(TicketEvent, frozen=True, kw_only=True):
    TYPE = "ticket.no_show"


class TicketCancelled(TicketEvent, frozen=True, kw_only=True):
    TYPE = "ticket.cancelled"


class TicketRemoved(TicketEvent, frozen=True, kw_only=True):
    TYPE = "ticket.removed"
    reason: str
    by: Literal["operator", "policy"]


class QueuePolicySet(QueueEvent, frozen=True, kw_only=True):
    TYPE = "queue.policy_set"
    policy: Policy


class QueuePaused(QueueEvent, frozen=True, kw_only=True):
    TYPE = "queue.paused"


class QueueResumed(QueueEvent, frozen=True, kw_only=True):
    TYPE = "queue.resumed"


EVENT_CLASSES: dict[str, type[QueueEvent]] = {
    cls.TYPE: cls
    for cls in (
        TicketJoined,
        TicketOffered,
        OfferAccepted,
        OfferSnoozed,
        SnoozeEnded,
        OfferRevoked,
        TicketFulfilled,
        TicketNoShow,
        TicketCancelled,
        TicketRemoved,
        QueuePolicySet,
        QueuePaused,
        QueueResumed,
    )
}
QUEUE_EVENT_TYPES = tuple(EVENT_CLASSES)

_decoders = {name: msgspec.json.Decoder(cls) for name, cls in EVENT_CLASSES.items()}
_encoder = msgspec.json.Encoder()


def encode_event(event: QueueEvent) -> bytes:
    return _encoder.encode(event)


def decode_event(type: str, data: bytes | str) -> QueueEvent:
    """Raises ``KeyError`` for a type that is not a queue event, ``msgspec.DecodeError`` for bad data."""
    event: QueueEvent = _decoders[type].decode(data)
    return event
