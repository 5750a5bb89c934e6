"""Three server processes on one database under concurrent webhooks, joins, accepts, snoozes, leaves and
sessions: no connector is offered twice, no ticket is lost or duplicated, and every driver following
their ticket's server-sent events sees every update of it once, in order.

Every request goes to the next instance in turn; each driver follows their ticket on a random one and,
when a stream ends (a 3 s lifetime), resumes with Last-Event-ID on another random one. The answer and
plug-in windows are short so that lapsed offers and no-shows happen during the traffic too. Afterwards
the queues are paused, what is still pending runs out, and the event log is held against everything
the clients were told.

What an update is: the stream's event ids are log positions. An update of a ticket is one append of
its own events (a command's events commit together, so nobody can see the ticket between them). A
message with id ``m`` must show the ticket as the log has it at ``m``; ids only grow, across resumes
too (nothing twice, nothing out of order); the subscriber saw an update when a message's id lies
between that update and the ticket's next one. The first message of a connection is the ticket as it
is then (whole states, as documented), so it stands for the updates made while no connection was
open; every other update needs its own message, which the second test forces on a stream held back.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import itertools
import random
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from service.api.drivers import mint_token
from service.simulate.edrv import Connector, Station, location_created, session_started
from tests.conftest import Db, empty_the_log
from tests.e2e.server import Server
from tests.e2e.sse import SseStream, sse
from tests.ticket_audit import LIVE, Audit, Life, read_audit

JWT = "e2e-many-jwt-secret-0123456789abcdef"
ADMIN = {"Authorization": "Bearer e2e"}
# Short stream lifetimes make every subscriber resume several times; warnings and errors are all the
# logs a failure needs.
SETTINGS = {"jwt_secret": JWT, "sse_keepalive_s": "0.5", "sse_lifetime_s": "3", "log_level": "WARNING"}
INSTANCES = 3
LOCATIONS = ("many-a", "many-b", "many-c")
DRIVERS_PER_LOCATION = 8
TRAFFIC_S = 20.0
HANG_GUARD_S = 300
POLICY = {"respond_within_s": 2, "plug_in_within_s": 3, "max_snoozes": 2}
NEEDS: tuple[list[str], ...] = (["CCS2"], ["Type 2"], [], ["CCS2", "CHAdeMO"])


@pytest.fixture
def servers(request: pytest.FixtureRequest, database_url: str, tmp_path: Path) -> Iterator[list[Server]]:
    settings = SETTINGS | getattr(request, "param", {})
    started = [Server(tmp_path / f"data{n}", database_url=database_url, **settings) for n in range(INSTANCES)]
    yield started
    for server in started:
        if server.process is not None and server.process.poll() is None:
            server.process.kill()


@pytest.fixture
async def clients(db: Db, servers: list[Server]) -> AsyncIterator[list[httpx.AsyncClient]]:
    await empty_the_log(db)
    await asyncio.gather(*(asyncio.to_thread(server.start) for server in servers))
    async with contextlib.AsyncExitStack() as stack:
        yield [
            await stack.enter_async_context(httpx.AsyncClient(base_url=server.url, timeout=30))
            for server in servers
        ]


@dataclass
class Seen:
    connection: int
    id: int
    ticket: dict[str, Any]


@dataclass
class Follow:
    """One driver's subscription to one ticket, across reconnects."""

    ticket_id: str
    messages: list[Seen] = field(default_factory=list)
    ended: bool = False
    """The server said the ticket has ended and closed the stream."""
    after_end: int | None = None
    """The answer to a reconnect after that (204: nothing more)."""


@dataclass
class Driver:
    name: str
    location: str
    needs: list[str]
    headers: dict[str, str]
    joins: list[tuple[str, list[tuple[int, str | None]]]] = field(default_factory=list)
    """Each join's Idempotency-Key and the answers (status, ticket id) to its requests."""
    follows: list[Follow] = field(default_factory=list)


