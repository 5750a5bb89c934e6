"""The Ticket as drivers' apps see it: the ticket plus where it stands in line and when its turn may come."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import msgspec

from service.projections.queue_queries import Site
from service.queue.eta import ConnectorOutlook, estimate_wait
from service.queue.matching import standing
from service.queue.model import Policy, Ticket, TicketStatus


class RequirementsOut(msgspec.Struct, frozen=True):
    connector_types: list[str]
    """Normalised: upper case letters and digits (``Type 2`` → ``TYPE2``)."""
    min_power_kw: float | None
    chargestation_ids: list[str]


class OfferOut(msgspec.Struct, frozen=True):
    chargestation_id: str
    connector_id: str
    offered_at: datetime
    respond_by: datetime
    """Accept (or snooze) before this, or the offer passes to the next driver."""
    hold_until: datetime | None
    """After accepting: plug in before this."""


class EtaOut(msgspec.Struct, frozen=True):
    """When an offer may come, as a range in seconds from now."""

    low_s: int
    high_s: int


class TicketOut(msgspec.Struct, frozen=True):
    id: str
    location_id: str
    status: TicketStatus
    position: int | None
    """1-based place among the waiting tickets; null when not waiting."""
    ahead: int | None
    """Waiting tickets before this one that could take a connector it can use."""
    requirements: RequirementsOut
    offer: OfferOut | None
    snoozes_used: int
    snoozes_left: int
    snoozed_until: datetime | None
    """Passed over for new offers until then (after a snooze), keeping its place."""
    eta: EtaOut | None
    """Null when there is no basis for an estimate (or the ticket is not waiting)."""
    session_id: str | None
    reason: str | None
    """Why it ended (removed, no_show) or last lost an offer (e.g. connector_faulted, queue_jumper)."""
    created_at: datetime
    updated_at: datetime
    version: int


def present(ticket: Ticket, line: Sequence[Ticket], site: Site, policy: Policy, now: datetime) -> TicketOut:
    connectors = [c.connector for c in site.connectors]
    position, ahead = standing(ticket, line, connectors)
    eta = None
    if ticket.status == "waiting" and ahead is not None:
        offered = {t.offer.spot for t in line if t.offer is not None}
        outlook = [
            ConnectorOutlook(
                free_now=c.connector.state == "offerable" and c.connector.spot not in offered,
                charging=c.charging,
            )
            for c in site.connectors
            if c.connector.state in ("offerable", "in_use") and ticket.requirements.accepts(c.connector)
        ]
        estimate = estimate_wait(ahead, outlook, site.history)
        if estimate is not None and ticket.snoozed_until is not None and ticket.snoozed_until > now:
            wait = int((ticket.snoozed_until - now).total_seconds())
            estimate = msgspec.structs.replace(
                estimate, low_s=max(estimate.low_s, wait), high_s=max(estimate.high_s, wait)
            )
        eta = None if estimate is None else EtaOut(estimate.low_s, estimate.high_s)
    return TicketOut(
        id=ticket.id,
        location_id=ticket.location_id,
        status=ticket.status,
        position=position,
        ahead=ahead,
        requirements=requirements_out(ticket),
        offer=offer_out(ticket),
        snoozes_used=ticket.snoozes_used,
        snoozes_left=max(policy.max_snoozes - ticket.snoozes_used, 0),
        snoozed_until=ticket.snoozed_until if ticket.status == "waiting" else None,
        eta=eta,
        session_id=ticket.session_id,
        reason=ticket.reason,
        created_at=ticket.created_at,
        updated_at=ticket.updated_at,
        version=ticket.version,
    )


def requirements_out(ticket: Ticket) -> RequirementsOut:
    needs = ticket.requirements
    return RequirementsOut(list(needs.connector_types), needs.min_power_kw, list(needs.chargestation_ids))


def offer_out(ticket: Ticket) -> OfferOut | None:
    """The live offer: an ended ticket keeps its last offer in the log, but it is no longer an offer."""
    offer = ticket.offer
    if offer is None or ticket.status not in ("offered", "held"):
        return None
    return OfferOut(
        offer.chargestation_id, offer.connector_id, offer.offered_at, offer.respond_by, offer.hold_until
    )
