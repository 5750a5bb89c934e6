"""The queue benchmark: how soon a freed connector becomes an offer, and how late the scheduler acts on an
offer nobody answered. Both are latencies with absolute product targets, measured on the running
service (Chargeline's uvicorn process, as the ingest benchmark starts it) over HTTP.

Set-up (not measured): N sites, each a location with one station and one CCS2 connector that is
"Charging", the queue policy set through the admin API to ``respond_within_s = 1``, and one driver
waiting for CCS2. Then, site after site, a fixed interval apart so each is an isolated advance:

1. **advance**: ``chargestation.connector_status.updated`` with the connector "Available". Timed from
   the webhook's 200 (wall clock, taken right after it) to the ``recorded_at`` of the
   ``ticket.offered`` it causes (PostgreSQL's ``clock_timestamp()``: the same machine's clock), and,
   as the driver sees it, to the ``event: ticket`` message with status "offered" arriving on the
   driver's ticket stream (``GET /v1/tickets/{id}/events``, opened before the webhook; this process's
   monotonic clock). One ``GET /v1/tickets/{id}`` afterwards checks that the ticket reads "offered".
   Once the offer is seen the operator pauses the queue, so that after the no-answer snooze below the
   same connector is not offered to the same driver again (the rules would, once the snooze is over):
   every site then has exactly one offer, and "never offered twice" can be checked strictly.
2. **deadline**: nobody answers. The scheduler must act within 1 s of each deadline: lateness is the
   ``recorded_at`` of the ``ticket.snoozed`` (by ``no_answer``) minus its ``at``, the deadline it
   acted on (checked to be the offer's ``respond_by``).

Checked, and the run fails (exit 1) if not: every driver's stream shows the offer, and a GET then shows
it too; every site gets exactly one offer, for its driver's ticket on its connector, recorded after the
webhook that freed it; exactly one no-answer snooze per site, on
the offer's deadline; each queue's log holds exactly the expected events; no projection skipped an event.
"""

from __future__ import annotations

import asyncio
import json
import math
import secrets
import tempfile
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import asyncpg
import httpx
import msgspec
from rich.console import Console
from rich.table import Table

from bench.chargeline_app import ADMIN_TOKEN_ENV, JWT_SECRET_ENV
from bench.database import PostgresInfo, postgres_info, scratch_database, server_url
from bench.load import Latency
from bench.results import Machine, Target, machine
from bench.servers import AppServer, ServerFailed
from bench.sse_client import SseError, SseMessage, SseReader, Stream, open_stream
from service.api.drivers import mint_token
from service.dispatch.dispatcher import Dispatcher
from service.projections.catalog import PROJECTIONS
from service.simulate.edrv import Connector, Station

if TYPE_CHECKING:
    Connection = asyncpg.Connection[asyncpg.Record]

SPACING_S = 0.1  # between two sites' webhooks: each advance is measured alone, not in a burst
RESPOND_WITHIN_S = 1
CONNECTOR_TYPE = "CCS2"
# The product targets: a freed connector's offer reaches the waiting driver's stream this soon after the
# webhook's 200; an unanswered offer passes on within 1 s of its deadline.
SSE_P50_LIMIT_MS = 10.0
SSE_P99_LIMIT_MS = 50.0
LATENESS_LIMIT_MS = 1000.0
OFFER_TIMEOUT_S = 5.0  # no offer seen this long after the connector freed: the run fails
STREAM_OPEN_TIMEOUT_S = 10.0  # a driver's stream must be open, its first message read, within this
GRACE_S = 10.0  # how long past the last deadline the harness waits for the scheduler before failing
SETUP_TIMEOUT_S = 30.0
WAIT_STEP_S = 0.02

JSON = {"content-type": "application/json"}
# What each queue's log must hold at the end, in any order.
EXPECTED_EVENTS = sorted(
    [
        "queue.policy_set",
        "ticket.joined",
        "ticket.offered",
        "queue.paused",
        "ticket.snoozed",
        "ticket.snooze_ended",
    ]
)