class Afternoon:
    """The traffic: stations flapping, drivers joining and answering offers, strangers plugging in."""

    def __init__(self, clients: list[httpx.AsyncClient], seed: int) -> None:
        self.clients = clients
        self.turn = itertools.cycle(range(len(clients)))
        self.rng = random.Random(seed)
        self.stations = {
            station.id: station
            for location in LOCATIONS
            for station in (
                Station(
                    f"{location}-s0",
                    location,
                    [Connector("k1", "CCS2", 150, "Charging"), Connector("k2", "CHADEMO", 50, "Charging")],
                ),
                Station(
                    f"{location}-s1",
                    location,
                    [Connector("k1", "Type2", 22, "Charging"), Connector("k2", "CCS2", 50, "Charging")],
                    protocol="ocpp2.0.1",
                ),
            )
        }
        self.drivers = [
            Driver(
                name=f"{location}-d{n}",
                location=location,
                needs=NEEDS[n % len(NEEDS)],
                headers={
                    "Authorization": "Bearer "
                    + mint_token(JWT, f"{location}-d{n}", edrv_user_id=f"edrv-{location}-d{n}")
                },
            )
            for location in LOCATIONS
            for n in range(DRIVERS_PER_LOCATION)
        ]
        self.sessions = itertools.count(1)
        self.followers: list[asyncio.Task[None]] = []
        self.answers: Counter[tuple[str, int]] = Counter()
        self.unexpected: list[str] = []
        """Answers no driver should get: every join is answered 200/201, every leave 200."""
        self.until = 0.0

    def client(self) -> httpx.AsyncClient:
        """The next instance in turn."""
        return self.clients[next(self.turn)]

    async def webhook(self, body: bytes) -> None:
        response = await self.client().post("/webhooks/edrv", content=body)
        assert (response.status_code, response.content) == (200, b""), response.text

    async def open(self) -> None:
        for location in LOCATIONS:
            await self.webhook(location_created(location))
        for station in self.stations.values():
            await self.webhook(station.online_body())
        for client in self.clients:  # until every instance reads both stations of every site
            for location in LOCATIONS:
                assert await eventually(functools.partial(_stations_known, client, location))
        for location in LOCATIONS:
            path = f"/v1/admin/locations/{location}/queue-policy"
            response = await self.client().put(path, json=POLICY, headers=ADMIN)
            assert response.status_code == 200, response.text

    async def run(self, seconds: float) -> None:
        self.until = asyncio.get_running_loop().time() + seconds
        await asyncio.gather(
            *(self.drive(driver, random.Random(self.rng.random())) for driver in self.drivers),
            *(self.flap(station, random.Random(self.rng.random())) for station in self.stations.values()),
            self.jump_queues(random.Random(self.rng.random())),
        )

    def running(self) -> bool:
        return asyncio.get_running_loop().time() < self.until

    async def flap(self, station: Station, rng: random.Random) -> None:
        """A station reporting its connectors freeing, taken, finishing, faulting; now and then offline."""
        while self.running():
            await asyncio.sleep(rng.uniform(0.2, 0.8))
            if not station.online:
                await self.webhook(station.online_body())
            elif rng.random() < 0.04:
                await self.webhook(station.offline_body())
            else:
                connector = rng.choice(station.connectors)
                status = rng.choices(
                    ("Available", "Charging", "Finishing", "Faulted", "Unavailable"), (55, 20, 12, 8, 5)
                )[0]
                await self.webhook(station.status(connector.id, status))

    async def jump_queues(self, rng: random.Random) -> None:
        """Strangers (no ticket) plugging into free connectors, offered to someone or not."""
        while self.running():
            await asyncio.sleep(rng.uniform(0.5, 1.5))
            station = rng.choice(list(self.stations.values()))
            connector = rng.choice(station.connectors)
            if connector.status == "Available":
                await self.plug_in(station.id, connector.id, f"edrv-stranger-{next(self.sessions)}")

    async def plug_in(self, station_id: str, connector_id: str, edrv_user: str) -> None:
        """A car starts charging: the station's status and eDRV's session, each to its own instance."""
        station = self.stations[station_id]
        session = f"session-{next(self.sessions)}"
        await asyncio.gather(
            self.webhook(station.status(connector_id, "Charging")),
            self.webhook(session_started(session, station_id, connector_id, edrv_user)),
        )

    async def drive(self, driver: Driver, rng: random.Random) -> None:
        """Join, follow the ticket, answer its offers; join again once it ends, until the afternoon ends;
        then leave, or stay in line (half the drivers)."""
        await asyncio.sleep(rng.uniform(0, 3))
        while self.running():
            ticket_id = await self.join(driver, rng)
            if ticket_id is None:
                await asyncio.sleep(1)
                continue
            follow = Follow(ticket_id)
            driver.follows.append(follow)
            inbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
            self.followers.append(asyncio.create_task(self.follow(driver, follow, inbox, rng)))
            if not await self.play(driver, ticket_id, inbox, rng):
                if rng.random() < 0.5:
                    await self.act(driver, ticket_id, "leave")
                return
            await asyncio.sleep(rng.uniform(0.2, 1.5))

    async def join(self, driver: Driver, rng: random.Random) -> str | None:
        """A join, sometimes retried with the same Idempotency-Key on another instance: racing the first
        request, or after its answer."""
        key = uuid.uuid4().hex
        path = f"/v1/locations/{driver.location}/tickets"
        body = {"connector_types": driver.needs}
        headers = driver.headers | {"Idempotency-Key": key}
        first, second = self.client(), self.client()
        roll = rng.random()
        if roll < 0.35:
            responses = list(
                await asyncio.gather(
                    first.post(path, json=body, headers=headers),
                    second.post(path, json=body, headers=headers),
                )
            )
        elif roll < 0.7:
            responses = [await first.post(path, json=body, headers=headers)]
            responses.append(await second.post(path, json=body, headers=headers))
        else:
            responses = [await first.post(path, json=body, headers=headers)]
        answers = [(r.status_code, r.json().get("id") if r.status_code < 300 else None) for r in responses]
        driver.joins.append((key, answers))
        refused = [r.text for r in responses if r.status_code not in (200, 201)]
        if refused:  # checked at the end, with everything the log says
            self.unexpected += refused
            return None
        ticket_id = answers[0][1]
        assert isinstance(ticket_id, str)
        return ticket_id

    async def play(
        self, driver: Driver, ticket_id: str, inbox: asyncio.Queue[dict[str, Any]], rng: random.Random
    ) -> bool:
        """Answer the ticket's offers as its stream brings them; True once the ticket has ended."""
        answered: set[str] = set()
        while self.running():
            try:
                ticket = await asyncio.wait_for(inbox.get(), 1.0)
            except TimeoutError:
                continue
            if ticket["status"] not in LIVE:
                return True
            offer = ticket["offer"]
            if ticket["status"] == "offered" and offer["offered_at"] not in answered:
                answered.add(offer["offered_at"])
                await asyncio.sleep(rng.uniform(0, 0.5))  # reading the phone
                roll = rng.random()
                if roll < 0.5:
                    accepted = await self.act(driver, ticket_id, "accept")
                    if accepted.status_code == 200 and rng.random() < 0.8:  # else: a no-show
                        await asyncio.sleep(rng.uniform(0.1, 1.5))
                        station, connector = offer["chargestation_id"], offer["connector_id"]
                        await self.plug_in(station, connector, f"edrv-{driver.name}")
                elif roll < 0.75:
                    await self.act(driver, ticket_id, "snooze")
                elif roll < 0.9:
                    pass  # lets it lapse
                else:
                    await self.act(driver, ticket_id, "leave")
            elif ticket["status"] == "waiting" and rng.random() < 0.05:
                await self.act(driver, ticket_id, "leave")  # gives up
        return False

    async def act(self, driver: Driver, ticket_id: str, action: str) -> httpx.Response:
        path = f"/v1/tickets/{ticket_id}"
        client = self.client()
        if action == "leave":
            response = await client.delete(path, headers=driver.headers)
        else:
            response = await client.post(f"{path}/{action}", headers=driver.headers)
        # 409: the offer lapsed, was taken back or passed on meanwhile (the driver was too slow).
        if response.status_code not in ((200,) if action == "leave" else (200, 409)):
            self.unexpected.append(f"{action} {ticket_id}: {response.status_code} {response.text}")
        self.answers[(action, response.status_code)] += 1
        return response

    async def follow(
        self, driver: Driver, follow: Follow, inbox: asyncio.Queue[dict[str, Any]], rng: random.Random
    ) -> None:
        """Follow the ticket's stream on a random instance, resuming on another with Last-Event-ID
        whenever a stream ends, until the server says there is nothing more."""
        path = f"/v1/tickets/{follow.ticket_id}/events"
        last_id: str | None = None
        for connection in itertools.count():
            client = rng.choice(self.clients)
            headers = driver.headers | ({"Last-Event-ID": last_id} if last_id is not None else {})
            async with client.stream("GET", path, headers=headers, timeout=httpx.Timeout(30)) as response:
                if follow.ended or response.status_code == 204:
                    follow.after_end = response.status_code
                    return
                assert response.status_code == 200, (response.status_code, await response.aread())
                stream = SseStream(response)
                while (message := await stream.next(timeout_s=30)) is not None:
                    if message.data is not None:
                        assert message.id is not None, message
                        follow.messages.append(Seen(connection, int(message.id), message.json()))
                        last_id = message.id
                        inbox.put_nowait(message.json())
                    if "the ticket has ended" in message.comments:
                        follow.ended = True


