"""The server is killed (SIGKILL: no shutdown, nothing flushed) in the middle of its work, then started
again: what it answered 200 is in the log exactly once, what it never answered can be sent again and is
then stored once too, the read models and the queues carry on from where they were, and the deadlines
that passed while nothing ran are acted on."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

from service.api.drivers import mint_token
from service.edrv.signature import signature_header
from service.simulate.edrv import Connector, Station, location_created
from tests.conftest import Db, empty_the_log
from tests.e2e.polling import until as _until
from tests.e2e.server import Server
from tests.e2e.webhook_load import WebhookLoad, times_in_the_log

JWT = "e2e-crash-jwt-secret-0123456789abcdef"
SECRET = "e2e-crash-webhook-secret"
ADMIN = {"Authorization": "Bearer e2e"}
LATE_SITES = ("crash-late-0", "crash-late-1", "crash-late-2")
APPEND_LOCK_KEY = 0x63686C6E_6C6F6701
"""The advisory lock every append takes (migrations/versions/0002_append_function.py)."""


def _server(tmp_path: Path, name: str, database_url: str) -> Server:
    return Server(tmp_path / name, database_url=database_url, jwt_secret=JWT, webhook_secret=SECRET)


def _kill(server: Server) -> None:
    assert server.process is not None
    server.process.kill()
    server.process.wait()


def _driver(name: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {mint_token(JWT, name)}"}


async def _post(http: httpx.AsyncClient, body: bytes) -> None:
    headers = {"edrv-signature": signature_header(SECRET, body, int(time.time()))}
    response = await http.post("/webhooks/edrv", content=body, headers=headers)
    assert response.status_code == 200, response.text


async def _caught_up(http: httpx.AsyncClient) -> bool:
    """Every read model's checkpoint is at the head of the log."""
    answer = (await http.get("/v1/admin/projections", headers=ADMIN)).json()
    return all(p["position"] == answer["head"] and p["lag"] == 0 for p in answer["projections"])


async def _connector_statuses(http: httpx.AsyncClient) -> dict[str, str]:
    answer = (await http.get("/v1/locations")).json()
    stations = [s for location in answer["locations"] for s in location["chargestations"]]
    return {c["id"]: c["raw_status"] for s in stations for c in s["connectors"]}


async def test_every_webhook_answered_200_before_a_kill_is_in_the_log_once_and_the_read_models_resume(
    database_url: str, db: Db, tmp_path: Path
) -> None:
    await empty_the_log(db)
    stations = [
        Station(
            f"crash-st-{n}", f"crash-loc-{n % 3}", [Connector(f"crash-c{n}-{k}", "CCS2", 150) for k in "ab"]
        )
        for n in range(8)
    ]
    first = _server(tmp_path, "first", database_url)
    first.start()
    async with httpx.AsyncClient(base_url=first.url, timeout=10) as http:
        for n in range(3):
            await _post(http, location_created(f"crash-loc-{n}"))
        await _until(lambda: _caught_up(http), "every read model has its checkpoint")
    load = WebhookLoad(first.url, SECRET, stations, prefix="crash")
    stop = asyncio.Event()
    sending = asyncio.create_task(load.run(stop))
    try:
        await _until(lambda: _true(len(load.stored()) >= 200), "200 webhooks answered 200", timeout_s=60)
        async with db.transaction():
            # The read models fall behind (their checkpoints are locked), as under a burst: at the kill
            # they have events to catch up on.
            await db.execute("SELECT 1 FROM projection_checkpoints FOR UPDATE")
            await _until(lambda: _true(len(load.stored()) >= 400), "400 webhooks answered 200", timeout_s=60)
            async with httpx.AsyncClient(base_url=first.url, timeout=10) as http:
                for site in LATE_SITES:  # stored, then never mentioned again: only these events show them
                    await _post(http, location_created(site))
            # Then commits slow down (the append lock is taken), so that appends are on their way to
            # the database, unanswered, when the process dies.
            await db.execute("SELECT pg_advisory_xact_lock($1)", APPEND_LOCK_KEY)
            await asyncio.sleep(0.5)  # the senders' next requests pile up behind it
            _kill(first)
            # Before the appends that were waiting may go on: everything answered 200 is in the log
            # already, once (nothing was answered before it was committed).
            counts = await times_in_the_log(db, [d.id for d in load.stored()])
            assert {id: n for id, n in counts.items() if n != (1, 1)} == {}
            behind = await db.fetchval(
                "SELECT count(*) FROM events"
                " WHERE position > (SELECT min(position) FROM projection_checkpoints)"
            )
            assert behind > 0
        await asyncio.sleep(0.5)  # the senders keep trying against the dead server meanwhile
    finally:
        stop.set()
        await sending
        if first.process is not None and first.process.poll() is None:
            _kill(first)
    answered = load.stored()
    lost = load.unstored()
    # Some requests were on their way when it died (their answers lost), the rest found nobody there.
    assert any(answer != "ConnectError" for d in lost for answer in d.answers), "the kill interrupted nothing"
    counts = await times_in_the_log(db, [d.id for d in answered])
    assert {id: n for id, n in counts.items() if n != (1, 1)} == {}

    second = _server(tmp_path, "second", database_url)
    second.start()
    try:
        # eDRV retries what it never got a 200 for: each is then stored, once (some already were).
        await load.retry_until_stored(second.url)
        # ... and sends some of what it did get a 200 for again, as it may: answered 200, stored nothing.
        async with httpx.AsyncClient(base_url=second.url, timeout=10) as http:
            for delivery in answered[-20:]:
                assert await load.send(http, delivery), delivery.answers
        counts = await times_in_the_log(db, [d.id for d in load.deliveries])
        assert {id: n for id, n in counts.items() if n != (1, 1)} == {}
        assert await db.fetchval("SELECT count(*) FROM events") == len(load.deliveries) + 3 + len(LATE_SITES)
        async with httpx.AsyncClient(base_url=second.url, timeout=10) as http:
            await _until(lambda: _caught_up(http), "every read model reached the head of the log")

            async def late_sites_shown() -> bool:
                shown = {location["id"] for location in (await http.get("/v1/locations")).json()["locations"]}
                return set(LATE_SITES) <= shown

            await _until(late_sites_shown, "the sites stored while the read models lagged are shown")
            latest = {c.id: c.status for station in stations for c in station.connectors}
            assert await _until(
                lambda: _if_equal(_connector_statuses(http), latest), "the locations show the last statuses"
            )
            assert await db.fetch("SELECT projection, event_type, error FROM projection_errors") == []
    finally:
        second.stop()


