"""Outbound webhooks survive a crash: the server is killed (SIGKILL) while a delivery is on its way, a
new process takes over, and every ticket event reaches the app backend, signed, the interrupted one again
under the same ``webhook-id``."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path

import httpx

from service.api.drivers import mint_token
from tests.conftest import Db, empty_the_log
from tests.e2e.server import Server
from tests.edrv import Connector, Station, location_created
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


async def test_a_killed_server_loses_no_enqueued_delivery_and_resends_the_interrupted_one(
    database_url: str, db: Db, tmp_path: Path
) -> None:
    await empty_the_log(db)
    settings = {"database_url": database_url, "jwt_secret": JWT, "allow_private_webhook_targets": "true"}
    station = Station("st-1", LOCATION, [Connector("c1", "CCS2", 150, "Charging")])
    async with running(Receiver()) as receiver:
        receiver.default = Reply(stall_s=3.0)  # the first delivery is still unanswered when we kill
        first = Server(tmp_path / "data", **settings)
        first.start()
        try:
            async with httpx.AsyncClient(base_url=first.url, timeout=10) as http:
                created = await http.post(
                    "/v1/admin/subscriptions", json={"url": receiver.url}, headers=ADMIN
                )
                assert created.status_code == 201, created.text
                receiver.secrets = [created.json()["secret"]]
                for body in (location_created(LOCATION), station.online_body()):
                    assert (await http.post("/webhooks/edrv", content=body)).status_code == 200

                async def site_known() -> bool:
                    response = await http.get(f"/v1/locations/{LOCATION}")
                    return response.status_code == 200 and bool(response.json()["chargestations"])

                await _until_true(site_known, "the site is known")
                tickets = []
                for name in ("ann", "bob", "cat"):
                    joined = await http.post(
                        f"/v1/locations/{LOCATION}/tickets", json={}, headers=_driver(name)
                    )
                    assert joined.status_code == 201, joined.text
                    tickets.append(joined.json()["id"])
                await receiver.wait_until_begun(1)
        finally:
            assert first.process is not None
            first.process.kill()  # SIGKILL: no shutdown, no chance to record anything
            first.process.wait()

        receiver.default = Reply()
        second = Server(tmp_path / "data", **settings)
        second.start()
        try:
            async with httpx.AsyncClient(base_url=second.url, timeout=10) as http:
                left = await http.delete(f"/v1/tickets/{tickets[0]}", headers=_driver("ann"))
                assert left.status_code in (200, 204), left.text
                rows = await db.fetch("SELECT position FROM events WHERE type LIKE 'ticket.%'")
                expected = {f"msg_{row[0]}" for row in rows}
                assert len(expected) == 4  # three joined, one cancelled

                async def all_arrived() -> bool:
                    return expected <= {r.id for r in receiver.received}

                await _until_true(all_arrived, "every ticket event reached the receiver")

                async def all_delivered() -> bool:
                    rows = await db.fetch("SELECT DISTINCT status FROM webhook_deliveries")
                    return [row[0] for row in rows] == ["delivered"]

                await _until_true(all_delivered, "every delivery is recorded as delivered")
        finally:
            second.stop()
    assert all(r.verified for r in receiver.received)
    assert {r.id for r in receiver.received} == expected  # every one, at least once; nothing else
