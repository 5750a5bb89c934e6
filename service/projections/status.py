"""Where each projection is: its checkpoint, how far behind the log, how many events it skipped."""

from __future__ import annotations

from datetime import datetime

import msgspec

from service.eventlog.store import EventStore
from service.projections.catalog import PROJECTIONS


class ProjectionStatus(msgspec.Struct, frozen=True):
    name: str
    position: int
    lag: int
    """Events in the log after ``position`` (of every type; the projection may need few of them)."""
    errors: int
    """Events it could not apply (recorded in ``projection_errors``, skipped)."""
    updated_at: datetime | None


async def projection_statuses(store: EventStore) -> tuple[int, list[ProjectionStatus]]:
    """The log's head and every projection's status."""
    async with store.connection() as connection:
        head = int(await connection.fetchval("SELECT coalesce(max(position), 0) FROM events"))
        rows = await connection.fetch(
            """
            SELECT n.name, coalesce(c.position, 0), c.updated_at,
                   (SELECT count(*) FROM projection_errors e WHERE e.projection = n.name)
            FROM unnest($1::text[]) AS n(name) LEFT JOIN projection_checkpoints c USING (name)
            ORDER BY n.name
            """,
            list(PROJECTIONS),
        )
    return head, [
        ProjectionStatus(
            name=row[0], position=row[1], lag=max(head - row[1], 0), errors=row[3], updated_at=row[2]
        )
        for row in rows
    ]
