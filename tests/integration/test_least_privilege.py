"""The service's database login can append to the log and keep its read models, but can never change
or remove an event: privilege refuses it before the append-only trigger is even asked."""

from __future__ import annotations

from collections.abc import AsyncIterator

import asyncpg
import pytest
from sqlalchemy.engine import make_url

from service.db.engine import create_engine
from service.db.migrate import upgrade_to_head_async
from service.db.roles import SERVICE_LOGIN, SERVICE_ROLE, create_role_sql, privilege_warning
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
        # Around append_events(): a position of its own choosing (far ahead: every later event hidden
        # from the readers), an event without the append lock, a delivery id claimed in advance.
        "INSERT INTO events (position, stream_id, version, type, data, metadata, occurred_at) "
        "OVERRIDING SYSTEM VALUE VALUES (1000000000000000, 's', 2, 't', '{}', '{}', now())",
        "INSERT INTO events (stream_id, version, type, data, metadata, occurred_at) "
        "VALUES ('s', 2, 't', '{}', '{}', now())",
        "INSERT INTO inbox (source, external_id, payload_sha256, position) VALUES ('edrv', 'future', '', 1)",
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


async def test_appends_run_with_the_owners_rights_on_a_search_path_the_service_cannot_get_ahead_of(
    db: Db,
) -> None:
    function = await db.fetchrow(
        "SELECT oid::regprocedure::text AS signature, prosecdef, proconfig FROM pg_proc"
        " WHERE proname = 'append_events'"
    )
    assert function is not None
    assert function["prosecdef"]
    assert "search_path=pg_catalog, public, pg_temp" in function["proconfig"]
    assert not await db.fetchval(
        "SELECT has_function_privilege('public', $1, 'EXECUTE')", function["signature"]
    )
    assert await db.fetchval(
        "SELECT has_function_privilege($1, $2, 'EXECUTE')", SERVICE_ROLE, function["signature"]
    )


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
            insert = await db.fetchval("SELECT has_table_privilege($1, $2, 'INSERT')", SERVICE_ROLE, table)
            assert insert is (table not in ("events", "inbox")), table  # those through append_events()
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


async def test_an_owner_without_superuser_rights_migrates_once_granted_the_service_role_and_is_told_otherwise(
    db: Db, owner_database_url: str
) -> None:
    """What docs/operations.md tells operators to set up, on a database owned by an ordinary login."""
    for name in ("chargeline_test_owner", "chargeline_test_stranger"):
        await db.execute(create_role_sql(name, "LOGIN NOSUPERUSER NOCREATEROLE"))
    await db.execute(f"GRANT {SERVICE_ROLE} TO chargeline_test_owner")
    for owner in ("chargeline_test_owner", "chargeline_test_stranger"):
        await db.execute(f"DROP DATABASE IF EXISTS {owner}_db")
        await db.execute(f"CREATE DATABASE {owner}_db OWNER {owner}")
    try:
        granted = make_url(owner_database_url).set(
            database="chargeline_test_owner_db", username="chargeline_test_owner"
        )
        await upgrade_to_head_async(granted.render_as_string(hide_password=False))
        stranger = make_url(owner_database_url).set(
            database="chargeline_test_stranger_db", username="chargeline_test_stranger"
        )
        with pytest.raises(Exception, match="chargeline_service is missing or not granted"):
            await upgrade_to_head_async(stranger.render_as_string(hide_password=False))
    finally:
        for owner in ("chargeline_test_owner", "chargeline_test_stranger"):
            await db.execute(f"DROP DATABASE IF EXISTS {owner}_db WITH (FORCE)")