async def test_three_instances_offer_no_connector_twice_lose_no_ticket_and_stream_every_update_once(
    clients: list[httpx.AsyncClient], db: Db
) -> None:
    # A guard against hangs only (a normal run takes well under a minute): it fails with where it hung.
    async with asyncio.timeout(HANG_GUARD_S):
        afternoon = Afternoon(clients, seed=20261129)
        await afternoon.open()
        try:
            await afternoon.run(TRAFFIC_S)
            # The afternoon is over: no more offers; lapsing offers, holds and snoozes run out by themselves.
            for location in LOCATIONS:
                path = f"/v1/admin/locations/{location}/queue/pause"
                response = await afternoon.client().post(path, headers=ADMIN)
                assert response.status_code == 200, response.text
            webhooks_end = await db.fetchval(
                "SELECT max(position) FROM events WHERE stream_id NOT LIKE 'queue-%'"
            )
            settled = await eventually(lambda: _dispatched(db, webhooks_end)) and await eventually(
                lambda: _settled(db)
            )
            log = await read_audit(db)
            follows = {f.ticket_id: (d, f) for d in afternoon.drivers for f in d.follows}
            # The last updates reach their streams (checked below if they do not).
            await eventually(lambda: _streams_caught_up(log, follows))
        finally:
            for follower in afternoon.followers:
                follower.cancel()
            await asyncio.gather(*afternoon.followers, return_exceptions=True)

        # Nothing any instance decided broke a rule, whoever decided it: in particular no connector was ever
        # offered to or held for two tickets at once.
        assert log.violations == [], "\n".join(log.violations)
        assert afternoon.unexpected == [], "\n".join(afternoon.unexpected)
        assert settled, [(life.ticket_id, life.last) for life in log.live() if life.last.status != "waiting"]
        offers = sum(s.type == "ticket.offered" for life in log.lives.values() for s in life.steps)
        assert offers >= 20, "too few offers for the traffic to mean anything"
        assert afternoon.answers[("accept", 200)] >= 5
        assert afternoon.answers[("snooze", 200)] >= 5

        # Every join answered maps to exactly one ticket; its retries got the same one; and no ticket
        # exists that no answer named.
        answered: dict[str, str] = {}
        for driver in afternoon.drivers:
            for key, answers in driver.joins:
                ids = {ticket_id for _, ticket_id in answers}
                assert len(ids) == 1, (driver.name, key, answers)
                (ticket_id,) = ids
                assert ticket_id is not None
                life = log.lives.get(ticket_id)
                assert life is not None, f"{driver.name}'s ticket {ticket_id} is not in the log"
                assert (life.driver_id, life.location_id, life.idempotency_key) == (
                    driver.name,
                    driver.location,
                    key,
                )
                answered[ticket_id] = driver.name
        assert set(log.lives) == set(answered), "tickets that no join was answered with"
        assert any(len(answers) == 2 for d in afternoon.drivers for _, answers in d.joins)

        # No ticket vanished: every one reads, on every instance, as the log leaves it.
        for ticket_id, (driver, _) in follows.items():
            last = log.lives[ticket_id].last
            for client in clients:
                response = await client.get(f"/v1/tickets/{ticket_id}", headers=driver.headers)
                assert response.status_code == 200, response.text
                assert _shown(response.json()) == (last.version, last.status, last.spot), ticket_id
        assert {life.last.status for life in log.lives.values()} >= {"fulfilled", "cancelled", "waiting"}

        # Every subscriber saw every update of its ticket, once each, in order.
        problems = [
            p for ticket_id, (_, f) in follows.items() for p in _stream_problems(log.lives[ticket_id], f)
        ]
        assert problems == [], "\n".join(problems)
        assert sum(len({s.connection for s in f.messages}) > 1 for _, f in follows.values()) >= 10


