"""A rebuild by replay yields exactly the live read models, while the service keeps running."""

from __future__ import annotations

import asyncio
import json
import random
from datetime import UTC, datetime, timedelta

import pytest

from service.db.roles import SERVICE_ROLE
from service.dispatch.queues import Queues
from service.edrv.intake import EdrvIntake
from service.eventlog.doorbell import Doorbell
from service.eventlog.store import EventStore
from service.projections import queries
from service.projections.catalog import PROJECTIONS
from service.projections.rebuild import RebuildInProgress, rebuild
from service.projections.runner import ProjectionRunner
from tests.conftest import FIXTURES, Db
from tests.queue_traffic import play

STATUSES = ["Available", "Preparing", "Charging", "SuspendedEV", "Finishing", "Faulted", "Unavailable"]
T0 = datetime(2024, 5, 3, 8, tzinfo=UTC)


def random_traffic(seed: int, count: int) -> list[bytes]:
    """Station and session deliveries for a few resources, reported out of order like eDRV does."""
    rng = random.Random(seed)
    bodies = []
    for n in range(count):
        when = (T0 + timedelta(seconds=rng.randrange(0, 3600))).isoformat().replace("+00:00", "Z")
        delivery = f"{seed:04x}{n:020x}"
        if rng.random() < 0.6:
            station = f"st{rng.randrange(4)}"
            kind = rng.choice(
                ["chargestation.connector_status.updated", "chargestation.online", "chargestation.offline"]
            )
            data = {
                "_id": station,
                "location": f"loc{rng.randrange(2)}",
                "online": kind != "chargestation.offline",
                "active": rng.random() > 0.1,
                "updatedAt": when,
                "connectors": [
                    {
                        "_id": f"{station}-k{k}",
                        "status": rng.choice(STATUSES),
                        "type": rng.choice(["CCS2", "Type2"]),
                        "power": rng.choice([11, "22", 150]),
                        "updatedAt": when,
                    }
                    for k in range(2)
                    if rng.random() < 0.8
                ],
            }
            bodies.append(
                json.dumps({"_id": delivery, "object": "chargestation", "type": kind, "data": data})
            )
        else:
            kind = rng.choice(["session.started", "session.updated", "session.ended", "session.cancelled"])
            data = {
                "_id": f"se{rng.randrange(5)}",
                "user": f"u{rng.randrange(3)}",
                "connector": f"st{rng.randrange(4)}-k0",
                "status": rng.choice(["started", "Started", "ENDED"]),
                "metrics": {
                    "chargingStart": "2024-05-03T08:00:00Z",
                    "energyConsumed": rng.randrange(0, 40000),
                },
                "energy_report": {"power": {"value": str(rng.uniform(1, 50))[:5], "unit": "kW"}},
                "updatedAt": when,
            }
            bodies.append(json.dumps({"_id": delivery, "object": "session", "type": kind, "data": data}))
    return [body.encode() for body in bodies]


async def content_hashes(db: Db) -> dict[str, str]:
    hashes = {}
    for projection in PROJECTIONS.values():
        for table in projection.tables:
            hashes[table] = await db.fetchval(
                f"SELECT md5(coalesce(string_agg(t::text, '|' ORDER BY t::text), '')) FROM {table} t"
            )
    return hashes


async def catch_up(store: EventStore) -> None:
    for projection in PROJECTIONS.values():
        runner = ProjectionRunner(store, projection, Doorbell(store.engine))
        while await runner.step():
            pass


@pytest.mark.parametrize("seed", [1, 2, 3])
async def test_rebuilding_every_projection_reproduces_the_live_tables_exactly(
    store: EventStore, db: Db, seed: int
) -> None:
    intake = EdrvIntake(store, secret=None, tolerance_s=300)
    scenario = (FIXTURES / "scenario.one-location-day.jsonl").read_bytes().splitlines()
    for body in [*scenario, *random_traffic(seed, 300)]:
        await intake.receive(body, signature=None, content_type="application/json")
    await play(Queues(store), seed, 200)  # drivers, operators, deadlines: the tickets read model
    await catch_up(store)
    live = await content_hashes(db)
    assert await db.fetchval("SELECT count(*) FROM connectors") > 3
    assert await db.fetchval("SELECT count(DISTINCT status) FROM tickets") >= 4

    for projection in PROJECTIONS.values():
        await rebuild(store, projection)

    assert await content_hashes(db) == live
    head = await store.head_position()
    assert {r["position"] for r in await db.fetch("SELECT position FROM projection_checkpoints")} == {head}
    assert await db.fetchval("SELECT count(*) FROM pg_namespace WHERE nspname LIKE 'rebuild_%'") == 0
    assert await db.fetchval("SELECT reloptions FROM pg_class WHERE oid = 'public.sessions'::regclass") == [
        "fillfactor=70"
    ]  # the swapped-in table keeps the live one's storage parameters


