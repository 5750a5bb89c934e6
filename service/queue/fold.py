"""Evolve: how each queue event changes a ticket and the queue's state. Pure and total.

``evolve_ticket`` is shared by the queue's decision state (live tickets) and the tickets read model
(every ticket), so the two can never disagree about what a ticket is.
"""

from __future__ import annotations

from collections.abc import Iterable

from msgspec.structs import replace

from service.queue.events import (
    OfferAccepted,
    OfferRevoked,
    OfferSnoozed,
    QueueEvent,
    QueuePaused,
    QueuePolicySet,
    QueueResumed,
    SnoozeEnded,
    TicketCancelled,
    TicketEvent,
    TicketFulfilled,
    TicketJoined,
    TicketNoShow,
    TicketOffered,
    TicketRemoved,
)
from service.queue.model import Offer, QueueState, Ticket, spot_of

SESSIONS_REMEMBERED = 8
"""Per connector: a session reported again after this many later ones would be acted on again (the
dispatcher also skips any report of a session start but the first, so this is the second guard)."""


def evolve_ticket(ticket: Ticket | None, event: TicketEvent, location_id: str) -> Ticket | None:
    if isinstance(event, TicketJoined):
        return Ticket(
            id=event.ticket_id,
            location_id=location_id,
            driver_id=event.driver_id,
            edrv_user_id=event.edrv_user_id,
            requirements=event.requirements,
            status="waiting",
            rank=event.rank,
            idempotency_key=event.idempotency_key,
            created_at=event.at,
            updated_at=event.at,
        )
    if ticket is None:
        return None  # an event about a ticket this fold never saw join: nothing to change
    changed = _changed(ticket, event)
    return replace(changed, updated_at=event.at, version=ticket.version + 1)


def _changed(ticket: Ticket, event: TicketEvent) -> Ticket:
    match event:
        case TicketOffered():
            offer = Offer(
                chargestation_id=event.chargestation_id,
                connector_id=event.connector_id,
                offered_at=event.at,
                respond_by=event.respond_by,
            )
            return replace(
                ticket, status="offered", offer=offer, priority=False, snoozed_until=None, reason=None
            )
        case OfferAccepted():
            held = replace(ticket.offer, hold_until=event.hold_until) if ticket.offer else None
            return replace(ticket, status="held", offer=held)
        case OfferSnoozed():
            return replace(
                ticket,
                status="waiting",
                offer=None,
                snoozes_used=ticket.snoozes_used + 1,
                snoozed_until=event.snoozed_until,
            )
        case SnoozeEnded():
            return replace(ticket, snoozed_until=None)
        case OfferRevoked():
            return replace(ticket, status="waiting", offer=None, priority=True, reason=event.reason)
        case TicketFulfilled():
            return replace(ticket, status="fulfilled", session_id=event.session_id, snoozed_until=None)
        case TicketNoShow():
            return replace(ticket, status="no_show", reason="no_show")
        case TicketCancelled():
            return replace(ticket, status="cancelled", snoozed_until=None)
        case TicketRemoved():
            return replace(ticket, status="removed", reason=event.reason, snoozed_until=None)
    return ticket


def evolve_queue(state: QueueState, event: QueueEvent) -> QueueState:
    state = replace(state, version=state.version + 1)
    match event:
        case QueuePolicySet():
            return replace(state, policy=event.policy)
        case QueuePaused():
            return replace(state, policy=replace(state.policy, paused=True))
        case QueueResumed():
            return replace(state, policy=replace(state.policy, paused=False))
        case TicketEvent():
            return _evolve_line(state, event)
    return state


def _evolve_line(state: QueueState, event: TicketEvent) -> QueueState:
    ticket = evolve_ticket(state.tickets.get(event.ticket_id), event, state.location_id)
    tickets = dict(state.tickets)
    if ticket is not None and ticket.live:
        tickets[ticket.id] = ticket
    else:
        tickets.pop(event.ticket_id, None)  # ended: the read model keeps it, the line does not
    next_rank = max(state.next_rank, event.rank + 1) if isinstance(event, TicketJoined) else state.next_rank
    sessions_seen = state.sessions_seen
    if isinstance(event, TicketFulfilled | OfferRevoked) and event.session_id is not None:
        spot = spot_of(event.chargestation_id, event.connector_id)
        recent = (*sessions_seen.get(spot, ())[-(SESSIONS_REMEMBERED - 1) :], event.session_id)
        sessions_seen = {**sessions_seen, spot: recent}
    return replace(state, tickets=tickets, next_rank=next_rank, sessions_seen=sessions_seen)


def replay(location_id: str, events: Iterable[QueueEvent], state: QueueState | None = None) -> QueueState:
    state = state if state is not None else QueueState(location_id=location_id)
    for event in events:
        state = evolve_queue(state, event)
    return state