async def _true(value: bool) -> bool:
    return value


async def _if_equal(read: Awaitable[dict[str, str]], expected: dict[str, str]) -> bool:
    return await read == expected


async def _set_windows(http: httpx.AsyncClient, location: str, respond_s: int, plug_in_s: int) -> None:
    path = f"/v1/admin/locations/{location}/queue-policy"
    body = {"respond_within_s": respond_s, "plug_in_within_s": plug_in_s}

    async def set_once_known() -> bool:
        answer = await http.put(path, json=body, headers=ADMIN)
        assert answer.status_code in (200, 404), answer.text
        return answer.status_code == 200  # 404 until the location's webhook is folded in

    await _until(set_once_known, f"{location}'s queue policy set")


async def _join(http: httpx.AsyncClient, location: str, name: str) -> str:
    joined = await http.post(f"/v1/locations/{location}/tickets", json={}, headers=_driver(name))
    assert joined.status_code == 201, joined.text
    return str(joined.json()["id"])


async def _ticket(http: httpx.AsyncClient, ticket_id: str, name: str) -> dict[str, Any]:
    response = await http.get(f"/v1/tickets/{ticket_id}", headers=_driver(name))
    assert response.status_code == 200, response.text
    return dict(response.json())


async def _status_is(
    http: httpx.AsyncClient, ticket_id: str, name: str, status: str
) -> dict[str, Any] | None:
    ticket = await _ticket(http, ticket_id, name)
    return ticket if ticket["status"] == status else None


async def test_offer_and_hold_deadlines_that_passed_while_the_server_was_dead_are_acted_on_at_restart(
    database_url: str, db: Db, tmp_path: Path
) -> None:
    """An offer nobody answered and a hold nobody plugged into, both due while no process ran: after
    the restart the offer is passed on and the hold lapses, and each connector goes to the next driver."""
    await empty_the_log(db)
    offer_site = Station("dl-st-offer", "dl-offer", [Connector("dl-k1", "CCS2", 150, "Charging")])
    hold_site = Station("dl-st-hold", "dl-hold", [Connector("dl-k2", "CCS2", 150, "Charging")])
    first = _server(tmp_path, "first", database_url)
    first.start()
    try:
        async with httpx.AsyncClient(base_url=first.url, timeout=10) as http:
            for station in (offer_site, hold_site):
                await _post(http, location_created(station.location))
                await _post(http, station.online_body())
                await _set_windows(http, station.location, respond_s=5, plug_in_s=5)  # killed well before
            ann, bob = await _join(http, "dl-offer", "ann"), await _join(http, "dl-offer", "bob")
            cat, dan = await _join(http, "dl-hold", "cat"), await _join(http, "dl-hold", "dan")
            await _post(http, offer_site.status("dl-k1", "Available"))
            await _post(http, hold_site.status("dl-k2", "Available"))
            offered = await _until(lambda: _status_is(http, ann, "ann", "offered"), "ann is offered dl-k1")
            await _until(lambda: _status_is(http, cat, "cat", "offered"), "cat is offered dl-k2")
            accepted = await http.post(f"/v1/tickets/{cat}/accept", headers=_driver("cat"))
            assert accepted.status_code == 200, accepted.text
            held = accepted.json()
    finally:
        _kill(first)
    respond_by = datetime.fromisoformat(offered["offer"]["respond_by"])
    hold_until = datetime.fromisoformat(held["offer"]["hold_until"])
    # Both deadlines fall while no process runs.
    assert (
        await db.fetchval("SELECT count(*) FROM events WHERE type IN ('ticket.snoozed', 'ticket.no_show')")
        == 0
    )
    await asyncio.sleep((max(respond_by, hold_until) - datetime.now(UTC)).total_seconds() + 1.0)
    assert (
        await db.fetchval("SELECT count(*) FROM events WHERE type IN ('ticket.snoozed', 'ticket.no_show')")
        == 0
    )

    second = _server(tmp_path, "second", database_url)
    second.start()
    try:
        async with httpx.AsyncClient(base_url=second.url, timeout=10) as http:
            ann_now = await _until(lambda: _status_is(http, ann, "ann", "waiting"), "ann's offer expired")
            assert ann_now["offer"] is None
            bob_now = await _until(lambda: _status_is(http, bob, "bob", "offered"), "bob is offered dl-k1")
            assert bob_now["offer"]["connector_id"] == "dl-k1"
            await _until(lambda: _status_is(http, cat, "cat", "no_show"), "cat's hold lapsed")
            dan_now = await _until(lambda: _status_is(http, dan, "dan", "offered"), "dan is offered dl-k2")
            assert dan_now["offer"]["connector_id"] == "dl-k2"
        snoozed = await db.fetchval("SELECT data->>'by' FROM events WHERE type = 'ticket.snoozed'")
        assert snoozed == "no_answer"
    finally:
        second.stop()
