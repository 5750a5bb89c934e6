"""The deadline scheduler: offers nobody answered, holds nobody plugged into, snoozes that are over.

Deadlines are not timers in memory: they are derived from the queue events (an offer's ``respond_by``,
a hold's ``hold_until``, a snooze's end) and found in the tickets read model. So they survive restarts:
at startup every deadline that passed while the service was down is handled, earliest first. One
process runs the scheduler at a time (a lease); which one does not matter, because acting on a deadline
is a command decided from the queue's current state, and a deadline already acted on decides nothing.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime

from service.db.lease import try_lease
from service.dispatch.queues import Queues
from service.queue.commands import HandleDeadlines

log = logging.getLogger(__name__)

_DUE = """
    SELECT location_id, min(deadline) AS due FROM tickets
     WHERE status IN ('waiting', 'offered', 'held') AND deadline IS NOT NULL
     GROUP BY location_id ORDER BY due LIMIT $1
"""


class Scheduler:
    def __init__(self, queues: Queues, *, max_sleep_s: float = 0.25, retry_s: float = 1.0) -> None:
        self.queues = queues
        self.max_sleep_s = max_sleep_s
        """The longest it sleeps without looking again: a deadline just written is acted on within it."""
        self.retry_s = retry_s
        self.active = asyncio.Event()

    async def run(self) -> None:
        while True:
            try:
                async with try_lease(self.queues.store.engine, "scheduler") as lease:
                    if lease is not None:
                        self.active.set()
                        while not lease.is_closed():
                            await self._sleep_until(await self.tick())
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("scheduler: %r; retrying in %.1f s", exc, self.retry_s)
            self.active.clear()
            await asyncio.sleep(self.retry_s)

    async def tick(self, now: datetime | None = None, *, limit: int = 100) -> datetime | None:
        """Act on every passed deadline, queue by queue in deadline order; return when to look again."""
        async with self.queues.store.connection() as connection:
            rows = await connection.fetch(_DUE, limit)
        moment = now or datetime.now(UTC)
        due = [location for location, deadline in rows if deadline <= moment]
        for location in due:
            outcome = await self.queues.execute(location, HandleDeadlines(), actor="scheduler", now=moment)
            if outcome.events:
                log.info("queue %s: acted on %d passed deadlines", location, len(outcome.events))
        if len(due) == limit:
            return moment  # more are due: look again at once
        return min((deadline for _, deadline in rows if deadline > moment), default=None)

    async def _sleep_until(self, deadline: datetime | None) -> None:
        pause = self.max_sleep_s
        if deadline is not None:
            pause = min(pause, max((deadline - datetime.now(UTC)).total_seconds(), 0.0))
        if pause > 0:
            await asyncio.sleep(pause)
