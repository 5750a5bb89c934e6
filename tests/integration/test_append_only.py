"""PostgreSQL itself refuses to change or remove an event."""

from __future__ import annotations

import asyncpg
import pytest

from service.eventlog.store import EventStore
from tests.conftest import Db
from tests.integration.helpers import event


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE events SET type = 'rewritten'",
        "UPDATE events SET type = 'rewritten' WHERE false",
        "DELETE FROM events",
        "TRUNCATE events",
    ],
)
async def test_changing_the_log_is_rejected_by_the_database(
    store: EventStore, db: Db, statement: str
) -> None:
    await store.append("s", [event()])
    with pytest.raises(asyncpg.InsufficientPrivilegeError, match="append-only"):
        await db.execute(statement)
    assert await db.fetchval("SELECT count(*) FROM events WHERE type = 'thing.happened'") == 1


async def test_positions_cannot_be_chosen_by_a_writer(db: Db) -> None:
    with pytest.raises(asyncpg.GeneratedAlwaysError):
        await db.execute(
            "INSERT INTO events (position, stream_id, version, type, data, metadata, occurred_at) "
            "VALUES (1, 's', 1, 't', '{}', '{}', now())"
        )


async def test_unique_stream_version_is_the_backstop(db: Db) -> None:
    insert = (
        "INSERT INTO events (stream_id, version, type, data, metadata, occurred_at) "
        "VALUES ('s', 1, 't', '{}', '{}', now())"
    )
    await db.execute(insert)
    with pytest.raises(asyncpg.UniqueViolationError):
        await db.execute(insert)
