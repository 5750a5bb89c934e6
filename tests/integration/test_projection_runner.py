"""The projection runner on a real PostgreSQL: atomic steps, poison events, one leader, restarts."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import TYPE_CHECKING

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from service.db.engine import create_engine
from service.db.roles import SERVICE_ROLE
from service.edrv.intake import EdrvIntake
from service.eventlog.doorbell import Doorbell
from service.eventlog.model import RecordedEvent
from service.eventlog.store import EventStore
from service.projections.location_table import LocationsProjection
from service.projections.runner import Poison, Projection, ProjectionRunner
from tests.conftest import FIXTURES, Db
from tests.integration.helpers import event

if TYPE_CHECKING:
    from service.projections.runner import Connection


class CountingProjection:
    """Records every position it applies under a primary key: applying one twice would fail loudly."""

    name: str = "counting"
    event_types: tuple[str, ...] | None = None

    def __init__(self, fail_after_writing: bool = False) -> None:
        self.fail_after_writing = fail_after_writing

    async def apply(self, connection: Connection, events: Sequence[RecordedEvent]) -> list[Poison]:
        await connection.execute(
            "INSERT INTO test_applied (position) SELECT unnest($1::bigint[])", [e.position for e in events]
        )
        if self.fail_after_writing:
            raise RuntimeError("the projection broke half-way")
        return [Poison(e.position, e.type, "poisoned on purpose") for e in events if e.type == "poison"]


@pytest.fixture(autouse=True)
async def _applied_table(db: Db) -> None:
    await db.execute("CREATE TABLE IF NOT EXISTS test_applied (position bigint PRIMARY KEY)")
    await db.execute(f"GRANT SELECT, INSERT ON test_applied TO {SERVICE_ROLE}")  # the runner's login
    await db.execute("TRUNCATE test_applied")


def runner(store: EventStore, projection: Projection) -> ProjectionRunner:
    return ProjectionRunner(store, projection, Doorbell(store.engine, poll_interval_s=0.05), retry_s=0.1)


async def checkpoint(db: Db, name: str) -> int | None:
    value: int | None = await db.fetchval("SELECT position FROM projection_checkpoints WHERE name = $1", name)
    return value


async def test_steps_apply_batches_and_move_the_checkpoint_to_the_head(store: EventStore, db: Db) -> None:
    for i in range(25):
        await store.append(f"s{i % 3}", [event(i=i)])
    run = runner(store, CountingProjection())
    run.batch_size = 10
    assert [await run.step() for _ in range(4)] == [10, 10, 5, 0]
    assert await checkpoint(db, "counting") == await store.head_position()
    assert await db.fetchval("SELECT count(*) FROM test_applied") == 25


async def test_a_step_that_fails_leaves_no_trace_and_is_retried_from_the_same_place(
    store: EventStore, db: Db
) -> None:
    await store.append("s", [event(), event()])
    with pytest.raises(RuntimeError, match="half-way"):
        await runner(store, CountingProjection(fail_after_writing=True)).step()
    assert await db.fetchval("SELECT count(*) FROM test_applied") == 0
    assert await checkpoint(db, "counting") in (None, 0)
    assert await runner(store, CountingProjection()).step() == 2


async def test_poison_events_are_recorded_and_skipped_without_stalling(store: EventStore, db: Db) -> None:
    await store.append("s", [event(), event("poison"), event()])
    assert await runner(store, CountingProjection()).step() == 3
    errors = await db.fetch("SELECT projection, event_type, error FROM projection_errors")
    assert [tuple(row) for row in errors] == [("counting", "poison", "poisoned on purpose")]
    assert await checkpoint(db, "counting") == await store.head_position()


async def test_the_locations_projection_folds_the_scenario_and_records_unreadable_events(
    store: EventStore, db: Db
) -> None:
    intake = EdrvIntake(store, secret=None, tolerance_s=300)
    for line in (FIXTURES / "scenario.one-location-day.jsonl").read_bytes().splitlines():
        await intake.receive(line, signature=None, content_type="application/json")
    broken = b'{"_id": "65b0000000000000000000ee", "object": "location", "type": "location.updated", "data": {"_id": "6601aa00000000000000001a", "active": "perhaps"}}'  # noqa: E501
    await intake.receive(broken, signature=None, content_type="application/json")
    run = runner(store, LocationsProjection())
    while await run.step():
        pass
    row = await db.fetchrow("SELECT name, timezone, active, opening_hours->'1' AS monday FROM locations")
    assert row is not None
    assert (row["name"], row["timezone"], row["active"]) == ("Hafen Laden GmbH", "Europe/Berlin", True)
    assert row["monday"] == '[{"endTime": "22:00", "startTime": "06:00"}]'
    errors = await db.fetch("SELECT projection, event_type FROM projection_errors")
    assert [tuple(e) for e in errors] == [("locations", "location.updated")]


async def test_one_process_leads_and_another_takes_over_when_it_dies(database_url: str, db: Db) -> None:
    engines: list[AsyncEngine] = [create_engine(database_url, pool_size=3) for _ in range(2)]
    stores = [EventStore(e) for e in engines]
    runners = [runner(s, CountingProjection()) for s in stores]
    tasks = [asyncio.create_task(r.run()) for r in runners]
    try:
        await asyncio.wait_for(_first_active(runners), 5)
        await asyncio.sleep(0.5)  # give the other every chance to (wrongly) lead too
        assert sum(r.active.is_set() for r in runners) == 1
        leader = next(i for i, r in enumerate(runners) if r.active.is_set())
        tasks[leader].cancel()  # the leading process dies: its lease connection closes
        follower = runners[1 - leader]
        await asyncio.wait_for(follower.active.wait(), 5)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for e in engines:
            await e.dispose()


async def _first_active(runners: list[ProjectionRunner]) -> None:
    waits = [asyncio.create_task(r.active.wait()) for r in runners]
    await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
    for wait in waits:
        wait.cancel()


async def test_runners_racing_without_the_lease_never_apply_an_event_twice(store: EventStore, db: Db) -> None:
    for i in range(60):
        await store.append(f"s{i % 5}", [event(i=i)])
    racers = [runner(store, CountingProjection()) for _ in range(4)]
    for racer in racers:
        racer.batch_size = 7
    while sum(await asyncio.gather(*(racer.step() for racer in racers))):
        pass
    assert await db.fetchval("SELECT count(*) FROM test_applied") == 60  # a repeat would violate the key


async def test_a_running_projection_survives_the_database_dropping_its_connections(
    store: EventStore, db: Db
) -> None:
    run = runner(store, CountingProjection())
    async with run.doorbell:
        task = asyncio.create_task(run.run())
        try:
            await store.append("s", [event()])
            await asyncio.wait_for(_applied(db, 1), 5)
            await db.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE application_name = 'chargeline' AND pid <> pg_backend_pid()"
            )
            await asyncio.sleep(0.2)  # the server's goodbye reaches the client sockets
            for i in range(10):
                await store.append("s", [event(i=i)])
            await asyncio.wait_for(_applied(db, 11), 10)
            assert await checkpoint(db, "counting") == await store.head_position()
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)


async def _applied(db: Db, count: int) -> None:
    while await db.fetchval("SELECT count(*) FROM test_applied") < count:  # noqa: ASYNC110 - polls the DB
        await asyncio.sleep(0.05)


async def test_a_projection_of_few_types_moves_past_all_other_events_to_the_head(
    store: EventStore, db: Db
) -> None:
    for i in range(30):
        await store.append(f"s{i}", [event("session.updated")])
    run = runner(store, LocationsProjection())
    assert await run.step() == 0  # caught up: nothing was for this projection ...
    assert await checkpoint(db, "locations") == await store.head_position()  # ... and it moved past it all
    assert run.position == await store.head_position()
    location = (FIXTURES / "location.updated.json").read_bytes()
    await EdrvIntake(store, secret=None, tolerance_s=300).receive(location, signature=None, content_type=None)
    run.batch_size = 1
    assert await run.step() == 1
    assert await db.fetchval("SELECT name FROM locations") == "Hafen Laden GmbH"
    assert await checkpoint(db, "locations") == await store.head_position()


async def test_others_events_are_followed_in_memory_and_stored_past_at_most_once_a_second(
    store: EventStore, db: Db
) -> None:
    run = runner(store, LocationsProjection())
    run.checkpoint_every_s = 3600  # however slow the machine, the next steps come "within the second"
    assert await run.step() == 0
    stored = await checkpoint(db, "locations")
    for i in range(30):
        await store.append(f"s{i}", [event("session.updated")])
    # A look without the checkpoint's lock: caught up in memory (read-your-writes waiters see it) ...
    assert await run.step() == 0
    assert run.position == await store.head_position()
    assert await run.reached(await store.head_position(), timeout_s=0.1)
    assert await checkpoint(db, "locations") == stored  # ... and no write for events it ignores
    # Its own event is applied at the very next step, and the stored checkpoint moves past everything.
    location = (FIXTURES / "location.updated.json").read_bytes()
    await EdrvIntake(store, secret=None, tolerance_s=300).receive(location, signature=None, content_type=None)
    assert await run.step() == 1
    assert await checkpoint(db, "locations") == await store.head_position()


class ExplodingProjection(CountingProjection):
    """Its read-model write fails in PostgreSQL for one kind of event."""

    name: str = "exploding"

    async def apply(self, connection: Connection, events: Sequence[RecordedEvent]) -> list[Poison]:
        poisons = await super().apply(connection, events)
        if any(e.type == "explode" for e in events):
            await connection.execute("SELECT 1 / 0")
        return poisons


async def test_an_event_whose_write_postgres_refuses_is_recorded_not_a_stall(
    store: EventStore, db: Db
) -> None:
    await store.append("s", [event(), event("explode"), event(), event()])
    assert await runner(store, ExplodingProjection()).step() == 4
    errors = await db.fetch("SELECT event_type, error FROM projection_errors WHERE projection = 'exploding'")
    assert [(e["event_type"], e["error"].split(":")[0]) for e in errors] == [
        ("explode", "DivisionByZeroError")
    ]
    assert await db.fetchval("SELECT count(*) FROM test_applied") == 3  # the other three, once each
    assert await checkpoint(db, "exploding") == await store.head_position()


async def test_the_first_event_after_a_quiet_spell_is_applied_without_waiting_for_the_pace(
    store: EventStore, db: Db
) -> None:
    slow = ProjectionRunner(
        store, CountingProjection(), Doorbell(store.engine, poll_interval_s=60), retry_s=0.1, pace_s=60
    )
    async with slow.doorbell:
        task = asyncio.create_task(slow.run())
        try:
            await asyncio.wait_for(slow.active.wait(), 5)
            await asyncio.wait_for(slow.doorbell.listening.wait(), 5)
            await asyncio.sleep(0.2)  # caught up with the empty log: waiting on the doorbell
            await store.append("s", [event()])
            await asyncio.wait_for(_applied(db, 1), 5)  # long before the 60 s pace or poll
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