_OFFERS = """
    SELECT stream_id, data->>'ticket_id', data->>'chargestation_id', data->>'connector_id',
           (data->>'respond_by')::timestamptz, recorded_at
      FROM events WHERE type = 'ticket.offered' AND stream_id = ANY($1::text[]) ORDER BY position
"""
_SNOOZES = """
    SELECT stream_id, data->>'ticket_id', data->>'by', (data->>'at')::timestamptz, recorded_at
      FROM events WHERE type = 'ticket.snoozed' AND stream_id = ANY($1::text[]) ORDER BY position
"""
_DELIVERED = """
    SELECT i.external_id, e.recorded_at FROM inbox i JOIN events e ON e.position = i.position
     WHERE i.source = 'edrv' AND i.external_id = ANY($1::text[])
"""
_COUNT = "SELECT count(*) FROM events WHERE type = $1 AND stream_id = ANY($2::text[])"
_STREAM_TYPES = """
    SELECT stream_id, array_agg(type ORDER BY type) FROM events WHERE stream_id = ANY($1::text[])
     GROUP BY stream_id
"""
# Every read model and the dispatcher have caught up with the log (the subscribers benchmark uses it too).
CAUGHT_UP = """
    SELECT count(*) FROM projection_checkpoints
     WHERE name = ANY($1::text[]) AND position >= (SELECT coalesce(max(position), 0) FROM events)
"""
RUNNERS = [*PROJECTIONS, Dispatcher.name]


class QueueSettings(msgspec.Struct, kw_only=True):
    smoke: bool
    sites: int
    spacing_ms: float = SPACING_S * 1000
    driver_view: str = "sse"  # each driver follows GET /v1/tickets/{id}/events, opened before the webhook
    respond_within_s: int = RESPOND_WITHIN_S
    connector_type: str = CONNECTOR_TYPE


class ClockCheck(msgspec.Struct, frozen=True, kw_only=True):
    """PostgreSQL's ``clock_timestamp()`` minus this process's ``time.time()`` at the midpoint of the
    query (the fastest of a few): about 0 when both read this machine's clock, within ± half the round
    trip. The advance figures compare the two clocks, so a large offset (a remote server) skews them."""

    offset_ms: float
    round_trip_ms: float


class SiteRun(msgspec.Struct, kw_only=True):
    """One site's advance and deadline, in ms."""

    location_id: str
    ticket_id: str
    webhook_ms: float  # the "Available" webhook's round trip, sent → 200
    sse_ms: float  # from the 200 to the "offered" ticket message on the driver's stream (monotonic clock)
    get_ms: float  # the round trip of the GET that checks the offer afterwards
    offer_ms: float | None = None  # the offer's recorded_at - the wall clock right after the 200
    log_ms: float | None = None  # the offer's recorded_at - the webhook event's (both PostgreSQL's clock)
    lateness_ms: float | None = None  # the no-answer snooze's recorded_at - the deadline it acted on


class QueueFigures(msgspec.Struct, frozen=True, kw_only=True):
    offer_ms: Latency
    sse_ms: Latency
    log_ms: Latency
    webhook_ms: Latency
    get_ms: Latency
    lateness_ms: Latency


class QueueResults(msgspec.Struct, kw_only=True):
    benchmark: str = "queue"
    started_at: datetime
    finished_at: datetime | None = None
    ok: bool = False
    error: str | None = None
    machine: Machine
    settings: QueueSettings
    postgres: PostgresInfo | None = None
    clock: ClockCheck | None = None
    sites: list[SiteRun] = msgspec.field(default_factory=list)
    figures: QueueFigures | None = None
    targets: list[Target] = msgspec.field(default_factory=list)


class QueueFailure(RuntimeError):
    """The queue did not do what the rules say (or the harness could not drive it): no trustworthy figures."""


@dataclass
class Site:
    number: int
    location_id: str
    station: Station
    connector_id: str
    headers: dict[str, str]  # the driver's token
    ticket_id: str = ""
    delivery_id: str = ""  # the "Available" webhook's envelope _id
    answered_at: float = 0.0  # time.time() right after its 200
    follow: Stream | None = None  # the driver's ticket stream
    messages: asyncio.Queue[SseMessage | None] = field(default_factory=asyncio.Queue)
    """What arrives on it, stamped on arrival by a reader task (None: the stream ended)."""

    @property
    def stream(self) -> str:
        return f"queue-{self.location_id}"


