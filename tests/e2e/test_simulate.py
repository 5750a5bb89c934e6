"""``chargeline simulate`` against the running server: signed webhooks and drivers over HTTP only.

The service must take every delivery (no errors), keep each delivery once however often it came, end
with every connector and station as the simulated world left them (late deliveries do not roll back),
and move its queues: drivers join, get offers, plug in and are fulfilled.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
from pathlib import Path

import httpx
import pytest
from rich.console import Console

from service.simulate.runner import Simulation, SimulationOptions
from tests.conftest import Db, empty_the_log
from tests.e2e.server import BIN, Server

JWT = "e2e-simulate-jwt-secret-0123456789abc"
SECRET = "e2e-simulate-webhook-secret"


@pytest.fixture
async def server(database_url: str, db: Db, tmp_path: Path) -> Server:
    await empty_the_log(db)
    return Server(tmp_path / "data", database_url=database_url, jwt_secret=JWT, webhook_secret=SECRET)


async def test_a_simulated_afternoon_is_taken_whole_and_ends_where_the_world_ends(
    server: Server, db: Db
) -> None:
    server.start()
    try:
        options = SimulationOptions(
            url=server.url, jwt_secret=JWT, webhook_secret=SECRET, admin_token="e2e", run="e2e",
            seed=11, locations=4, stations=3, speed=180, duration_s=20, drivers=2.0, progress_every_s=None,
        )  # fmt: skip
        async with httpx.AsyncClient(base_url=server.url, timeout=60) as client:
            simulation = Simulation(options, client, Console(quiet=True))
            summary = await simulation.run(asyncio.Event())

            assert summary.errors == []
            assert sum(summary.webhooks.values()) > 300
            assert summary.deliveries["late"] > 0
            assert summary.deliveries["redelivered"] > 0
            drivers = summary.drivers
            assert drivers["joined"] > 10
            assert drivers["offers"] > 0
            assert drivers["accepted"] > 0
            assert drivers["fulfilled"] > 0
            assert drivers["fulfilled"] <= summary.world["driver_plug_ins"]  # only a driver's own car fulfils

            # Every delivery once: the redelivered copies were answered 200 and not stored again.
            distinct = summary.deliveries["on_time"] + summary.deliveries["late"]
            stored = await db.fetchval("SELECT count(*) FROM events WHERE stream_id NOT LIKE 'queue-%'")
            assert stored == distinct
            # ... and nothing of it was set aside: no delivery quarantined, no event a read model skipped.
            assert await db.fetchval("SELECT count(*) FROM quarantine") == 0
            assert await db.fetch("SELECT projection, event_type, error FROM projection_errors") == []

            # The read models reach the world's end state (they fold asynchronously: give them a moment).
            world = {bay.connector.id: bay.connector.status for bay in simulation.world.bays.values()}
            online = {bay.station.id: bay.station.station.online for bay in simulation.world.bays.values()}
            seen: dict[str, str | None] = {}
            for _ in range(100):
                answer = (await client.get("/v1/locations")).json()
                stations = [s for location in answer["locations"] for s in location["chargestations"]]
                seen = {c["id"]: c["raw_status"] for s in stations for c in s["connectors"]}
                if seen == world and {s["id"]: s["online"] for s in stations} == online:
                    break
                await asyncio.sleep(0.1)
            assert seen == world
    finally:
        server.stop()


def test_the_simulate_command_prints_a_summary_and_writes_it_as_json(server: Server, tmp_path: Path) -> None:
    server.start()
    try:
        out = tmp_path / "summary.json"
        done = subprocess.run(
            [str(BIN / "chargeline"), "simulate", "--url", server.url, "--duration", "4", "--speed", "300",
             "--locations", "2", "--seed", "5", "--json", str(out), "--quiet"],
            env=server.env, capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        assert "Simulation (seed 5, 300x speed)" in done.stderr
        summary = json.loads(out.read_text())
        assert summary["seed"] == 5
        assert summary["webhooks_sent"] > 0
        assert summary["error_count"] == 0
    finally:
        server.stop()
