"""The one-day scenario, posted as eDRV would and folded by the live projections, ends as documented."""

from __future__ import annotations

from service.edrv.intake import EdrvIntake
from service.eventlog.doorbell import Doorbell
from service.eventlog.store import EventStore
from service.projections.availability_table import AvailabilityProjection
from service.projections.catalog import PROJECTIONS
from service.projections.runner import ProjectionRunner
from tests.conftest import FIXTURES, Db
from tests.unit.folds import fold, scenario


async def project_everything(store: EventStore) -> None:
    for projection in PROJECTIONS.values():
        runner = ProjectionRunner(store, projection, Doorbell(store.engine))
        while await runner.step():
            pass


async def test_scenario_end_state_in_the_read_models(store: EventStore, db: Db) -> None:
    intake = EdrvIntake(store, secret=None, tolerance_s=300)
    for line in (FIXTURES / "scenario.one-location-day.jsonl").read_bytes().splitlines():
        await intake.receive(line, signature=None, content_type="application/json")
    await project_everything(store)

    connectors = {
        row["id"][-2:]: (row["status"], row["offerable"], row["online"])
        for row in await db.fetch(
            "SELECT c.id, c.status, c.offerable, s.online FROM connectors c "
            "JOIN chargestations s ON s.id = c.chargestation_id"
        )
    }
    assert connectors == {
        "d1": ("available", True, True),
        "d2": ("charging", False, True),
        "d3": ("occupied", False, False),
    }
    session = await db.fetchrow("SELECT status, user_id, connector_id, energy_kwh FROM sessions")
    assert session is not None
    assert tuple(session) == ("ended", "6601bb00000000000000aa01", "6601aa0000000000000000d1", 18.3)
    assert await db.fetchval("SELECT name FROM locations") == "Hafen Laden GmbH"
    assert await db.fetchval("SELECT count(*) FROM projection_errors") == 0
    head = await store.head_position()
    assert {tuple(r) for r in await db.fetch("SELECT name, position FROM projection_checkpoints")} == {
        ("locations", head),
        ("connector_availability", head),
        ("sessions", head),
        ("tickets", head),
    }


async def test_projected_rows_equal_the_pure_folds_of_the_same_events(store: EventStore, db: Db) -> None:
    intake = EdrvIntake(store, secret=None, tolerance_s=300)
    for line in (FIXTURES / "scenario.one-location-day.jsonl").read_bytes().splitlines():
        await intake.receive(line, signature=None, content_type="application/json")
    await project_everything(store)
    async with store.connection() as connection:
        stored = await AvailabilityProjection().load(
            connection, ["6601aa0000000000000000c1", "6601aa0000000000000000c2"]
        )
    folded = fold(AvailabilityProjection().evolve, scenario())
    assert {f"chargestation-{key}": view for key, view in stored.items()} == folded