async def run_queue(settings: QueueSettings, console: Console) -> QueueResults:
    """Measure; a failure is recorded in the results (with the sites measured so far), not raised."""
    results = QueueResults(started_at=datetime.now(UTC), machine=machine(), settings=settings)
    try:
        await _measure(settings, results, console)
        results.ok = True
    except (QueueFailure, ServerFailed) as exc:
        results.error = str(exc)
    results.finished_at = datetime.now(UTC)
    return results


async def _measure(settings: QueueSettings, results: QueueResults, console: Console) -> None:
    server, source = await asyncio.to_thread(server_url)
    with tempfile.TemporaryDirectory(prefix="chargeline-bench-") as tmp:
        async with scratch_database(server, {}) as url:
            db: Connection = await asyncpg.connect(url)
            try:
                results.postgres = await postgres_info(db, source)
                results.clock = await clock_check(db)
                console.print(
                    f"PostgreSQL {results.postgres.version} ({source}); its clock - ours: "
                    f"{results.clock.offset_ms:+.2f} ms (± {results.clock.round_trip_ms / 2:.2f})",
                    highlight=False,
                )
                if abs(results.clock.offset_ms) > 5 + results.clock.round_trip_ms / 2:
                    console.print("[yellow]The clocks differ: the offer-committed figures are skewed[/]")
                admin, jwt_secret = secrets.token_urlsafe(16), secrets.token_urlsafe(32)
                app = AppServer(
                    "chargeline",
                    "bench.chargeline_app:create_app",
                    "/health/ready",
                    url,
                    Path(tmp),
                    env={ADMIN_TOKEN_ENV: admin, JWT_SECRET_ENV: jwt_secret},
                )
                async with app, httpx.AsyncClient(base_url=app.base_url, timeout=10) as http:
                    run = _Run(http, db, app, results, console, admin, jwt_secret)
                    try:
                        await run.run()
                    except httpx.HTTPError as exc:
                        app.check_alive()
                        raise QueueFailure(f"HTTP: {exc!r}\n{app.log_tail()}") from None
            finally:
                await db.close()
    _summarise(results)


async def clock_check(db: Connection) -> ClockCheck:
    best: tuple[float, float] | None = None
    for _ in range(5):
        before = time.time()
        theirs: datetime = await db.fetchval("SELECT clock_timestamp()")
        after = time.time()
        trip, offset = after - before, theirs.timestamp() - (before + after) / 2
        if best is None or trip < best[0]:
            best = (trip, offset)
    assert best is not None
    return ClockCheck(offset_ms=round(best[1] * 1000, 3), round_trip_ms=round(best[0] * 1000, 3))