async def test_a_rebuild_swaps_in_while_the_live_runner_and_ingest_keep_going(
    store: EventStore, db: Db
) -> None:
    intake = EdrvIntake(store, secret=None, tolerance_s=300)
    traffic = random_traffic(7, 400)
    for body in traffic[:200]:
        await intake.receive(body, signature=None, content_type="application/json")
    projection = PROJECTIONS["connector_availability"]
    live_runner = ProjectionRunner(store, projection, Doorbell(store.engine, poll_interval_s=0.02), pace_s=0)
    async with live_runner.doorbell:
        running = asyncio.create_task(live_runner.run())
        try:

            async def keep_ingesting() -> None:
                for body in traffic[200:]:
                    await intake.receive(body, signature=None, content_type="application/json")

            ingest = asyncio.create_task(keep_ingesting())
            reads = 0
            rebuilding = asyncio.create_task(rebuild(store, projection))
            while not rebuilding.done():  # readers are served throughout
                await db.fetchval("SELECT count(*) FROM connectors")
                reads += 1
                await asyncio.sleep(0.01)
            await rebuilding
            await ingest
            await projected_to(db, projection.name, await store.head_position())
        finally:
            running.cancel()
            await asyncio.gather(running, return_exceptions=True)
    rebuilt = await content_hashes(db)
    await rebuild(store, projection)  # a quiet rebuild of the same log is the reference
    assert (await content_hashes(db))["connectors"] == rebuilt["connectors"]
    assert reads > 0


async def projected_to(db: Db, name: str, position: int) -> None:
    query = "SELECT position FROM projection_checkpoints WHERE name = $1"
    while await db.fetchval(query, name) < position:  # noqa: ASYNC110 - polls the database
        await asyncio.sleep(0.05)


async def test_a_rebuild_interrupted_half_way_is_simply_run_again(store: EventStore, db: Db) -> None:
    intake = EdrvIntake(store, secret=None, tolerance_s=300)
    for body in (FIXTURES / "scenario.one-location-day.jsonl").read_bytes().splitlines():
        await intake.receive(body, signature=None, content_type="application/json")
    await catch_up(store)
    live = await content_hashes(db)
    # What an interrupted run leaves behind: a half-built schema (the service's), never the live tables.
    await db.execute(
        "CREATE SCHEMA rebuild_sessions; CREATE TABLE rebuild_sessions.sessions (LIKE public.sessions);"
        f"ALTER SCHEMA rebuild_sessions OWNER TO {SERVICE_ROLE}"
    )
    await db.execute("INSERT INTO rebuild_sessions.sessions SELECT * FROM public.sessions LIMIT 0")
    assert await content_hashes(db) == live
    await rebuild(store, PROJECTIONS["sessions"])
    assert await content_hashes(db) == live
    assert await db.fetchval("SELECT count(*) FROM pg_namespace WHERE nspname = 'rebuild_sessions'") == 0


async def test_a_reader_in_a_snapshot_never_sees_a_half_swapped_read_model(store: EventStore, db: Db) -> None:
    intake = EdrvIntake(store, secret=None, tolerance_s=300)
    for body in (FIXTURES / "scenario.one-location-day.jsonl").read_bytes().splitlines():
        await intake.receive(body, signature=None, content_type="application/json")
    await catch_up(store)
    async with queries.snapshot(store, "connector_availability") as (connection, as_of):
        before = await queries.connectors(connection)
    assert len(before) == 3
    async with queries.snapshot(store, "connector_availability") as (connection, as_of):
        # Nothing read from the read model yet: only the snapshot's position is fixed.
        swapping = asyncio.create_task(rebuild(store, PROJECTIONS["connector_availability"]))
        await asyncio.sleep(0.5)  # the rebuild builds, then waits for this reader to finish
        assert await queries.connectors(connection) == before
        assert not swapping.done()
    await swapping
    async with queries.snapshot(store, "connector_availability") as (connection, after_as_of):
        assert after_as_of == as_of
        assert await queries.connectors(connection) == before


async def test_only_one_rebuild_of_a_projection_runs_at_a_time(store: EventStore) -> None:
    for body in random_traffic(5, 200):
        await EdrvIntake(store, secret=None, tolerance_s=300).receive(body, signature=None, content_type=None)
    results = await asyncio.gather(
        rebuild(store, PROJECTIONS["sessions"]),
        rebuild(store, PROJECTIONS["sessions"]),
        return_exceptions=True,
    )
    assert sum(isinstance(r, RebuildInProgress) for r in results) == 1
    assert sum(isinstance(r, int) for r in results) == 1
