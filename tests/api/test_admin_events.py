"""GET /v1/admin/events: operators page through the log; nobody else can."""

from __future__ import annotations

import json
from pathlib import Path

from litestar.testing import AsyncTestClient

from service.app import create_app
from tests.api.conftest import ADMIN_TOKEN, Client, settings_for_tests
from tests.conftest import FIXTURES

AUTH = {"Authorization": f"Bearer {ADMIN_TOKEN}"}


async def load_scenario(client: Client) -> None:
    for line in (FIXTURES / "scenario.one-location-day.jsonl").read_bytes().splitlines():
        assert (await client.post("/webhooks/edrv", content=line)).status_code == 200


async def test_events_come_in_position_order_with_every_field(client: Client) -> None:
    await load_scenario(client)
    response = await client.get("/v1/admin/events", headers=AUTH)
    assert response.status_code == 200
    page = response.json()
    assert page["next_after"] is None
    events = page["events"]
    assert len(events) == 14
    assert [e["position"] for e in events] == sorted(e["position"] for e in events)
    first = events[0]
    assert set(first) == {
        "position",
        "stream_id",
        "version",
        "type",
        "occurred_at",
        "recorded_at",
        "data",
        "metadata",
    }
    assert first["type"] == "location.created"
    assert first["stream_id"] == "location-6601aa00000000000000001a"
    assert first["data"]["timezone"] == "Europe/Berlin"
    assert first["metadata"]["external_id"] == "65b00000000000000000000f"


async def test_pages_follow_next_after_to_the_end(client: Client) -> None:
    await load_scenario(client)
    seen: list[int] = []
    after: int | None = 0
    while after is not None:
        page = (
            await client.get("/v1/admin/events", params={"after": after, "limit": 5}, headers=AUTH)
        ).json()
        seen += [e["position"] for e in page["events"]]
        after = page["next_after"]
    assert len(seen) == 14
    assert len(set(seen)) == 14


async def test_filters_by_stream_and_type(client: Client) -> None:
    await load_scenario(client)
    by_stream = (
        await client.get(
            "/v1/admin/events", params={"stream_id": "session-6601bb0000000000000000e1"}, headers=AUTH
        )
    ).json()["events"]
    assert by_stream
    assert {e["stream_id"] for e in by_stream} == {"session-6601bb0000000000000000e1"}
    assert [e["version"] for e in by_stream] == list(range(1, len(by_stream) + 1))
    by_type = (await client.get("/v1/admin/events", params={"type": "session.ended"}, headers=AUTH)).json()[
        "events"
    ]
    assert [e["type"] for e in by_type] == ["session.ended"]


async def test_without_or_with_a_wrong_token_gets_401_problem(client: Client) -> None:
    for headers in (
        {},
        {"Authorization": "Bearer wrong"},
        {"Authorization": ADMIN_TOKEN},
        {"Authorization": "Basic x"},
    ):
        response = await client.get("/v1/admin/events", headers=headers)
        assert response.status_code == 401
        assert response.headers["content-type"] == "application/problem+json"
        assert response.headers["www-authenticate"].startswith("Bearer")
        assert response.json()["status"] == 401


async def test_admin_api_is_closed_when_no_token_is_configured(database_url: str, tmp_path: Path) -> None:
    app = create_app(settings_for_tests(tmp_path, admin_token=None), database_url=database_url)
    async with AsyncTestClient(app=app) as client:
        response = await client.get("/v1/admin/events", headers={"Authorization": "Bearer "})
        assert response.status_code == 401
        assert "CHARGELINE_ADMIN_TOKEN" in response.json()["detail"]


async def test_out_of_range_parameters_get_400_problem(client: Client) -> None:
    out_of_range: list[dict[str, str | int]] = [
        {"limit": 0},
        {"limit": 1001},
        {"after": -1},
        {"after": "soon"},
        {"after": 2**63},  # beyond a bigint (found by schemathesis: was a 500)
        {"type": "ticket.\x00joined"},  # NUL cannot be stored, nor searched for (was a 500)
        {"stream_id": "\x00"},
    ]
    for params in out_of_range:
        response = await client.get("/v1/admin/events", params=params, headers=AUTH)
        assert response.status_code == 400, params
        assert response.headers["content-type"] == "application/problem+json"
        assert json.loads(response.content)["status"] == 400


async def test_database_unreachable_gets_503_problem(tmp_path: Path) -> None:
    app = create_app(settings_for_tests(tmp_path), database_url="postgresql://nobody@127.0.0.1:1/none")
    async with AsyncTestClient(app=app) as client:
        response = await client.get("/v1/admin/events", headers=AUTH)
        assert response.status_code == 503
        assert response.headers["content-type"] == "application/problem+json"
