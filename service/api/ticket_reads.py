"""Reading a driver's ticket: whose it is, how it looks with its place in line, and waiting until the
read models have caught up with a write (read-your-writes across instances)."""

from __future__ import annotations

import asyncio
from datetime import datetime

from litestar.datastructures import State

from service.api.drivers import Driver
from service.api.problems import problem
from service.api.ticket_out import TicketOut, present
from service.dispatch.queues import Queues
from service.eventlog.store import EventStore
from service.projections import queue_queries
from service.projections.runner import ProjectionRunner
from service.queue.model import QueueState, Ticket

READ_YOUR_WRITES_S = 2.0

# Reached: the stored checkpoint is at the position, or nothing of the projection's own types lies
# between them (a runner stores its checkpoint past other projections' events only now and then).
_REACHED = """
    WITH c AS (SELECT coalesce((SELECT position FROM projection_checkpoints WHERE name = $1), 0) AS position)
    SELECT c.position >= $2 OR ($3::text[] IS NOT NULL AND NOT EXISTS (
        SELECT FROM events e WHERE e.position > c.position AND e.position <= $2 AND e.type = ANY($3::text[])
    ))
    FROM c
"""


async def own_ticket(store: EventStore, driver: Driver, ticket_id: str) -> Ticket:
    async with store.connection() as connection:
        ticket = await queue_queries.ticket(connection, ticket_id)
    if ticket is None or ticket.driver_id != driver.id:
        raise problem(404, "Not Found", f"you have no ticket {ticket_id!r}")
    return ticket


async def present_ticket(
    queues: Queues,
    ticket: Ticket,
    state: QueueState,
    now: datetime,
    *,
    site: queue_queries.Site | None = None,
) -> TicketOut:
    """The ticket with its place in ``state``'s line; the site (connectors, sessions, history) is read
    (unless given) only for a waiting ticket, the only kind with a place and an estimate."""
    if site is None and ticket.status != "waiting":
        site = queue_queries.EMPTY_SITE
    if site is None:
        async with queues.store.connection() as connection:
            site = await queue_queries.site(connection, ticket.location_id, now)
    return present(ticket, state.line(), site, state.policy, now)


async def settle(
    state: State, store: EventStore, position: int, projections: tuple[str, ...] = ("tickets",)
) -> None:
    """Wait (briefly) until these read models reflect ``position``: the driver's next read then sees
    their own write, and a stream's next message the change it announces, whichever instance serves it."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + READ_YOUR_WRITES_S
    for name in projections:
        runner: ProjectionRunner = next(r for r in state.projection_runners if r.projection.name == name)
        if runner.active.is_set():
            await runner.reached(position, max(deadline - loop.time(), 0))
            continue
        types = runner.projection.event_types
        while loop.time() < deadline:  # another process runs the projection: watch its checkpoint
            async with store.connection() as connection:
                reached = await connection.fetchval(_REACHED, name, position, list(types) if types else None)
            if reached:
                break
            await asyncio.sleep(0.01)
