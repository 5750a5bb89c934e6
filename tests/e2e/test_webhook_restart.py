"""Outbound webhooks survive crashes and run on many instances: server processes are killed (SIGKILL)
while deliveries are on their way, another process takes over, and every ticket event reaches the app
backend, signed, an interrupted one again under the same ``webhook-id``."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path

import httpx

from service.api.drivers import mint_token
from service.simulate.edrv import Connector, Station, location_created
from tests.conftest import Db, empty_the_log
from tests.e2e.server import Server
from tests.webhook_receiver import Receiver, Reply, running

JWT = "e2e-jwt-secret-0123456789abcdef01"
ADMIN = {"Authorization": "Bearer e2e"}
LOCATION = "loc-hooks"


def _driver(name: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {mint_token(JWT, name)}"}


async def _until_true(check: Callable[[], Awaitable[bool]], what: str, timeout_s: float = 20.0) -> None:
    for _ in range(int(timeout_s / 0.1)):
        if await check():
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"never: {what}")


def _server(tmp_path: Path, name: str, database_url: str) -> Server:
    return Server(
        tmp_path / name, database_url=database_url, jwt_secret=JWT, allow_private_webhook_targets="true"
    )


def _kill(server: Server) -> None:
    """SIGKILL: no shutdown, no chance to record anything."""
    assert server.process is not None
    server.process.kill()
    server.process.wait()


async def _subscribe_and_open_site(http: httpx.AsyncClient, receiver: Receiver) -> None:
    created = await http.post("/v1/admin/subscriptions", json={"url": receiver.url}, headers=ADMIN)
    assert created.status_code == 201, created.text
    receiver.secrets = [created.json()["secret"]]
    station = Station("st-1", LOCATION, [Connector("c1", "CCS2", 150, "Charging")])  # busy: joiners wait
    for body in (location_created(LOCATION), station.online_body()):
        assert (await http.post("/webhooks/edrv", content=body)).status_code == 200

    async def site_known() -> bool:
        response = await http.get(f"/v1/locations/{LOCATION}")
        return response.status_code == 200 and bool(response.json()["chargestations"])

    await _until_true(site_known, "the site is known")


async def _join(http: httpx.AsyncClient, name: str) -> str:
    joined = await http.post(f"/v1/locations/{LOCATION}/tickets", json={}, headers=_driver(name))
    assert joined.status_code == 201, joined.text
    return str(joined.json()["id"])


async def _every_ticket_event_delivered(db: Db, receiver: Receiver, count: int) -> None:
    """Each ticket event in the log reached the receiver (at least once, nothing else) and is recorded as
    delivered."""
    rows = await db.fetch("SELECT position FROM events WHERE type LIKE 'ticket.%'")
    expected = {f"msg_{row[0]}" for row in rows}
    assert len(expected) == count

    async def all_arrived() -> bool:
        return expected <= {r.id for r in receiver.received}

    async def all_delivered() -> bool:
        statuses = await db.fetch("SELECT DISTINCT status FROM webhook_deliveries")
        return [row[0] for row in statuses] == ["delivered"]

    await _until_true(all_arrived, "every ticket event reached the receiver")
    await _until_true(all_delivered, "every delivery is recorded as delivered")
    assert {r.id for r in receiver.received} == expected
    assert all(r.verified for r in receiver.received)


async def test_a_killed_server_loses_no_enqueued_delivery_and_resends_the_interrupted_one(
    database_url: str, db: Db, tmp_path: Path
) -> None:
    await empty_the_log(db)
    async with running(Receiver()) as receiver:
        receiver.default = Reply(stall_s=3.0)  # the first delivery is still unanswered when we kill
        first = _server(tmp_path, "first", database_url)
        first.start()
        try:
            async with httpx.AsyncClient(base_url=first.url, timeout=10) as http:
                await _subscribe_and_open_site(http, receiver)
                tickets = [await _join(http, name) for name in ("ann", "bob", "cat")]
                await receiver.wait_until_begun(1)
        finally:
            _kill(first)

        receiver.default = Reply()
        second = _server(tmp_path, "second", database_url)
        second.start()
        try:
            async with httpx.AsyncClient(base_url=second.url, timeout=10) as http:
                left = await http.delete(f"/v1/tickets/{tickets[0]}", headers=_driver("ann"))
                assert left.status_code in (200, 204), left.text
                await _every_ticket_event_delivered(db, receiver, 4)  # three joined, one cancelled
        finally:
            second.stop()


async def test_when_the_sending_instance_dies_another_takes_over_and_nothing_is_lost(
    database_url: str, db: Db, tmp_path: Path
) -> None:
    await empty_the_log(db)
    async with running(Receiver()) as receiver:
        leader = _server(tmp_path, "leader", database_url)
        leader.start()  # alone at first: it holds the sender's lease
        standby = _server(tmp_path, "standby", database_url)
        try:
            async with httpx.AsyncClient(base_url=leader.url, timeout=10) as http:
                await _subscribe_and_open_site(http, receiver)
                await _join(http, "ann")
                await receiver.wait_for(1)
            standby.start()
            receiver.default = Reply(stall_s=3.0)  # deliveries still on their way when the leader dies
            async with httpx.AsyncClient(base_url=standby.url, timeout=10) as http:
                await _join(http, "bob")  # enqueued by either; sent by the leader
                await receiver.wait_until_begun(2)
                _kill(leader)
                receiver.default = Reply()
                await _join(http, "cat")
                await _every_ticket_event_delivered(db, receiver, 3)
        finally:
            if leader.process is not None and leader.process.poll() is None:
                _kill(leader)
            if standby.process is not None:
                standby.stop()