@pytest.mark.parametrize("servers", [{"sse_lifetime_s": "60"}], indirect=True, ids=["long-lived streams"])
async def test_a_stream_that_fell_behind_still_sends_each_update_of_its_ticket(
    clients: list[httpx.AsyncClient], db: Db
) -> None:
    """Two updates that reach a busy stream together are two messages: the driver sees the offer, then
    the hold, not the hold alone. The stream is held back by a lock on a read model it needs."""
    a, b, _ = clients
    station = Station("lag-st", "lag-site", [Connector("k1", "CCS2", 150, "Charging")])
    for body in (location_created("lag-site"), station.online_body()):
        assert (await b.post("/webhooks/edrv", content=body)).status_code == 200
    assert await eventually(functools.partial(_stations_known, b, "lag-site", 1))
    headers = {"Authorization": f"Bearer {mint_token(JWT, 'lagging', edrv_user_id='edrv-lagging')}"}
    joined = await b.post("/v1/locations/lag-site/tickets", json={}, headers=headers)
    assert joined.status_code == 201, joined.text
    ticket = f"/v1/tickets/{joined.json()['id']}"
    async with (
        sse(a, f"{ticket}/events", headers=headers) as stream,
        sse(a, "/v1/admin/events/stream", params={"type_prefix": "ticket."}, headers=ADMIN) as log,
    ):
        assert (await stream.next_event()).json()["status"] == "waiting"
        async with db.transaction():
            # A waiting ticket's message needs the site, sessions included: the stream waits on this.
            await db.execute("LOCK TABLE sessions IN ACCESS EXCLUSIVE MODE")
            policy = await b.put(
                "/v1/admin/locations/lag-site/queue-policy", json={"max_snoozes": 3}, headers=ADMIN
            )
            assert policy.status_code == 200, policy.text
            assert await eventually(lambda: _waiting_for_sessions(db))
            await b.post("/webhooks/edrv", content=station.status("k1", "Available"))
            # Watched on the log: reading the (waiting) ticket would wait on the lock too.
            assert (await log.next_event()).event == "ticket.offered"
            accepted = await b.post(f"{ticket}/accept", headers=headers)
            assert accepted.status_code == 200, accepted.text
            # Instance A's feed hands each event to all its streams at once: the ticket's has it too.
            assert (await log.next_event()).event == "ticket.accepted"
        seen: list[dict[str, Any]] = []
        while not seen or seen[-1]["status"] != "held":
            seen.append((await stream.next_event()).json())
    assert [(t["status"], t["snoozes_left"]) for t in seen] == [("waiting", 3), ("offered", 3), ("held", 3)]


