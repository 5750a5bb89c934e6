"""The service's database login can append to the log and keep its read models, but can never change
or remove an event: privilege refuses it before the append-only trigger is even asked."""

from __future__ import annotations

from collections.abc import AsyncIterator

import asyncpg
import pytest

from service.db.engine import create_engine
from service.db.roles import SERVICE_LOGIN, SERVICE_ROLE, privilege_warning
from service.eventlog.store import EventStore
from service.projections.catalog import PROJECTIONS
from service.projections.rebuild import rebuild
from tests.conftest import Db, plain_dsn
from tests.integration.helpers import event

LOG_TABLES = ("events", "inbox", "inbox_conflicts", "quarantine")


@pytest.fixture
async def as_service(database_url: str) -> AsyncIterator[Db]:
    connection: Db = await asyncpg.connect(plain_dsn(database_url))
    yield connection
    await connection.close()


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE events SET type = 'rewritten'",
        "DELETE FROM events",
        "TRUNCATE events",
        "ALTER TABLE events DISABLE TRIGGER events_append_only",
        "DROP TRIGGER events_append_only ON events",
        "DROP TABLE events",
        "DELETE FROM inbox",
        "UPDATE quarantine SET reason = 'hidden'",
    ],
)
async def test_the_service_login_cannot_change_the_log_or_its_guard(
    store: EventStore, db: Db, as_service: Db, statement: str
) -> None:
    await store.append("s", [event()])
    assert await as_service.fetchval("SELECT current_user") == SERVICE_LOGIN
    with pytest.raises(asyncpg.InsufficientPrivilegeError, match=r"permission denied|must be owner"):
        await as_service.execute(statement)
    assert await db.fetchval("SELECT count(*) FROM events WHERE type = 'thing.happened'") == 1


async def test_the_service_login_is_not_the_owner_of_the_log_nor_a_member_of_its_role(db: Db) -> None:
    owner = await db.fetchval(
        "SELECT tableowner FROM pg_tables WHERE schemaname = 'public' AND tablename = 'events'"
    )
    assert owner != SERVICE_LOGIN
    assert not await db.fetchval("SELECT pg_has_role($1, $2, 'USAGE')", SERVICE_LOGIN, owner)
    assert not await db.fetchval("SELECT rolsuper FROM pg_roles WHERE rolname = $1", SERVICE_LOGIN)


async def test_every_table_is_readable_by_the_service_and_only_log_tables_are_append_only(db: Db) -> None:
    """A table a future migration forgets to grant fails here, not in production."""
    tables = [row[0] for row in await db.fetch("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")]
    assert set(LOG_TABLES) <= set(tables)
    for table in tables:
        assert await db.fetchval("SELECT has_table_privilege($1, $2, 'SELECT')", SERVICE_ROLE, table), table
        if table in LOG_TABLES:
            assert await db.fetchval("SELECT has_table_privilege($1, $2, 'INSERT')", SERVICE_ROLE, table)
            for change in ("UPDATE", "DELETE", "TRUNCATE"):
                assert not await db.fetchval(
                    "SELECT has_table_privilege($1, $2, $3)", SERVICE_ROLE, table, change
                ), (table, change)


async def test_startup_warns_when_the_service_runs_as_a_login_that_could_change_the_log(
    database_url: str, owner_database_url: str
) -> None:
    for url, warned in ((database_url, False), (owner_database_url, True)):
        engine = create_engine(url, pool_size=1)
        try:
            warning = await privilege_warning(engine)
        finally:
            await engine.dispose()
        assert (warning is not None) is warned, url
    assert warning is not None
    assert "CHARGELINE_MIGRATION_DATABASE_URL" in warning


async def test_read_models_a_rebuild_swaps_in_still_belong_to_the_service_role(
    store: EventStore, db: Db
) -> None:
    """Not to the login that ran the rebuild: migrations (members of the role) must still alter them."""
    await store.append("location-l1", [event("location.created", _id="l1", name="Harbour")])
    for projection in PROJECTIONS.values():
        await rebuild(store, projection)
    for table in (table for projection in PROJECTIONS.values() for table in projection.tables):
        owner = await db.fetchval(
            "SELECT tableowner FROM pg_tables WHERE schemaname = 'public' AND tablename = $1", table
        )
        assert owner == SERVICE_ROLE, table
