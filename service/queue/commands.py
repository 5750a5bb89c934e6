"""What drivers, operators and the world ask of a queue, in the imperative."""

from __future__ import annotations

import msgspec

from service.queue.model import Requirements, SiteConnector


class JoinQueue(msgspec.Struct, frozen=True, kw_only=True):
    ticket_id: str
    driver_id: str
    edrv_user_id: str | None
    requirements: Requirements
    idempotency_key: str | None = None


class AcceptOffer(msgspec.Struct, frozen=True, kw_only=True):
    ticket_id: str


class SnoozeOffer(msgspec.Struct, frozen=True, kw_only=True):
    ticket_id: str


class LeaveQueue(msgspec.Struct, frozen=True, kw_only=True):
    ticket_id: str


class RemoveTicket(msgspec.Struct, frozen=True, kw_only=True):
    ticket_id: str
    reason: str


class SetQueuePolicy(msgspec.Struct, frozen=True, kw_only=True):
    """Change any of the fields given (None: keep)."""

    respond_within_s: int | None = None
    plug_in_within_s: int | None = None
    max_snoozes: int | None = None
    max_queue_length: int | None = None
    paused: bool | None = None


class PauseQueue(msgspec.Struct, frozen=True):
    pass


class ResumeQueue(msgspec.Struct, frozen=True):
    pass


class HandleDeadlines(msgspec.Struct, frozen=True):
    """Act on every deadline that has passed: no answer, no show, snooze over."""


class RecordSessionStart(msgspec.Struct, frozen=True, kw_only=True):
    """A charging session started at this site: fulfils a ticket, or shows a queue jumper."""

    session_id: str
    chargestation_id: str
    connector_id: str
    edrv_user_id: str | None


class Dispatch(msgspec.Struct, frozen=True, kw_only=True):
    """Bring the offers in line with the site's connectors: take back offers on connectors that went
    away, offer free connectors to the first eligible, compatible tickets."""

    connectors: tuple[SiteConnector, ...]


Command = (
    JoinQueue
    | AcceptOffer
    | SnoozeOffer
    | LeaveQueue
    | RemoveTicket
    | SetQueuePolicy
    | PauseQueue
    | ResumeQueue
    | HandleDeadlines
    | RecordSessionStart
    | Dispatch
)