class _Run:
    def __init__(
        self,
        http: httpx.AsyncClient,
        db: Connection,
        app: AppServer,
        results: QueueResults,
        console: Console,
        admin_token: str,
        jwt_secret: str,
    ) -> None:
        self.http = http
        self.db = db
        self.app = app
        self.results = results
        self.console = console
        self.admin = {"Authorization": f"Bearer {admin_token}"}
        self.sites = [_site(number, jwt_secret) for number in range(1, results.settings.sites + 1)]
        self.streams = [site.stream for site in self.sites]

    async def run(self) -> None:
        await self._set_up()
        readers: list[asyncio.Task[None]] = []
        try:
            await self._open_streams(readers)
            self.console.print(
                f"{len(self.sites)} sites ready: one {CONNECTOR_TYPE} connector charging and one driver "
                f"waiting each, following its ticket's stream, respond_within_s={RESPOND_WITHIN_S}; freeing "
                f"the connectors {SPACING_S * 1000:.0f} ms apart",
                highlight=False,
            )
            await self._advances()
            deadlines = await self._offers()
            await self._deadlines(deadlines)
            await self._final_checks()
        finally:
            for site in self.sites:
                if site.follow is not None:
                    site.follow.close()
            for task in readers:
                task.cancel()
            await asyncio.gather(*readers, return_exceptions=True)

    # -- set-up -----------------------------------------------------------------------------------

    async def _set_up(self) -> None:
        for site in self.sites:  # one after the other: each station's reports in order
            await self._webhook(site.station.status(site.connector_id, "Charging"))
        locations = [site.location_id for site in self.sites]

        async def listed() -> bool:
            count = await self.db.fetchval(
                "SELECT count(DISTINCT location_id) FROM connectors WHERE location_id = ANY($1::text[])",
                locations,
            )
            return bool(count == len(locations))

        await self._wait(listed, SETUP_TIMEOUT_S, "the availability read model did not list every connector")
        for site in self.sites:
            await self._set_policy(site)
            await self._join(site)
        await self._wait(self._caught_up, SETUP_TIMEOUT_S, "the dispatcher and read models did not catch up")
        early = await self.db.fetchval("SELECT count(*) FROM events WHERE type = 'ticket.offered'")
        if early:
            raise QueueFailure(f"{early} offers made while every connector was charging")

    async def _webhook(self, body: bytes) -> None:
        response = await self.http.post("/webhooks/edrv", content=body, headers=JSON)
        self._expect(response, 200, "POST /webhooks/edrv")

    async def _set_policy(self, site: Site) -> None:
        response = await self.http.put(
            f"/v1/admin/locations/{site.location_id}/queue-policy",
            json={"respond_within_s": RESPOND_WITHIN_S},
            headers=self.admin,
        )
        self._expect(response, 200, "PUT queue-policy")
        if response.json()["respond_within_s"] != RESPOND_WITHIN_S:
            raise QueueFailure(f"site {site.number}: the policy was not set: {response.text}")

    async def _join(self, site: Site) -> None:
        response = await self.http.post(
            f"/v1/locations/{site.location_id}/tickets",
            json={"connector_types": [CONNECTOR_TYPE]},
            headers=site.headers,
        )
        self._expect(response, 201, "POST tickets (join)")
        ticket = response.json()
        if ticket["status"] != "waiting":
            raise QueueFailure(f"site {site.number}: joined as {ticket['status']!r}, expected waiting")
        site.ticket_id = ticket["id"]

    async def _open_streams(self, readers: list[asyncio.Task[None]]) -> None:
        """Each driver opens its ticket's stream, as the app does while its driver waits, and reads the
        first message (the ticket as it is now: waiting) so the stream is known to be live. From then
        on a task per stream reads every message as it arrives and stamps it."""
        for site in self.sites:
            path = f"/v1/tickets/{site.ticket_id}/events"
            try:
                site.follow = await asyncio.wait_for(
                    open_stream("127.0.0.1", self.app.port, path, headers=site.headers),
                    STREAM_OPEN_TIMEOUT_S,
                )
                reader = SseReader(site.follow)
                first = await asyncio.wait_for(reader.next(), STREAM_OPEN_TIMEOUT_S)
            except (SseError, TimeoutError) as exc:
                self.app.check_alive()
                raise QueueFailure(f"site {site.number}: its ticket stream: {exc!r}") from None
            if first is None or first.event != "ticket" or first.data is None:
                raise QueueFailure(f"site {site.number}: the ticket stream began with {first!r}")
            status = json.loads(first.data)["status"]
            if status != "waiting":
                raise QueueFailure(f"site {site.number}: the ticket stream shows {status!r}, not waiting")
            readers.append(asyncio.create_task(_read_into(reader, site.messages)))

    # -- 1. advances --------------------------------------------------------------------------------

    async def _advances(self) -> None:
        loop = asyncio.get_running_loop()
        start = loop.time()
        for index, site in enumerate(self.sites):
            await asyncio.sleep(max(0.0, start + index * SPACING_S - loop.time()))
            body = site.station.status(site.connector_id, "Available")
            site.delivery_id = json.loads(body)["_id"]
            sent = time.perf_counter()
            response = await self.http.post("/webhooks/edrv", content=body, headers=JSON)
            site.answered_at, answered = time.time(), time.perf_counter()
            self._expect(response, 200, "POST /webhooks/edrv (connector available)")
            seen = await self._offer_on_stream(site)
            get_s = await self._check_offer(site)
            run = SiteRun(
                location_id=site.location_id,
                ticket_id=site.ticket_id,
                webhook_ms=round((answered - sent) * 1000, 3),
                sse_ms=round((seen - answered) * 1000, 3),
                get_ms=round(get_s * 1000, 3),
            )
            self.results.sites.append(run)
            await self._pause(site)
            self.console.print(
                f"  site {site.number:>3}/{len(self.sites)}  webhook {run.webhook_ms:6.2f} ms  "
                f"offer on the driver's stream after {run.sse_ms:6.2f} ms  (GET check {run.get_ms:5.2f} ms)",
                highlight=False,
            )

    async def _offer_on_stream(self, site: Site) -> float:
        """When the "offered" ticket message arrived on the driver's stream (perf_counter). It may be a
        moment before ``answered``: when the 200 and the message are read in the same turn of the event
        loop, the reader task may stamp the message first."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + OFFER_TIMEOUT_S
        while True:
            try:
                message = await asyncio.wait_for(site.messages.get(), max(deadline - loop.time(), 0.0))
            except TimeoutError:
                self.app.check_alive()
                raise QueueFailure(
                    f"site {site.number}: no offer on the driver's stream {OFFER_TIMEOUT_S:.0f} s after its "
                    f"connector became available\n{self.app.log_tail()}"
                ) from None
            if message is None:
                self.app.check_alive()
                raise QueueFailure(f"site {site.number}: the driver's stream ended before the offer")
            if message.event != "ticket" or message.data is None:
                continue
            ticket = json.loads(message.data)
            if ticket["status"] == "offered":
                offer = ticket["offer"]
                if (offer["chargestation_id"], offer["connector_id"]) != (site.station.id, site.connector_id):
                    raise QueueFailure(f"site {site.number}: offered another connector: {offer}")
                return message.received_at
            if ticket["status"] != "waiting":
                raise QueueFailure(f"site {site.number}: the ticket became {ticket['status']!r}, not offered")

    async def _check_offer(self, site: Site) -> float:
        """One GET of the ticket once its stream showed the offer: it must read "offered" too. Returns
        that GET's round trip (s)."""
        started = time.perf_counter()
        response = await self.http.get(f"/v1/tickets/{site.ticket_id}", headers=site.headers)
        round_trip = time.perf_counter() - started
        self._expect(response, 200, "GET ticket")
        ticket = response.json()
        if ticket["status"] != "offered":
            raise QueueFailure(
                f"site {site.number}: its stream showed the offer, but GET answers {ticket['status']!r}"
            )
        offer = ticket["offer"]
        if (offer["chargestation_id"], offer["connector_id"]) != (site.station.id, site.connector_id):
            raise QueueFailure(f"site {site.number}: GET shows another connector offered: {offer}")
        return round_trip

    async def _pause(self, site: Site) -> None:
        path = f"/v1/admin/locations/{site.location_id}/queue/pause"
        response = await self.http.post(path, headers=self.admin)
        self._expect(response, 200, "POST queue/pause")

    async def _offers(self) -> dict[str, datetime]:
        """Each site's offer as the log has it, checked; fills offer_ms and log_ms; returns the deadlines."""
        rows = await self.db.fetch(_OFFERS, self.streams)
        by_stream: dict[str, list[asyncpg.Record]] = {}
        for row in rows:
            by_stream.setdefault(row[0], []).append(row)
        delivered = {
            row[0]: row[1]
            for row in await self.db.fetch(_DELIVERED, [site.delivery_id for site in self.sites])
        }
        deadlines: dict[str, datetime] = {}
        for site, run in zip(self.sites, self.results.sites, strict=True):
            offers = by_stream.get(site.stream, [])
            if len(offers) != 1:
                raise QueueFailure(f"site {site.number}: {len(offers)} offers in the log, expected one")
            _, ticket_id, station_id, connector_id, respond_by, recorded_at = offers[0]
            if (ticket_id, station_id, connector_id) != (site.ticket_id, site.station.id, site.connector_id):
                raise QueueFailure(f"site {site.number}: the offer is not its driver's on its connector")
            freed_at = delivered.get(site.delivery_id)
            if freed_at is None:
                raise QueueFailure(f"site {site.number}: the 'Available' webhook is not in the log")
            if recorded_at <= freed_at:
                raise QueueFailure(f"site {site.number}: offered before its connector was reported free")
            run.offer_ms = round((recorded_at.timestamp() - site.answered_at) * 1000, 3)
            run.log_ms = round((recorded_at - freed_at).total_seconds() * 1000, 3)
            deadlines[site.stream] = respond_by
        return deadlines

    # -- 2. deadlines -------------------------------------------------------------------------------

    async def _deadlines(self, deadlines: dict[str, datetime]) -> None:
        last = max(deadlines.values())
        self.console.print(
            f"Waiting for the scheduler: the last offer's deadline is in "
            f"{max(last.timestamp() - time.time(), 0.0):.1f} s",
            highlight=False,
        )
        await self._wait_for_all("ticket.snoozed", last, "the scheduler did not act on every deadline")
        snoozes: dict[str, list[asyncpg.Record]] = {}
        for row in await self.db.fetch(_SNOOZES, self.streams):
            snoozes.setdefault(row[0], []).append(row)
        for site, run in zip(self.sites, self.results.sites, strict=True):
            found = snoozes.get(site.stream, [])
            if len(found) != 1:
                raise QueueFailure(f"site {site.number}: {len(found)} snoozes, expected one (no answer)")
            _, ticket_id, by, at, recorded_at = found[0]
            if (ticket_id, by) != (site.ticket_id, "no_answer"):
                raise QueueFailure(f"site {site.number}: snoozed {ticket_id} by {by}, expected its no-answer")
            if at != deadlines[site.stream]:
                raise QueueFailure(
                    f"site {site.number}: the snooze acted on {at.isoformat()}, "
                    f"the offer's deadline was {deadlines[site.stream].isoformat()}"
                )
            run.lateness_ms = round((recorded_at - at).total_seconds() * 1000, 3)
        # A snooze lasts a response window; when it ends the paused queue offers nothing.
        ends = max(deadlines.values())
        await self._wait_for_all("ticket.snooze_ended", ends, "the snoozes did not all end", extra_s=1.0)
        await self._wait(self._caught_up, SETUP_TIMEOUT_S, "the dispatcher and read models did not catch up")

    async def _wait_for_all(
        self, event_type: str, after: datetime, what: str, *, extra_s: float = 0.0
    ) -> None:
        async def all_there() -> bool:
            return bool(await self.db.fetchval(_COUNT, event_type, self.streams) >= len(self.sites))

        timeout = max(after.timestamp() - time.time(), 0.0) + extra_s + GRACE_S
        await self._wait(all_there, timeout, what)

    async def _final_checks(self) -> None:
        """Each queue's whole log: exactly the expected events (so one offer, no second one after the
        snooze); and no read model or the dispatcher skipped an event."""
        types = {row[0]: list(row[1]) for row in await self.db.fetch(_STREAM_TYPES, self.streams)}
        for site in self.sites:
            if types.get(site.stream) != EXPECTED_EVENTS:
                raise QueueFailure(
                    f"site {site.number}: its queue's log is {types.get(site.stream)}, "
                    f"expected {EXPECTED_EVENTS}"
                )
        skipped = await self.db.fetch("SELECT projection, position, error FROM projection_errors LIMIT 5")
        if skipped:
            raise QueueFailure(f"events were skipped as unreadable: {[tuple(row) for row in skipped]}")
        self.app.check_alive()

    # -- helpers ------------------------------------------------------------------------------------

    async def _caught_up(self) -> bool:
        return bool(await self.db.fetchval(CAUGHT_UP, RUNNERS) == len(RUNNERS))

    async def _wait(self, done: Callable[[], Awaitable[bool]], timeout_s: float, what: str) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        while not await done():
            self.app.check_alive()
            if loop.time() > deadline:
                raise QueueFailure(f"{what} within {timeout_s:.1f} s\n{self.app.log_tail()}")
            await asyncio.sleep(WAIT_STEP_S)

    def _expect(self, response: httpx.Response, status: int, what: str) -> None:
        if response.status_code != status:
            raise QueueFailure(f"{what} answered {response.status_code}, expected {status}: {response.text}")