async def _waiting_for_sessions(db: Db) -> bool:
    """Some instance's query waits for the lock on the sessions table."""
    return bool(
        await db.fetchval(
            "SELECT count(*) FROM pg_locks WHERE relation = 'sessions'::regclass AND NOT granted"
        )
    )


def _stream_problems(life: Life, follow: Follow) -> list[str]:
    """What is wrong with one subscriber's messages, held against the ticket's events in the log."""
    name = life.ticket_id
    if not follow.messages:
        return [f"{name}: no message at all"]
    problems: list[str] = []
    ids = [seen.id for seen in follow.messages]
    if ids != sorted(set(ids)):
        problems.append(f"{name}: ids not strictly increasing across reconnects: {ids}")
    for seen in follow.messages:
        step = life.at(seen.id)
        expected = None if step is None else (step.version, step.status, step.spot)
        if _shown(seen.ticket) != expected:
            problems.append(f"{name}: message {seen.id} shows {_shown(seen.ticket)}, the log {expected}")
    # Within a connection nothing is sent twice. (A resumed stream starts with the ticket as it is now
    # whenever its queue moved since Last-Event-ID, as documented: that may restate what the client has.)
    for before, after in itertools.pairwise(follow.messages):
        if before.connection == after.connection and _visible(before.ticket) == _visible(after.ticket):
            problems.append(f"{name}: message {after.id} repeats message {before.id}")
    # Each update must be seen: a message between it and the ticket's next update. The first message of
    # each connection shows the ticket as it is when the connection starts, so it stands for the updates
    # since the message before it (those committed while there was no connection to send them).
    starts = [
        0,
        *(
            n
            for n in range(1, len(ids))
            if follow.messages[n].connection != follow.messages[n - 1].connection
        ),
    ]
    resumed = [(ids[n - 1] if n else 0, ids[n]) for n in starts]
    updates = life.commits()
    for n, (first, last) in enumerate(updates):
        upto = updates[n + 1][0] if n + 1 < len(updates) else None
        if any(before < last <= at for before, at in resumed):
            continue
        if not any(last <= i and (upto is None or i < upto) for i in ids):
            problems.append(f"{name}: update at {first}-{last} never shown (ids {ids}, resumed {resumed})")
    if life.last.status in LIVE:
        return problems
    if not (follow.ended and follow.after_end == 204):
        problems.append(f"{name}: ended, but its stream did not end for good ({follow.after_end})")
    return problems


