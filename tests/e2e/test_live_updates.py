"""Server-sent events against running servers: framing, resume by Last-Event-ID, keep-alive, lifetime,
shutdown, fan-out across two processes sharing one database, and recovery after the database drops
every connection."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from service.api.drivers import mint_token
from service.db.embedded import restart_embedded_postgres, stop_embedded_postgres
from service.simulate.edrv import Connector, Station, location_created
from tests.conftest import Db, empty_the_log
from tests.e2e.server import Server
from tests.e2e.sse import sse

JWT = "e2e-live-jwt-secret-0123456789abcdef"
ADMIN = {"Authorization": "Bearer e2e"}
LOCATION = "live-site"
LIVE_SETTINGS = {"jwt_secret": JWT, "sse_keepalive_s": "0.3", "sse_lifetime_s": "4"}


def driver(name: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {mint_token(JWT, name, edrv_user_id=f'edrv-{name}')}"}


@pytest.fixture
def servers(database_url: str, tmp_path: Path) -> Iterator[list[Server]]:
    started = [Server(tmp_path / f"data{n}", database_url=database_url, **LIVE_SETTINGS) for n in range(2)]
    yield started
    for server in started:
        if server.process is not None and server.process.poll() is None:
            server.process.kill()


@pytest.fixture
async def site(
    db: Db, servers: list[Server]
) -> AsyncIterator[tuple[httpx.AsyncClient, httpx.AsyncClient, Station]]:
    await empty_the_log(db)
    for server in servers:
        server.start()
    station = Station("live-st", LOCATION, [Connector("k1", "CCS2", 150, "Charging")])
    async with (
        httpx.AsyncClient(base_url=servers[0].url) as a,
        httpx.AsyncClient(base_url=servers[1].url) as b,
    ):
        await webhook(a, location_created(LOCATION))
        await webhook(a, station.online_body())
        for _ in range(100):  # until both read models know the site and its connector
            response = await b.get(f"/v1/locations/{LOCATION}")
            if response.status_code == 200 and response.json()["chargestations"]:
                break
            await asyncio.sleep(0.05)
        yield a, b, station


async def webhook(client: httpx.AsyncClient, body: bytes) -> None:
    response = await client.post("/webhooks/edrv", content=body)
    assert response.status_code == 200, response.text


async def join(client: httpx.AsyncClient, name: str) -> dict[str, Any]:
    response = await client.post(f"/v1/locations/{LOCATION}/tickets", json={}, headers=driver(name))
    assert response.status_code == 201, response.text
    return dict(response.json())


Site = tuple[httpx.AsyncClient, httpx.AsyncClient, Station]


async def test_a_ticket_stream_starts_with_the_ticket_then_sends_each_change_and_resumes_without_repeats(
    site: Site,
) -> None:
    a, b, station = site
    ticket = await join(a, "alice")
    path = f"/v1/tickets/{ticket['id']}/events"
    async with sse(b, path, headers=driver("alice")) as stream:  # on the other instance
        first = await stream.next_event()
        assert (first.event, first.json()["status"], first.json()["position"]) == ("ticket", "waiting", 1)
        assert first.id is not None
        await webhook(a, station.status("k1", "Available"))
        offered = await stream.next_event()
        assert (offered.event, offered.json()["status"]) == ("ticket", "offered")
        assert int(offered.id or 0) > int(first.id)
    # While nobody listens, the driver accepts; a reconnect from the last id gets the change only.
    assert (await a.post(f"/v1/tickets/{ticket['id']}/accept", headers=driver("alice"))).status_code == 200
    async with sse(a, path, headers=driver("alice") | {"Last-Event-ID": offered.id or ""}) as stream:
        held = await stream.next_event()
        assert held.json()["status"] == "held"
    # Reconnecting from the newest id: nothing is repeated, only keep-alives until something happens.
    async with sse(a, path, headers=driver("alice") | {"Last-Event-ID": held.id or ""}) as stream:
        quiet = await stream.next()
        assert quiet is not None
        assert (quiet.data, quiet.comments) == (None, ["keep-alive"])
    assert (await b.get(path, headers=driver("mallory"))).status_code == 404


async def test_an_ended_ticket_ends_its_stream_and_a_reconnect_is_told_there_is_nothing_more(
    site: Site,
) -> None:
    a, _b, _station = site
    ticket = await join(a, "bob")
    path = f"/v1/tickets/{ticket['id']}/events"
    async with sse(a, path, headers=driver("bob")) as stream:
        await stream.next_event()
        assert (await a.delete(f"/v1/tickets/{ticket['id']}", headers=driver("bob"))).status_code == 200
        final = await stream.next_event()
        assert final.json()["status"] == "cancelled"
        last = await stream.next()
        assert last is not None
        assert last.comments == ["the ticket has ended"]
        assert await stream.next() is None  # the server closed the stream
    again = await a.get(path, headers=driver("bob") | {"Last-Event-ID": final.id or ""})
    assert again.status_code == 204  # EventSource stops reconnecting on a 204


async def test_a_stream_reaches_its_lifetime_and_ends_with_a_retry_hint(site: Site) -> None:
    a, _b, _station = site
    ticket = await join(a, "carol")
    async with sse(a, f"/v1/tickets/{ticket['id']}/events", headers=driver("carol")) as stream:
        await stream.next_event()
        comments = []
        while (message := await stream.next(timeout_s=10)) is not None and message.retry is None:
            comments += message.comments
        assert message is not None
        assert message.retry == 1000
        assert "maximum lifetime" in message.comments[0]
        assert comments.count("keep-alive") >= 5  # every 0.3 s over a 4 s lifetime


async def test_the_board_stream_follows_queue_and_connector_changes(site: Site) -> None:
    a, b, station = site
    async with sse(b, f"/v1/locations/{LOCATION}/queue/events") as stream:
        board = await stream.next_event()
        assert (board.event, board.json()["counts"]["waiting"]) == ("queue", 0)
        await join(a, "dora")
        board = await stream.next_event()
        assert board.json()["counts"]["waiting"] == 1
        await webhook(a, station.status("k1", "Available"))
        board = await stream.next_event()
        while board.json()["counts"]["offered"] != 1:  # the connector frees, then the offer is made
            board = await stream.next_event()
        assert board.json()["line"][0]["offer"]["connector_id"] == "k1"


async def test_the_admin_stream_replays_after_a_position_then_follows_filtered_by_type(site: Site) -> None:
    a, b, station = site
    path = "/v1/admin/events/stream"
    assert (await b.get(path)).status_code == 401
    async with sse(b, path, headers=ADMIN, params={"after": 0, "type_prefix": "chargestation."}) as stream:
        replayed = await stream.next_event()
        assert (replayed.event, replayed.id, replayed.json()["stream_id"]) == (
            "chargestation.online",
            "2",
            "chargestation-live-st",
        )
        await webhook(a, station.status("k1", "Faulted"))
        live = await stream.next_event()
        assert live.event == "chargestation.connector_status.updated"
        assert int(live.id or 0) > 2
    async with sse(b, path, headers=ADMIN | {"Last-Event-ID": live.id or ""}) as stream:
        await webhook(a, station.status("k1", "Available"))
        after = await stream.next_event()
        assert int(after.id or 0) > int(live.id or 0)  # nothing before the resume point again


async def test_streams_recover_by_themselves_after_the_database_drops_every_connection(
    site: Site, db: Db
) -> None:
    a, b, station = site
    ticket = await join(a, "erin")
    async with sse(b, f"/v1/tickets/{ticket['id']}/events", headers=driver("erin")) as stream:
        await stream.next_event()
        await db.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
            " WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )
        for _ in range(100):  # the webhook is retried as eDRV would, until the database is back
            try:
                if (
                    await a.post("/webhooks/edrv", content=station.status("k1", "Available"))
                ).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            await asyncio.sleep(0.1)
        offered = await stream.next_event(timeout_s=15)
        assert offered.json()["status"] == "offered"


async def test_shutting_down_ends_open_streams_with_a_retry_hint_at_once(
    site: Site, servers: list[Server]
) -> None:
    a, _b, _station = site
    ticket = await join(a, "finn")
    async with sse(a, f"/v1/tickets/{ticket['id']}/events", headers=driver("finn")) as stream:
        await stream.next_event()
        assert servers[0].process is not None
        servers[0].process.send_signal(2)  # SIGINT, as Ctrl-C
        while (message := await stream.next(timeout_s=5)) is not None and message.retry is None:
            pass
        assert message is not None
        assert "shutting down" in message.comments[0]
    assert servers[0].process.wait(timeout=8) == 0  # well within the graceful-shutdown timeout


async def test_a_long_poll_returns_as_soon_as_the_ticket_changes_on_another_instance(site: Site) -> None:
    a, b, station = site
    ticket = await join(a, "gus")
    path, headers = f"/v1/tickets/{ticket['id']}", driver("gus")
    etag = (await b.get(path, headers=headers)).headers["etag"]
    polling = asyncio.create_task(b.get(path, params={"wait": 30}, headers=headers | {"If-None-Match": etag}))
    await asyncio.sleep(0.5)
    assert not polling.done()  # held while nothing changes
    await webhook(a, station.status("k1", "Available"))
    changed = await asyncio.wait_for(polling, 10)
    assert (changed.status_code, changed.json()["status"]) == (200, "offered")
    assert changed.headers["etag"] != etag


async def test_a_long_poll_without_a_change_ends_with_a_304_after_the_wait(site: Site) -> None:
    a, _b, _station = site
    ticket = await join(a, "hana")
    path, headers = f"/v1/tickets/{ticket['id']}", driver("hana")
    etag = (await a.get(path, headers=headers)).headers["etag"]
    response = await a.get(path, params={"wait": 1}, headers=headers | {"If-None-Match": etag})
    assert (response.status_code, response.headers["etag"]) == (304, etag)
    too_long = await a.get(path, params={"wait": 61}, headers=headers | {"If-None-Match": etag})
    assert too_long.status_code == 400


async def test_a_change_reaches_subscribers_on_both_instances_once_each(site: Site) -> None:
    a, b, station = site
    ticket = await join(a, "ivy")
    path = f"/v1/tickets/{ticket['id']}/events"
    async with sse(a, path, headers=driver("ivy")) as on_a, sse(b, path, headers=driver("ivy")) as on_b:
        assert (await on_a.next_event()).id == (await on_b.next_event()).id
        await webhook(b, station.status("k1", "Available"))  # accepted by B this time
        offered_a, offered_b = await on_a.next_event(), await on_b.next_event()
        assert offered_a.json()["status"] == offered_b.json()["status"] == "offered"
        assert offered_a.id == offered_b.id  # the same log position, whichever instance sent it
        quiet_a, quiet_b = await on_a.next(), await on_b.next()
        assert quiet_a is not None
        assert quiet_b is not None
        assert (quiet_a.data, quiet_b.data) == (None, None)  # keep-alives only: nothing twice


async def test_a_stream_lives_through_a_real_restart_of_the_embedded_database(tmp_path: Path) -> None:
    """Not just dropped connections: the PostgreSQL server stops and starts again under the service.
    Webhooks are refused (503) while it is away, then the stream carries the next change."""
    server = Server(tmp_path / "data", **LIVE_SETTINGS)
    server.start()
    station = Station("restart-st", LOCATION, [Connector("k1", "CCS2", 150, "Charging")])
    try:
        async with httpx.AsyncClient(base_url=server.url) as http:
            await webhook(http, location_created(LOCATION))
            await webhook(http, station.online_body())
            for _ in range(100):
                response = await http.get(f"/v1/locations/{LOCATION}")
                if response.status_code == 200 and response.json()["chargestations"]:
                    break
                await asyncio.sleep(0.05)
            ticket = await join(http, "jo")
            async with sse(http, f"/v1/tickets/{ticket['id']}/events", headers=driver("jo")) as stream:
                await stream.next_event()
                await asyncio.to_thread(restart_embedded_postgres, tmp_path / "data" / "postgres")
                body = station.status("k1", "Available")
                statuses = []
                for _ in range(100):  # retried as eDRV would, until the service has reconnected
                    statuses.append((await http.post("/webhooks/edrv", content=body)).status_code)
                    if statuses[-1] == 200:
                        break
                    await asyncio.sleep(0.1)
                assert statuses[-1] == 200
                assert set(statuses) <= {200, 503}  # refused while away, never a false 200
                offered = await stream.next_event(timeout_s=20)
                assert offered.json()["status"] == "offered"
    finally:
        server.stop()
        # The restarted server is ours to stop: the service's exit stops only the one it started.
        await asyncio.to_thread(stop_embedded_postgres, tmp_path / "data" / "postgres")


async def test_each_board_message_shows_the_change_it_announces(site: Site) -> None:
    """A board message is sent for a connector change once the read models include that change: never
    the board as it was before it (the stale board would then be what every viewer keeps)."""
    a, b, station = site
    async with sse(b, f"/v1/locations/{LOCATION}/queue/events") as stream:
        await stream.next_event()
        for status in ("Available", "Faulted", "Available", "Faulted", "Available"):
            await webhook(a, station.status("k1", status))
            board = await stream.next_event()
            free = [c["connector_id"] for c in board.json()["offerable_connectors"]]
            assert free == (["k1"] if status == "Available" else []), (status, board.json())