async def _read_into(reader: SseReader, messages: asyncio.Queue[SseMessage | None]) -> None:
    while True:
        message = await reader.next()
        messages.put_nowait(message)
        if message is None:
            return


def _site(number: int, jwt_secret: str) -> Site:
    location_id = f"6650{number:020x}"  # eDRV ids are 24 hex digits
    station_id, connector_id = f"6651{number:020x}", f"6652{number:020x}"
    station = Station(station_id, location_id, [Connector(connector_id, CONNECTOR_TYPE, 150, "Charging")])
    driver = f"bench-driver-{number}"
    token = mint_token(jwt_secret, driver, edrv_user_id=f"edrv-{driver}")
    return Site(
        number=number,
        location_id=location_id,
        station=station,
        connector_id=connector_id,
        headers={"Authorization": f"Bearer {token}"},
    )


def percentile(values: Sequence[float], fraction: float) -> float:
    """Linear interpolation between the closest ranks (numpy's default)."""
    ordered = sorted(values)
    rank = (len(ordered) - 1) * fraction
    low = math.floor(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def latency_of(values: Sequence[float]) -> Latency:
    return Latency(
        p50=round(percentile(values, 0.5), 3),
        p90=round(percentile(values, 0.9), 3),
        p99=round(percentile(values, 0.99), 3),
        max=round(max(values), 3),
    )


def _summarise(results: QueueResults) -> None:
    sites = results.sites

    def column(values: list[float | None]) -> list[float]:
        assert all(value is not None for value in values), "every site was measured"
        return [value for value in values if value is not None]

    figures = QueueFigures(
        offer_ms=latency_of(column([site.offer_ms for site in sites])),
        sse_ms=latency_of([site.sse_ms for site in sites]),
        log_ms=latency_of(column([site.log_ms for site in sites])),
        webhook_ms=latency_of([site.webhook_ms for site in sites]),
        get_ms=latency_of([site.get_ms for site in sites]),
        lateness_ms=latency_of(column([site.lateness_ms for site in sites])),
    )
    results.figures = figures
    judge = not results.settings.smoke
    for name, limit, value in (
        ("webhook 200 → offer on the driver's SSE stream, p50", SSE_P50_LIMIT_MS, figures.sse_ms.p50),
        ("webhook 200 → offer on the driver's SSE stream, p99", SSE_P99_LIMIT_MS, figures.sse_ms.p99),
    ):
        results.targets.append(
            Target(name=name, limit=limit, value=value, unit="ms", passed=value <= limit if judge else None)
        )
    worst = figures.lateness_ms.max
    results.targets.append(
        Target(
            name="scheduler lateness past an unanswered offer's deadline, max",
            limit=LATENESS_LIMIT_MS,
            value=worst,
            unit="ms",
            passed=None if results.settings.smoke else worst <= LATENESS_LIMIT_MS,
        )
    )


def print_queue_report(results: QueueResults, console: Console) -> None:
    figures, settings = results.figures, results.settings
    if figures is not None:
        postgres, clock = results.postgres, results.clock
        table = Table(
            title=(
                f"Queue: {settings.sites} sites, one {settings.connector_type} connector and one waiting "
                f"driver each, freed {settings.spacing_ms:.0f} ms apart; advances timed from the webhook's "
                f"200, each driver following its ticket's SSE stream; deadlines after "
                f"respond_within_s={settings.respond_within_s}"
            ),
            caption=(
                f"{results.machine.cpu_count} CPUs, {results.machine.platform}; "
                f"PostgreSQL {postgres.version if postgres else '?'} "
                f"({postgres.source if postgres else '?'}); "
                f"its clock - ours {clock.offset_ms if clock else float('nan'):+.2f} ms"
            ),
        )
        table.add_column("")
        for name in ("p50 ms", "p90 ms", "p99 ms", "max ms"):
            table.add_column(name, justify="right")
        rows: list[tuple[str, Latency, str]] = [
            ("advance: offer committed", figures.offer_ms, "bold"),
            ("advance: offer on the driver's stream", figures.sse_ms, "bold"),
            ("  webhook event → offer (log)", figures.log_ms, "dim"),
            ("  webhook round trip", figures.webhook_ms, "dim"),
            ("  GET ticket after the offer (check)", figures.get_ms, "dim"),
            ("deadline: lateness", figures.lateness_ms, "bold"),
        ]
        for name, latency, style in rows:
            table.add_row(name, *_cells(latency), style=style)
        console.print(table)
    for target in results.targets:
        verdict = {True: "[green]PASS[/]", False: "[red]FAIL[/]", None: "[dim]not evaluated (smoke)[/]"}
        console.print(
            f"Target: {target.name} ≤ {target.limit:g} {target.unit}: "
            f"{target.value:.2f} {target.unit} {verdict[target.passed]}"
        )
    if results.error:
        console.print(f"[bold red]Benchmark failed:[/] {results.error}", highlight=False)


def _cells(latency: Latency) -> list[str]:
    return [f"{value:.2f}" for value in (latency.p50, latency.p90, latency.p99, latency.max)]


def settings_for(*, smoke: bool, sites: int) -> QueueSettings:
    return QueueSettings(smoke=smoke, sites=sites)
