"""Decide: from a queue's state, a command and the time, the events that follow (or why not). Pure.

Every decision is made from the current state alone, so deciding again on the same state decides the
same thing and deciding on a newer state never repeats what already happened: a dispatcher or scheduler
that runs twice, or in two processes, cannot offer a connector twice or give a ticket two offers.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from msgspec.structs import replace

from service.queue.commands import (
    AcceptOffer,
    Command,
    Dispatch,
    HandleDeadlines,
    JoinQueue,
    LeaveQueue,
    PauseQueue,
    RecordSessionStart,
    RemoveTicket,
    ResumeQueue,
    SetQueuePolicy,
    SnoozeOffer,
)
from service.queue.events import (
    OfferAccepted,
    OfferRevoked,
    OfferSnoozed,
    QueueEvent,
    QueuePaused,
    QueuePolicySet,
    QueueResumed,
    RevokeReason,
    SnoozeEnded,
    TicketCancelled,
    TicketFulfilled,
    TicketJoined,
    TicketNoShow,
    TicketOffered,
    TicketRemoved,
)
from service.queue.fold import replay
from service.queue.matching import assign_offers
from service.queue.model import ConnectorState, QueueState, Ticket, seconds, spot_of


class Rejected(Exception):
    """The command is not allowed in the queue's current state (HTTP 409)."""

    def __init__(self, code: str, detail: str, *, ticket: Ticket | None = None) -> None:
        super().__init__(detail)
        self.code = code
        self.detail = detail
        self.ticket = ticket


_REVOKED_BY: dict[ConnectorState, RevokeReason] = {
    "faulted": "connector_faulted",
    "unavailable": "connector_unavailable",
    "offline": "station_offline",
}


def decide(state: QueueState, command: Command, now: datetime) -> list[QueueEvent]:
    match command:
        case JoinQueue():
            return _join(state, command, now)
        case AcceptOffer(ticket_id=ticket_id):
            ticket = _live(state, ticket_id)
            if ticket.status != "offered" or ticket.offer is None:
                raise _not_offered(ticket, "accepted")
            if now >= ticket.offer.respond_by:  # the same instant HandleDeadlines treats as passed
                raise Rejected("offer-expired", "the offer expired before it was accepted")
            hold_until = now + seconds(state.policy.plug_in_within_s)
            return [OfferAccepted(ticket_id=ticket_id, at=now, hold_until=hold_until)]
        case SnoozeOffer(ticket_id=ticket_id):
            ticket = _live(state, ticket_id)
            if ticket.status != "offered" or ticket.offer is None:
                raise _not_offered(ticket, "snoozed")
            if now >= ticket.offer.respond_by:
                raise Rejected(
                    "offer-expired", "the offer expired before it was snoozed; it passes on by itself"
                )
            return _snooze(state, ticket, "driver", now)
        case LeaveQueue(ticket_id=ticket_id):
            leaving = state.tickets.get(ticket_id)  # an ended ticket has left already: nothing to do
            return [TicketCancelled(ticket_id=ticket_id, at=now)] if leaving is not None else []
        case RemoveTicket(ticket_id=ticket_id, reason=reason):
            _live(state, ticket_id)
            return [TicketRemoved(ticket_id=ticket_id, at=now, reason=reason, by="operator")]
        case SetQueuePolicy():
            changes = {k: v for k, v in _fields(command).items() if v is not None}
            policy = replace(state.policy, **changes)
            return [] if policy == state.policy else [QueuePolicySet(at=now, policy=policy)]
        case PauseQueue():
            return [] if state.policy.paused else [QueuePaused(at=now)]
        case ResumeQueue():
            return [QueueResumed(at=now)] if state.policy.paused else []
        case HandleDeadlines():
            return _deadlines(state, now)
        case RecordSessionStart():
            return _session_started(state, command, now)
        case Dispatch(connectors=connectors):
            revoked = _revocations(state, {c.spot: c.state for c in connectors}, now)
            if state.policy.paused:
                return revoked
            after = replay(state.location_id, revoked, state)
            offers = assign_offers(after.line(), connectors, now)
            respond_by = now + seconds(state.policy.respond_within_s)
            return [
                *revoked,
                *(
                    TicketOffered(
                        ticket_id=ticket.id,
                        at=now,
                        chargestation_id=connector.chargestation_id,
                        connector_id=connector.connector_id,
                        respond_by=respond_by,
                    )
                    for ticket, connector in offers
                ),
            ]
    raise AssertionError(f"unknown command {command!r}")


def _join(state: QueueState, command: JoinQueue, now: datetime) -> list[QueueEvent]:
    if command.ticket_id in state.tickets:
        raise Rejected("ticket-exists", f"a ticket {command.ticket_id!r} is already in this queue")
    mine = state.ticket_of_driver(command.driver_id)
    if mine is not None:
        raise Rejected("already-queued", "you already have a live ticket at this location", ticket=mine)
    if len(state.tickets) >= state.policy.max_queue_length:
        raise Rejected(
            "queue-full", f"the queue is full ({state.policy.max_queue_length} tickets); try again later"
        )
    return [
        TicketJoined(
            ticket_id=command.ticket_id,
            at=now,
            driver_id=command.driver_id,
            edrv_user_id=command.edrv_user_id,
            requirements=command.requirements,
            rank=state.next_rank,
            idempotency_key=command.idempotency_key,
        )
    ]


