"""PostgreSQL stops under load and comes back later, the service running all along: while it is away
webhooks are refused with 503 (never a 200 for something not stored) and the service says it is not
ready; when it returns, everything recovers by itself, without a restart of the service: webhooks, the
log's LISTEN connection, the read models, the dispatcher, the deadline scheduler and open event streams.

The service runs on an embedded PostgreSQL of the test's own, since the test stops and starts it."""

from __future__ import annotations

import asyncio
import tempfile
import time
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any, Literal

import asyncpg
import httpx
import pytest

from service.api.drivers import mint_token
from service.db.embedded import resume_embedded_postgres, start_embedded_postgres, stop_embedded_postgres
from service.db.roles import service_login_url
from service.edrv.signature import signature_header
from service.simulate.edrv import Connector, Station, location_created
from tests.conftest import Db, plain_dsn
from tests.e2e.polling import until as _until
from tests.e2e.server import Server
from tests.e2e.sse import SseMessage, sse
from tests.e2e.webhook_load import WebhookLoad, times_in_the_log
from tests.webhook_receiver import Receiver, running

JWT = "e2e-outage-jwt-secret-0123456789abcdef"
SECRET = "e2e-outage-webhook-secret"
ADMIN = {"Authorization": "Bearer e2e"}
SITE = "outage-site"
OUTAGE_S = 4.0
"""Long enough for every background part to fail and retry a few times (they retry every second)."""


class Postgres:
    def __init__(self, pgdata: Path, url: str) -> None:
        self.pgdata = pgdata
        self.url = url

    async def stop(self, mode: Literal["fast", "immediate"]) -> None:
        await asyncio.to_thread(partial(stop_embedded_postgres, self.pgdata, mode=mode))

    async def start(self) -> None:
        await asyncio.to_thread(resume_embedded_postgres, self.pgdata, self.url)

    async def connect(self) -> Db:
        connection: Db = await asyncpg.connect(plain_dsn(self.url))
        return connection


@pytest.fixture
async def postgres() -> AsyncIterator[Postgres]:
    # Not under tmp_path: as root the server runs as another user, and every pytest session that starts
    # takes that user's access to pytest's temporary root away again (it keeps it private to its owner).
    pgdata = Path(tempfile.mkdtemp(prefix="chargeline-outage-"))  # deleted with the server's data
    url = await asyncio.to_thread(start_embedded_postgres, pgdata, cleanup="delete")
    try:
        yield Postgres(pgdata, url)
    finally:
        # A server we started again is ours to stop (the package stops only the one it started); the
        # package deletes the data directory when the test session ends.
        await asyncio.to_thread(stop_embedded_postgres, pgdata)


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    """An app backend that gets every ticket change as an outbound webhook."""
    async with running(Receiver()) as receiver:
        yield receiver


@pytest.fixture
def server(postgres: Postgres, tmp_path: Path) -> Iterator[Server]:
    server = Server(
        tmp_path / "data",
        # As in production: migrations as the owner, the service as its least-privileged login.
        database_url=service_login_url(postgres.url),
        migration_database_url=postgres.url,
        jwt_secret=JWT,
        webhook_secret=SECRET,
        sse_keepalive_s="0.5",
        allow_private_webhook_targets="true",
    )
    server.start()
    yield server
    if server.process is not None and server.process.poll() is None:
        server.process.kill()
        server.process.wait()


