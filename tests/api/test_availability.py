"""The public availability API and the sessions admin API, fed by posting the scenario as eDRV would."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from tests.api.conftest import ADMIN_TOKEN, Client
from tests.conftest import FIXTURES

AUTH = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
LOCATION = "6601aa00000000000000001a"


async def post_scenario(client: Client) -> int:
    lines = (FIXTURES / "scenario.one-location-day.jsonl").read_bytes().splitlines()
    for line in lines:
        assert (await client.post("/webhooks/edrv", content=line)).status_code == 200
    return 14  # the log's head: 15 deliveries, one of them a redelivery


async def caught_up(client: Client, path: str, position: int, **params: Any) -> dict[str, Any]:
    """Read-your-writes: poll until the response reflects ``position``."""
    for _ in range(200):
        response = await client.get(path, params=params, headers=AUTH)
        body: dict[str, Any] = response.json()
        if response.status_code == 200 and body["as_of_position"] >= position:
            return body
        await asyncio.sleep(0.05)
    raise AssertionError(f"{path} never caught up with position {position}: {body}")


async def test_a_location_shows_its_stations_and_connectors_as_the_scenario_left_them(client: Client) -> None:
    head = await post_scenario(client)
    location = await caught_up(client, f"/v1/locations/{LOCATION}", head)
    assert (location["name"], location["timezone"]) == ("Hafen Laden GmbH", "Europe/Berlin")
    assert location["opening_hours"]["1"] == [{"startTime": "06:00", "endTime": "22:00"}]
    assert location["address"]["city"] == "Hamburg"
    stations = {s["id"][-2:]: s for s in location["chargestations"]}
    assert (stations["c1"]["online"], stations["c2"]["online"]) == (True, False)
    assert stations["c2"]["protocol"] == "ocpp2.0.1"
    connectors = {c["id"][-2:]: c for s in location["chargestations"] for c in s["connectors"]}
    assert {k: (c["status"], c["offerable"]) for k, c in connectors.items()} == {
        "d1": ("available", True),
        "d2": ("charging", False),
        "d3": ("occupied", False),
    }
    d1 = connectors["d1"]
    assert set(d1) == {
        "id", "chargestation_id", "status", "raw_status", "type", "format", "power_type", "power_kw",
        "active", "offerable", "status_changed_at",
    }  # fmt: skip
    assert (d1["raw_status"], d1["type"], d1["format"], d1["power_type"], d1["power_kw"]) == (
        "Available",
        "CCS2",
        "CABLE",
        "DC",
        150,
    )


async def test_locations_list_and_a_chargestation(client: Client) -> None:
    head = await post_scenario(client)
    listing = await caught_up(client, "/v1/locations", head)
    assert [loc["id"] for loc in listing["locations"]] == [LOCATION]
    station = await caught_up(client, "/v1/chargestations/6601aa0000000000000000c2", head)
    assert station["location_id"] == LOCATION
    assert [c["status"] for c in station["connectors"]] == ["occupied"]


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({}, ["d1", "d2", "d3"]),
        ({"offerable": "true"}, ["d1"]),
        ({"offerable": "false"}, ["d2", "d3"]),
        ({"type": "ccs2"}, ["d1"]),
        ({"min_power_kw": "50"}, ["d1", "d2"]),
        ({"location_id": LOCATION, "min_power_kw": "100"}, ["d1"]),
        ({"location_id": "elsewhere"}, []),
    ],
)
async def test_connectors_filter_by_location_offerable_type_and_power(
    client: Client, params: dict[str, str], expected: list[str]
) -> None:
    head = await post_scenario(client)
    listing = await caught_up(client, "/v1/connectors", head, **params)
    assert sorted(c["id"][-2:] for c in listing["connectors"]) == expected


async def test_a_session_for_operators(client: Client) -> None:
    head = await post_scenario(client)
    session = await caught_up(client, "/v1/sessions/6601bb0000000000000000e1", head)
    assert session == {
        "id": "6601bb0000000000000000e1",
        "user_id": "6601bb00000000000000aa01",
        "chargestation_id": "6601aa0000000000000000c1",
        "connector_id": "6601aa0000000000000000d1",
        "status": "ended",
        "started_at": "2024-05-02T09:15:30Z",
        "ended_at": None,
        "energy_kwh": 18.3,
        "power_kw": None,
        "soc_percent": None,
        "cost": {"amount": 0.0, "currency": "EUR"},
        "updated_at": "2024-05-02T09:39:58Z",
        "as_of_position": head,
    }
    assert (await client.get("/v1/sessions/6601bb0000000000000000e1")).status_code == 401


async def test_unknown_resources_are_404_problems(client: Client) -> None:
    for path in ("/v1/locations/nope", "/v1/chargestations/nope"):
        response = await client.get(path)
        assert response.status_code == 404
        assert response.headers["content-type"] == "application/problem+json"
    response = await client.get("/v1/sessions/nope", headers=AUTH)
    assert response.status_code == 404


async def test_malformed_filters_are_400_problems(client: Client) -> None:
    for params in ({"offerable": "maybe"}, {"min_power_kw": "-1"}, {"min_power_kw": "lots"}):
        response = await client.get("/v1/connectors", params=params)
        assert response.status_code == 400, params
        assert response.headers["content-type"] == "application/problem+json"
