"""Health checks for load balancers: liveness, and readiness that means "can store a webhook now"."""

from __future__ import annotations

from pathlib import Path

from litestar.testing import AsyncTestClient
from sqlalchemy.engine import make_url

from service.app import create_app
from service.db.migrate import head_revision
from tests.api.conftest import Client, settings_for_tests
from tests.conftest import Db


async def test_live_answers_while_the_process_runs(client: Client) -> None:
    response = await client.get("/health/live")
    assert (response.status_code, response.json()) == (200, {"status": "ok"})


async def test_ready_when_the_database_answers_at_the_latest_migration(client: Client) -> None:
    response = await client.get("/health/ready")
    assert response.status_code == 200
    assert response.json() == {
        "status": "ok",
        "database": True,
        "migration": head_revision(),
        "head": head_revision(),
    }


async def test_not_ready_when_the_database_is_unreachable(tmp_path: Path) -> None:
    app = create_app(settings_for_tests(tmp_path), database_url="postgresql://nobody@127.0.0.1:1/none")
    async with AsyncTestClient(app=app) as client:
        response = await client.get("/health/ready")
        assert response.status_code == 503
        assert response.headers["content-type"] == "application/problem+json"
        assert response.json()["database"] is False
        assert (await client.get("/health/live")).status_code == 200


async def test_unknown_routes_are_problem_details_too(client: Client) -> None:
    response = await client.get("/no/such/route")
    assert response.status_code == 404
    assert response.headers["content-type"] == "application/problem+json"


async def test_not_ready_when_the_schema_is_behind_the_latest_migration(
    db: Db, database_url: str, tmp_path: Path
) -> None:
    await db.execute("DROP DATABASE IF EXISTS chargeline_unmigrated")
    await db.execute("CREATE DATABASE chargeline_unmigrated")
    try:
        url = make_url(database_url).set(database="chargeline_unmigrated").render_as_string(False)
        app = create_app(settings_for_tests(tmp_path), database_url=url)
        async with AsyncTestClient(app=app) as client:
            response = await client.get("/health/ready")
            assert response.status_code == 503
            body = response.json()
            assert (body["database"], body["migration"], body["head"]) == (True, None, head_revision())
            assert "chargeline migrate" in body["detail"]
    finally:
        await db.execute("DROP DATABASE chargeline_unmigrated WITH (FORCE)")
