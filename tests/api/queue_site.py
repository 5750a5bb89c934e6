"""A small site for queue tests, driven over HTTP: webhooks in, driver and operator requests, waiting for
the queue to move (the dispatcher and scheduler run in the app, as in production)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from service.api.drivers import mint_token
from service.simulate.edrv import Connector, Station, location_created
from tests.api.conftest import ADMIN_TOKEN, JWT_SECRET, Client

LOCATION = "loc-harbour"
ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}


def driver(driver_id: str, edrv_user: str | None = None) -> dict[str, str]:
    return {"Authorization": f"Bearer {mint_token(JWT_SECRET, driver_id, edrv_user_id=edrv_user)}"}


def harbour() -> tuple[Station, Station]:
    """Two stations: ``fast`` with a CCS2 150 kW and a CHAdeMO 50 kW, ``ac`` with a Type2 22 kW;
    everything occupied at first, so joiners wait."""
    fast = Station(
        "st-fast",
        LOCATION,
        [Connector("ccs", "CCS2", 150, "Charging"), Connector("chademo", "CHADEMO", 50, "Charging")],
    )
    ac = Station("st-ac", LOCATION, [Connector("t2", "Type2", 22, "Charging")], protocol="ocpp2.0.1")
    return fast, ac


async def post(client: Client, body: bytes) -> None:
    response = await client.post("/webhooks/edrv", content=body)
    assert response.status_code == 200, response.text


async def open_site(client: Client, *stations: Station) -> None:
    await post(client, location_created(LOCATION))
    for station in stations:
        await post(client, station.online_body())
    await until(client, f"/v1/locations/{LOCATION}", lambda b: len(b["chargestations"]) == len(stations))


async def join(client: Client, driver_id: str, edrv_user: str | None = None, **body: Any) -> dict[str, Any]:
    response = await client.post(
        f"/v1/locations/{LOCATION}/tickets", json=body, headers=driver(driver_id, edrv_user)
    )
    assert response.status_code == 201, response.text
    ticket: dict[str, Any] = response.json()
    return ticket


async def until(
    client: Client,
    path: str,
    condition: Callable[[dict[str, Any]], bool],
    headers: dict[str, str] | None = None,
    timeout_s: float = 10.0,
) -> dict[str, Any]:
    """Poll ``path`` until ``condition`` holds for its JSON body (the queue moves asynchronously)."""
    body: dict[str, Any] = {}
    for _ in range(int(timeout_s / 0.02)):
        response = await client.get(path, headers=headers or ADMIN)
        if response.status_code == 200:
            body = response.json()
            if condition(body):
                return body
        await asyncio.sleep(0.02)
    raise AssertionError(f"{path} never met the condition; last body: {body}")


async def ticket_until(
    client: Client, ticket: dict[str, Any], driver_id: str, condition: Callable[[dict[str, Any]], bool]
) -> dict[str, Any]:
    return await until(client, f"/v1/tickets/{ticket['id']}", condition, driver(driver_id))


def status_is(*statuses: str) -> Callable[[dict[str, Any]], bool]:
    return lambda ticket: ticket["status"] in statuses
