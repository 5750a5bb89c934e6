"""Operators watch and rebuild projections through the admin API."""

from __future__ import annotations

import asyncio
import re
from typing import Any

from tests.api.conftest import ADMIN_TOKEN, Client
from tests.api.test_availability import caught_up, post_scenario

AUTH = {"Authorization": f"Bearer {ADMIN_TOKEN}"}


async def statuses(client: Client) -> dict[str, Any]:
    response = await client.get("/v1/admin/projections", headers=AUTH)
    assert response.status_code == 200
    body: dict[str, Any] = response.json()
    return body


async def test_status_shows_every_projection_catching_up_to_the_head(client: Client) -> None:
    head = await post_scenario(client)
    await caught_up(client, "/v1/locations", head)
    await caught_up(client, "/v1/sessions/6601bb0000000000000000e1", head)
    body = await statuses(client)
    assert body["head"] == head
    by_name = {p["name"]: p for p in body["projections"]}
    assert set(by_name) == {"locations", "connector_availability", "sessions", "tickets"}
    assert (by_name["locations"]["lag"], by_name["sessions"]["errors"]) == (0, 0)
    assert (await client.get("/v1/admin/projections")).status_code == 401


async def test_a_rebuild_runs_in_the_background_and_serves_the_same_answers(client: Client) -> None:
    head = await post_scenario(client)
    before = await caught_up(client, "/v1/locations", head)
    response = await client.post("/v1/admin/projections/connector_availability/rebuild", headers=AUTH)
    assert (response.status_code, response.json()) == (
        202,
        {"name": "connector_availability", "status": "rebuilding"},
    )
    for _ in range(100):
        if not (await statuses(client))["rebuilding"]:
            break
        await asyncio.sleep(0.05)
    final = await statuses(client)
    assert (final["rebuilding"], final["failed_rebuilds"]) == ([], {})
    assert await caught_up(client, "/v1/locations", head) == before


async def test_rebuilding_an_unknown_projection_is_a_404_problem(client: Client) -> None:
    response = await client.post("/v1/admin/projections/nope/rebuild", headers=AUTH)
    assert response.status_code == 404
    assert "connector_availability" in response.json()["detail"]
    assert (await client.post("/v1/admin/projections/locations/rebuild")).status_code == 401


async def test_metrics_show_each_projections_position_lag_and_skipped_events(client: Client) -> None:
    head = await post_scenario(client)
    unreadable = (
        b'{"_id": "65b0000000000000000000ee", "object": "location", "type": "location.updated",'
        b' "data": {"_id": "6601aa00000000000000001a", "active": "perhaps"}}'
    )
    assert (await client.post("/webhooks/edrv", content=unreadable)).status_code == 200
    await caught_up(client, "/v1/locations", head + 1)
    await caught_up(client, "/v1/sessions/6601bb0000000000000000e1", head + 1)
    metrics = (await client.get("/metrics")).text
    assert f'chargeline_projection_position{{projection="sessions"}} {head + 1}.0' in metrics
    assert 'chargeline_projection_lag_events{projection="sessions"} 0.0' in metrics
    skipped = re.search(
        r'chargeline_projection_skipped_events_total\{projection="locations"\} (\S+)', metrics
    )
    assert skipped is not None
    assert float(skipped.group(1)) >= 1
    by_name = {p["name"]: p for p in (await statuses(client))["projections"]}
    assert by_name["locations"]["errors"] == 1