def _snooze(
    state: QueueState, ticket: Ticket, by: Literal["driver", "no_answer"], now: datetime
) -> list[QueueEvent]:
    if ticket.snoozes_used >= state.policy.max_snoozes:
        reason = "snoozed_too_often" if by == "driver" else "no_answer_too_often"
        return [TicketRemoved(ticket_id=ticket.id, at=now, reason=reason, by="policy")]
    snoozed_until = now + seconds(state.policy.respond_within_s)
    return [OfferSnoozed(ticket_id=ticket.id, at=now, by=by, snoozed_until=snoozed_until)]


def _deadlines(state: QueueState, now: datetime) -> list[QueueEvent]:
    """Every passed deadline, earliest first, each dated when it passed, not when it was noticed. Acting
    late can make a new deadline that has passed too (the snooze after a long-missed offer): those are
    acted on in the same decision, so deciding again at the same moment finds nothing to do."""
    events: list[QueueEvent] = []
    while True:
        due = [t for t in state.tickets.values() if t.deadline is not None and t.deadline <= now]
        if not due:
            return events
        ticket = min(due, key=lambda t: (t.deadline, t.line_key()))
        at = max(ticket.deadline or now, ticket.updated_at)
        if ticket.status == "offered":
            passed = _snooze(state, ticket, "no_answer", at)
        elif ticket.status == "held":
            passed = [TicketNoShow(ticket_id=ticket.id, at=at)]
        else:
            passed = [SnoozeEnded(ticket_id=ticket.id, at=at)]
        events += passed
        state = replay(state.location_id, passed, state)


def _session_started(state: QueueState, command: RecordSessionStart, now: datetime) -> list[QueueEvent]:
    """A session on an offered connector fulfils its ticket when it is the ticket's driver (or anyone,
    for a ticket without an eDRV user), and otherwise is a queue jumper. A driver in the line who found
    a free connector on their own is fulfilled too."""
    spot = spot_of(command.chargestation_id, command.connector_id)
    if command.session_id in state.sessions_seen.get(spot, ()):
        return []  # already acted on (a redelivery, or a second report of the same start)
    holder = state.holder_of(spot)
    if holder is not None and holder.edrv_user_id is not None and holder.edrv_user_id == command.edrv_user_id:
        return [_fulfilled(holder, command, now)]  # the driver it was offered to: the common case
    mine = state.ticket_of_edrv_user(command.edrv_user_id) if command.edrv_user_id else None
    events: list[QueueEvent] = []
    if mine is not None:
        events.append(_fulfilled(mine, command, now, jumped=holder is not None))
    if holder is not None:
        if mine is None and holder.edrv_user_id is None:
            events.append(_fulfilled(holder, command, now))  # anyone may be its driver
        else:
            events.append(
                OfferRevoked(
                    ticket_id=holder.id,
                    at=now,
                    reason="queue_jumper",
                    chargestation_id=command.chargestation_id,
                    connector_id=command.connector_id,
                    session_id=command.session_id,
                )
            )
    return events


def _fulfilled(
    ticket: Ticket, command: RecordSessionStart, now: datetime, *, jumped: bool = False
) -> TicketFulfilled:
    return TicketFulfilled(
        ticket_id=ticket.id,
        at=now,
        session_id=command.session_id,
        chargestation_id=command.chargestation_id,
        connector_id=command.connector_id,
        jumped=jumped,
    )


def _revocations(state: QueueState, states: dict[str, ConnectorState], now: datetime) -> list[QueueEvent]:
    """Offers on connectors that faulted, became unavailable, went offline or vanished. A connector in
    use keeps its offer: the driver may be plugging in, and only the session says who it is."""
    events: list[QueueEvent] = []
    for ticket in state.line():
        if ticket.offer is None:
            continue
        connector_state = states.get(ticket.offer.spot)
        reason = "connector_gone" if connector_state is None else _REVOKED_BY.get(connector_state)
        if reason is not None:
            events.append(
                OfferRevoked(
                    ticket_id=ticket.id,
                    at=now,
                    reason=reason,
                    chargestation_id=ticket.offer.chargestation_id,
                    connector_id=ticket.offer.connector_id,
                )
            )
    return events


def _live(state: QueueState, ticket_id: str) -> Ticket:
    ticket = state.tickets.get(ticket_id)
    if ticket is None:
        raise Rejected("ticket-ended", "the ticket is no longer in the queue")
    return ticket


def _not_offered(ticket: Ticket, verb: str) -> Rejected:
    return Rejected("not-offered", f"only an offered ticket can be {verb}; this one is {ticket.status}")


def _fields(command: SetQueuePolicy) -> dict[str, object]:
    return {name: getattr(command, name) for name in command.__struct_fields__}