def _visible(ticket: dict[str, Any]) -> dict[str, Any]:
    """What the driver sees change: all but the estimate, which moves with the clock."""
    return {k: v for k, v in ticket.items() if k != "eta"}


def _shown(ticket: dict[str, Any]) -> tuple[int, str, str | None]:
    offer = ticket["offer"]
    spot = None if offer is None else f"{offer['chargestation_id']}/{offer['connector_id']}"
    return ticket["version"], ticket["status"], spot


async def _stations_known(client: httpx.AsyncClient, location: str, count: int = 2) -> bool:
    response = await client.get(f"/v1/locations/{location}")
    return response.status_code == 200 and len(response.json()["chargestations"]) == count


async def _dispatched(db: Db, position: int) -> bool:
    """The dispatcher has acted on every webhook (no session start is still to fulfil a ticket)."""
    reached = await db.fetchval("SELECT position FROM projection_checkpoints WHERE name = 'dispatcher'")
    return reached is not None and reached >= position


async def _settled(db: Db) -> Audit | None:
    """The log, once nothing more can happen by itself: no offer, hold or snooze left to run out."""
    log = await read_audit(db)
    if log.paused != set(LOCATIONS):
        return None
    pending = [life for life in log.live() if life.last.status != "waiting" or life.snoozed_until is not None]
    return None if pending else log


async def _streams_caught_up(log: Audit, follows: dict[str, tuple[Driver, Follow]]) -> bool:
    for ticket_id, (_, follow) in follows.items():
        last = log.lives[ticket_id].last
        if last.status in LIVE:
            if not follow.messages or follow.messages[-1].ticket["version"] < last.version:
                return False
        elif follow.after_end is None:
            return False
    return True


async def eventually(check: Callable[[], Awaitable[object]], timeout_s: float = 60.0) -> bool:
    """Wait (generously) for ``check()`` to come true; False if it never did."""
    deadline = asyncio.get_running_loop().time() + timeout_s
    while not await check():
        if asyncio.get_running_loop().time() > deadline:
            return False
        await asyncio.sleep(0.1)
    return True
