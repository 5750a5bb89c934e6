"""A busy afternoon at the scenario's location, played against the running server over HTTP only: eDRV's
webhooks in, six drivers' apps and an operator out. Every driver's outcome is checked at the end.

The morning is the fixture scenario (CCS2 ``d1`` free, CHAdeMO ``d2`` charging, Type2 ``d3`` on an
offline station). Windows are short (3 s) so that no-answers and no-shows happen within the test.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from service.api.drivers import mint_token
from service.simulate.edrv import Connector, Station, session_ended, session_started
from tests.conftest import FIXTURES, Db, empty_the_log
from tests.e2e.server import Server

LOCATION = "6601aa00000000000000001a"
C1, C2 = "6601aa0000000000000000c1", "6601aa0000000000000000c2"
D1, D2, D3 = "6601aa0000000000000000d1", "6601aa0000000000000000d2", "6601aa0000000000000000d3"
JWT = "e2e-jwt-secret-0123456789abcdef01"
ADMIN = {"Authorization": "Bearer e2e"}


@pytest.fixture
async def http(database_url: str, db: Db, tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    await empty_the_log(db)
    server = Server(tmp_path / "data", database_url=database_url, jwt_secret=JWT)
    server.start()
    try:
        async with httpx.AsyncClient(base_url=server.url, timeout=10) as client:
            yield client
    finally:
        server.stop()


class App:
    """One driver's phone."""

    def __init__(self, http: httpx.AsyncClient, name: str) -> None:
        self.http = http
        self.name = name
        self.headers = {"Authorization": f"Bearer {mint_token(JWT, name, edrv_user_id=f'edrv-{name}')}"}
        self.ticket_id = ""

    async def join(self, *types: str) -> dict[str, Any]:
        response = await self.http.post(
            f"/v1/locations/{LOCATION}/tickets", json={"connector_types": list(types)}, headers=self.headers
        )
        assert response.status_code == 201, response.text
        self.ticket_id = response.json()["id"]
        return dict(response.json())

    async def ticket(self) -> dict[str, Any]:
        response = await self.http.get(f"/v1/tickets/{self.ticket_id}", headers=self.headers)
        assert response.status_code == 200, response.text
        return dict(response.json())

    async def until(
        self, condition: Callable[[dict[str, Any]], bool], timeout_s: float = 15
    ) -> dict[str, Any]:
        for _ in range(int(timeout_s / 0.05)):
            ticket = await self.ticket()
            if condition(ticket):
                return ticket
            await asyncio.sleep(0.05)
        raise AssertionError(f"{self.name}'s ticket never got there: {ticket}")

    async def offered(self, connector: str) -> dict[str, Any]:
        ticket = await self.until(lambda t: t["status"] == "offered")
        assert ticket["offer"]["connector_id"] == connector, (self.name, ticket)
        return ticket

    async def do(self, action: str) -> dict[str, Any]:
        method = "DELETE" if action == "leave" else "POST"
        path = f"/v1/tickets/{self.ticket_id}" + ("" if action == "leave" else f"/{action}")
        response = await self.http.request(method, path, headers=self.headers)
        assert response.status_code == 200, response.text
        return dict(response.json())


async def webhook(http: httpx.AsyncClient, body: bytes) -> None:
    response = await http.post("/webhooks/edrv", content=body, headers={"content-type": "application/json"})
    assert (response.status_code, response.content) == (200, b"")