def _driver(name: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {mint_token(JWT, name)}"}


def _signed(body: bytes) -> dict[str, str]:
    return {"edrv-signature": signature_header(SECRET, body, int(time.time()))}


async def _post(http: httpx.AsyncClient, body: bytes) -> httpx.Response:
    return await http.post("/webhooks/edrv", content=body, headers=_signed(body))


async def _stored(http: httpx.AsyncClient, body: bytes) -> None:
    response = await _post(http, body)
    assert response.status_code == 200, response.text


async def _ticket(http: httpx.AsyncClient, ticket_id: str, name: str) -> dict[str, Any]:
    response = await http.get(f"/v1/tickets/{ticket_id}", headers=_driver(name))
    assert response.status_code == 200, response.text
    return dict(response.json())


async def _listening(db: Db) -> bool:
    """The service's LISTEN connection (the log's doorbell) is connected."""
    return bool(
        await db.fetchval(
            "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'chargeline-listener'"
        )
    )


@pytest.mark.parametrize("stop", ["fast", "immediate"], ids=["shutdown", "crash"])
async def test_while_postgres_is_down_webhooks_get_503_and_everything_recovers_by_itself_when_it_returns(
    postgres: Postgres, server: Server, receiver: Receiver, stop: Literal["fast", "immediate"]
) -> None:
    """``fast`` is an orderly shutdown (sessions are told); ``immediate`` is a crash or power cut."""
    site = Station("outage-st", SITE, [Connector(f"out-k{n}", "CCS2", 150, "Charging") for n in (1, 2)])
    loaded = [
        Station(f"outage-load-{n}", "outage-load", [Connector(f"out-l{n}", "CCS2", 50)]) for n in range(6)
    ]
    db = await postgres.connect()
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as http:
        created = await http.post("/v1/admin/subscriptions", json={"url": receiver.url}, headers=ADMIN)
        assert created.status_code == 201, created.text
        receiver.secrets = [created.json()["secret"]]
        for body in (location_created(SITE), site.online_body(), location_created("outage-load")):
            await _stored(http, body)

        async def windows_set() -> bool:
            body = {"respond_within_s": 4}
            answer = await http.put(f"/v1/admin/locations/{SITE}/queue-policy", json=body, headers=ADMIN)
            return answer.status_code == 200  # 404 until the location's webhook is folded in

        await _until(windows_set, "the site's answer window is set")

        for station in loaded:
            await _stored(http, station.online_body())

        async def stations_known() -> bool:
            here, there = await http.get(f"/v1/locations/{SITE}"), await http.get("/v1/locations/outage-load")
            if (here.status_code, there.status_code) != (200, 200):
                return False  # not folded in yet
            return len(here.json()["chargestations"]) == 1 and len(there.json()["chargestations"]) == len(
                loaded
            )

        await _until(stations_known, "the sites' stations are known")
        tickets = {}
        for name in ("ann", "bob", "cat"):
            joined = await http.post(f"/v1/locations/{SITE}/tickets", json={}, headers=_driver(name))
            assert joined.status_code == 201, joined.text
            tickets[name] = joined.json()["id"]
        await _until(lambda: _listening(db), "the service listens for new events")
        await db.close()

        async with sse(http, f"/v1/tickets/{tickets['ann']}/events", headers=_driver("ann")) as ann_stream:
            assert (await ann_stream.next_event()).json()["status"] == "waiting"
            # The board of the site under load: read all along, each message with when it came.
            board: list[tuple[float, SseMessage | None]] = []
            following = asyncio.create_task(_follow(http, "/v1/locations/outage-load/queue/events", board))
            load = WebhookLoad(server.url, SECRET, loaded, prefix="outage")
            stop_load = asyncio.Event()
            sending = asyncio.create_task(load.run(stop_load))
            try:
                await _until(lambda: _at_least(len(load.stored()), 100), "webhooks stored under load")
                # Ann is offered a connector and does not answer: her 4 s run out while the database is away.
                await _stored(http, site.status("out-k1", "Available"))
                async with asyncio.timeout(30):
                    offered = await ann_stream.next_event()
                assert (offered.json()["status"], offered.json()["offer"]["connector_id"]) == (
                    "offered",
                    "out-k1",
                )
                await postgres.stop(stop)
                down_at, down_since = time.monotonic(), datetime.now(UTC)

                # Away: refused with a hint to retry, and not ready.
                refused = await _post(http, location_created("outage-refused"))
                assert refused.status_code == 503, refused.text
                assert int(refused.headers["retry-after"]) > 0
                ready = await http.get("/health/ready")
                assert (ready.status_code, ready.json()["database"]) == (503, False)
                await asyncio.sleep(OUTAGE_S)

                up_at = time.monotonic()
                await postgres.start()
                await _until(
                    lambda: _at_least(sum(d.sent_at[-1] > up_at and d.stored for d in load.deliveries), 20),
                    "webhooks are stored again after the database returned",
                )
            finally:
                stop_load.set()
                await sending

            # Nothing sent while the database was away was answered 200, and everything was answered.
            during = [
                answer
                for d in load.deliveries
                for answer, sent, answered in zip(d.answers, d.sent_at, d.answered_at, strict=True)
                if sent > down_at and answered < up_at
            ]
            assert len(during) > 10, "the load did not go on during the outage"
            assert set(during) == {"503"}

            ready = await http.get("/health/ready")
            assert (ready.status_code, ready.json()["database"]) == (200, True)
            db = await postgres.connect()
            try:
                await _until(lambda: _listening(db), "the LISTEN connection is back")

                # The scheduler acts on the deadline that passed during the outage; the stream opened
                # before the outage carries it.
                async with asyncio.timeout(30):  # keep-alives come meanwhile: a limit for the whole wait
                    passed_on = await ann_stream.next_event()
                assert passed_on.json()["status"] == "waiting"
                acted_at = await db.fetchval("SELECT recorded_at FROM events WHERE type = 'ticket.snoozed'")
                assert acted_at > down_since, "the deadline was acted on before the outage: nothing shown"

                # The dispatcher passes the connector on to bob, then offers a freed one to cat.
                async def offered_to(name: str, connector: str) -> bool:
                    ticket = await _ticket(http, tickets[name], name)
                    return bool(
                        ticket["status"] == "offered" and ticket["offer"]["connector_id"] == connector
                    )

                await _until(lambda: offered_to("bob", "out-k1"), "bob is offered the connector ann let pass")
                await _stored(http, site.status("out-k2", "Available"))
                await _until(lambda: offered_to("cat", "out-k2"), "cat is offered the connector freed after")

                # Read models: a webhook after the outage reaches /v1/locations.
                await _stored(http, location_created(SITE, name="Back after the outage"))

                async def renamed() -> bool:
                    response = await http.get(f"/v1/locations/{SITE}")
                    return response.status_code == 200 and response.json()["name"] == "Back after the outage"

                await _until(renamed, "the locations read model shows the renamed site")

                # eDRV retries every refused delivery: each is then stored once, as is every 200'd one.
                await load.retry_until_stored(server.url)
                counts = await times_in_the_log(db, [d.id for d in load.deliveries])
                assert {id: n for id, n in counts.items() if n != (1, 1)} == {}
                latest = {c.id: c.status for station in loaded for c in station.connectors}

                async def shows_latest() -> bool:
                    response = await http.get("/v1/locations/outage-load")
                    stations = response.json()["chargestations"]
                    return {c["id"]: c["raw_status"] for s in stations for c in s["connectors"]} == latest

                await _until(shows_latest, "the read model shows each connector's last status")

                # The board stream opened before the outage carries a change made after it (or, if it
                # fell too far behind while the feed caught up, ended with a retry hint, and the board
                # reconnected with Last-Event-ID gets it): never a broken stream, never a refusal. The
                # change is made here: a board that looks like the last one sent is not sent again, so
                # what the outage held back may show nothing new.
                station, connector = loaded[0], loaded[0].connectors[0].id
                freed = latest[connector] != "Available"
                changed_at = time.monotonic()
                await _stored(http, station.status(connector, "Available" if freed else "Charging"))

                def shows_the_change(message: SseMessage) -> bool:
                    free = message.json()["offerable_connectors"]
                    return any(c["connector_id"] == connector for c in free) is freed

                await _until(
                    lambda: _true(
                        any(at > changed_at and m and m.data and shows_the_change(m) for at, m in board)
                    ),
                    "a board message after the outage",
                )
                assert following.done() is False, board[-1]
                assert await db.fetch("SELECT projection, event_type, error FROM projection_errors") == []

                # The outbox and the sender: every ticket change reached the app backend, signed, those
                # of before the outage and those of after.
                rows = await db.fetch("SELECT position FROM events WHERE type LIKE 'ticket.%'")
                expected = {f"msg_{row[0]}" for row in rows}
                assert len(expected) >= 7  # three joined, ann offered and passed over, bob and cat offered
                await _until(
                    lambda: _at_least(len(expected & {r.id for r in receiver.received}), len(expected)),
                    "every ticket change reached the app backend",
                )
                assert all(r.verified for r in receiver.received)
            finally:
                await db.close()


async def _follow(http: httpx.AsyncClient, path: str, into: list[tuple[float, SseMessage | None]]) -> None:
    """Every message of the stream at ``path``, as EventSource reads it: a stream that ends with a retry
    hint is opened again with Last-Event-ID. Stops (the task is then done) on a stream that breaks, is
    refused or ends without a retry hint."""
    last_id: str | None = None
    while True:
        headers = {"Last-Event-ID": last_id} if last_id else {}
        try:
            async with sse(http, path, headers=headers) as stream:
                retry = None
                while (message := await stream.next(timeout_s=60)) is not None:
                    into.append((time.monotonic(), message))
                    last_id, retry = message.id or last_id, message.retry
        except (httpx.HTTPError, AssertionError) as exc:
            into.append((time.monotonic(), SseMessage(comments=[f"broken: {exc!r}"])))
            return
        if retry is None:
            into.append((time.monotonic(), None))
            return


async def _true(value: bool) -> bool:
    return value


async def _at_least(value: int, least: int) -> bool:
    return value >= least
