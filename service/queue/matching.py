"""Which waiting ticket gets which free connector: fair, and wasting no connector it need not waste.

Tickets are served in line order, and the set served is the best the line order allows: the first
ticket is served if any free connector suits it, the second if it can be served *as well as* the first,
and so on. A ticket that can use none of the free connectors blocks nobody behind it. When serving a
ticket needs a connector an earlier ticket was given, and that earlier ticket can take another one,
they swap (an augmenting path, as in bipartite matching): a driver who could take either of two
connectors never takes the only one the next driver can use. Among equally good choices a ticket gets
the connector the fewest tickets behind it could use, then the most powerful.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from service.queue.model import SiteConnector, Ticket


def assign_offers(
    line: Sequence[Ticket], connectors: Sequence[SiteConnector], now: datetime
) -> list[tuple[Ticket, SiteConnector]]:
    """New offers for the free connectors (offerable and not already offered), in line order."""
    taken = {ticket.offer.spot for ticket in line if ticket.offer is not None}
    free = {c.spot: c for c in connectors if c.state == "offerable" and c.spot not in taken}
    eligible = [ticket for ticket in line if ticket.eligible_at(now)]
    holder: dict[str, int] = {}  # connector spot -> index of the eligible ticket it is given to
    given: dict[int, str] = {}

    def preferred(i: int) -> list[str]:
        behind = eligible[i + 1 :]
        usable = [c for c in free.values() if eligible[i].requirements.accepts(c)]
        usable.sort(
            key=lambda c: (sum(t.requirements.accepts(c) for t in behind), -(c.power_kw or 0.0), c.spot)
        )
        return [c.spot for c in usable]

    choices: dict[int, list[str]] = {}

    def serve(i: int, visited: set[str]) -> bool:
        """Find ticket ``i`` a connector, moving earlier tickets to other connectors if need be."""
        for spot in choices.setdefault(i, preferred(i)):
            if spot in visited:
                continue
            visited.add(spot)
            if spot not in holder or serve(holder[spot], visited):
                holder[spot], given[i] = i, spot
                return True
        return False

    for i in range(len(eligible)):
        if len(given) == len(free):
            break  # every free connector is given
        serve(i, set())
    return [(eligible[i], free[given[i]]) for i in sorted(given)]


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
