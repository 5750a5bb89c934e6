"""Which waiting ticket gets which free connector: fair, and wasting no connector it need not waste.

Tickets are served in line order: a ticket is never passed over while a free connector it can use is
left for someone behind it. Among the free connectors a ticket can use, it gets the one the fewest
tickets behind it could use (then the most powerful), so a driver who can take either of two connectors
does not take the only one the next driver can use.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from service.queue.model import SiteConnector, Ticket


def assign_offers(
    line: Sequence[Ticket], connectors: Sequence[SiteConnector], now: datetime
) -> list[tuple[Ticket, SiteConnector]]:
    """New offers for the free connectors: offerable and not already offered to a ticket."""
    taken = {ticket.offer.spot for ticket in line if ticket.offer is not None}
    free = sorted(
        (c for c in connectors if c.state == "offerable" and c.spot not in taken), key=lambda c: c.spot
    )
    eligible = [ticket for ticket in line if ticket.eligible_at(now)]
    offers: list[tuple[Ticket, SiteConnector]] = []
    for i, ticket in enumerate(eligible):
        if not free:
            break
        usable = [c for c in free if ticket.requirements.accepts(c)]
        if not usable:
            continue  # this ticket cannot use what is free; it blocks nobody behind it
        behind = eligible[i + 1 :]
        best = min(
            usable,
            key=lambda c: (sum(t.requirements.accepts(c) for t in behind), -(c.power_kw or 0.0), c.spot),
        )
        free.remove(best)
        offers.append((ticket, best))
    return offers


def standing(
    ticket: Ticket, line: Sequence[Ticket], connectors: Sequence[SiteConnector]
) -> tuple[int | None, int | None]:
    """A waiting ticket's place: its 1-based position among the waiting tickets, and how many of those
    before it compete with it (could take a connector it can use). (None, None) when not waiting."""
    if ticket.status != "waiting":
        return None, None
    waiting = [t for t in line if t.status == "waiting" and t.id != ticket.id]
    before = [t for t in waiting if t.line_key() < ticket.line_key()]
    usable = [c for c in connectors if ticket.requirements.accepts(c)]
    if not usable:
        return len(before) + 1, len(before)
    rivals = sum(any(t.requirements.accepts(c) for c in usable) for t in before)
    return len(before) + 1, rivals