async def test_a_busy_afternoon_ends_with_every_driver_where_the_rules_say(http: httpx.AsyncClient) -> None:
    for line in (FIXTURES / "scenario.one-location-day.jsonl").read_bytes().splitlines():  # the morning
        await webhook(http, line)
    for _ in range(200):  # until the read models have the morning: the site and both its stations
        response = await http.get(f"/v1/locations/{LOCATION}")
        if response.status_code == 200 and len(response.json()["chargestations"]) == 2:
            break
        await asyncio.sleep(0.05)
    policy = {"respond_within_s": 3, "plug_in_within_s": 3, "max_snoozes": 1}
    response = await http.put(f"/v1/admin/locations/{LOCATION}/queue-policy", json=policy, headers=ADMIN)
    assert response.status_code == 200, response.text
    c1 = Station(
        C1, LOCATION, [Connector(D1, "CCS2", 150, "Available"), Connector(D2, "CHADEMO", 50, "Charging")]
    )
    c2 = Station(C2, LOCATION, [Connector(D3, "Type2", 22, "Occupied")], online=False, protocol="ocpp2.0.1")
    anna, ben, chloe, dev, emil, faye = (
        App(http, n) for n in ("anna", "ben", "chloe", "dev", "emil", "faye")
    )

    # Anna wants CCS2, which is free: offered at once; she accepts and plugs in.
    await anna.join("CCS2")
    await anna.offered(D1)
    assert (await anna.do("accept"))["status"] == "held"
    await webhook(http, c1.status(D1, "Preparing"))
    await webhook(http, session_started("s-anna", C1, D1, "edrv-anna"))
    await anna.until(lambda t: t["status"] == "fulfilled")

    # Everything is busy now. Five more drivers line up.
    await ben.join()  # any connector
    await chloe.join("CHAdeMO")
    await emil.join("CCS2")
    await faye.join("CCS2")
    await dev.join("Type 2")
    assert [(await a.ticket())["position"] for a in (ben, chloe, emil, faye, dev)] == [1, 2, 3, 4, 5]

    # CHAdeMO frees: Ben (first, takes anything) is offered it and snoozes; it passes to Chloe, who accepts
    # but never plugs in: a no-show. By then Ben's snooze is over and it is his again; he plugs in.
    await webhook(http, c1.status(D2, "Available"))
    await ben.offered(D2)
    assert (await ben.do("snooze"))["position"] == 1
    await chloe.offered(D2)
    await chloe.do("accept")
    await chloe.until(lambda t: t["status"] == "no_show")
    await ben.offered(D2)
    await ben.do("accept")
    await webhook(http, session_started("s-ben", C1, D2, "edrv-ben"))
    await ben.until(lambda t: t["status"] == "fulfilled")

    # The AC station comes back with its Type2 free: Dev is offered it, but a stranger plugs in first.
    # Dev goes back to the head of the line; when the stranger leaves, it is Dev's again.
    c2.connector(D3).status = "Available"
    await webhook(http, c2.online_body())
    await dev.offered(D3)
    await webhook(http, c2.status(D3, "Charging"))
    await webhook(http, session_started("s-stranger", C2, D3, "edrv-stranger"))
    back = await dev.until(lambda t: t["status"] == "waiting")
    assert (back["reason"], back["position"]) == ("queue_jumper", 1)
    await webhook(http, c2.status(D3, "Available"))
    await dev.offered(D3)
    await dev.do("accept")
    await webhook(http, session_started("s-dev", C2, D3, "edrv-dev"))
    await dev.until(lambda t: t["status"] == "fulfilled")

    # Emil gives up. Anna's session ends and CCS2 goes to Faye; then it faults: Faye is put back at the
    # head, and the operator takes her off the queue with a reason, since the charger is out for the day.
    await emil.do("leave")
    await webhook(http, session_ended("s-anna", C1, D1, "edrv-anna", *_an_hour()))
    await webhook(http, c1.status(D1, "Available"))
    await faye.offered(D1)
    await webhook(http, c1.status(D1, "Faulted"))
    assert (await faye.until(lambda t: t["status"] == "waiting"))["reason"] == "connector_faulted"
    removal = {"reason": "CCS2 charger out of service today"}
    response = await http.post(f"/v1/admin/tickets/{faye.ticket_id}/remove", json=removal, headers=ADMIN)
    assert response.status_code == 200, response.text

    outcomes = {a.name: await a.ticket() for a in (anna, ben, chloe, dev, emil, faye)}
    assert {name: t["status"] for name, t in outcomes.items()} == {
        "anna": "fulfilled",
        "ben": "fulfilled",
        "chloe": "no_show",
        "dev": "fulfilled",
        "emil": "cancelled",
        "faye": "removed",
    }
    assert {name: t["session_id"] for name, t in outcomes.items() if t["status"] == "fulfilled"} == {
        "anna": "s-anna",
        "ben": "s-ben",
        "dev": "s-dev",
    }
    assert outcomes["ben"]["snoozes_used"] == 1
    assert outcomes["faye"]["reason"] == "CCS2 charger out of service today"
    board = (await http.get(f"/v1/locations/{LOCATION}/queue")).json()
    assert board["line"] == []
    assert board["counts"] == {
        "waiting": 0,
        "offered": 0,
        "held": 0,
        "fulfilled": 3,
        "no_show": 1,
        "cancelled": 1,
        "removed": 1,
    }


def _an_hour() -> tuple[Any, Any]:
    from datetime import UTC, datetime, timedelta

    now = datetime.now(UTC)
    return now - timedelta(hours=1), now
