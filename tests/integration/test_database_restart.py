"""When PostgreSQL drops every connection (a restart, a failover), the service carries on by itself."""

from __future__ import annotations

import asyncio

from service.eventlog.model import Appended
from service.eventlog.store import EventStore
from tests.conftest import Db
from tests.integration.helpers import event


async def test_appends_succeed_right_after_every_pooled_connection_was_terminated(
    store: EventStore, db: Db
) -> None:
    # Warm the pool: several batches in flight hold several connections.
    await asyncio.gather(*(store.append(f"warm-{i}", [event()]) for i in range(40)))
    terminated = await db.fetchval(
        "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
        "WHERE application_name = 'chargeline' AND pid <> pg_backend_pid()"
    )
    assert terminated >= 1
    await asyncio.sleep(0.2)  # the server's goodbye reaches the client sockets

    results = [await store.append(f"after-{i}", [event()]) for i in range(20)]
    assert all(isinstance(result, Appended) for result in results)
    results = await asyncio.gather(*(store.append(f"burst-{i}", [event()]) for i in range(20)))
    assert all(isinstance(result, Appended) for result in results)
