"""The webhooks benchmark: how fast the outbound-webhook sender works off a backlog, against plain httpx.

Outbound webhooks are durable: every delivery is a row, every attempt is recorded, and a ticket's messages
reach an endpoint in log order. That costs database round trips on top of the HTTP POST itself; this
benchmark measures how much, as a ratio against the same POSTs made without any of it, in the same run
(the machines are shared and noisy, so the ratio is the figure that matters, not the absolute rate).

Set-up of each round (not measured): N ticket events (``ticket.joined``, ``ticket.offered``,
``ticket.accepted`` for N/3 fresh tickets, a hundred tickets at a time, spread over several
``queue-<location>`` streams) are appended to a scratch database's log, and the real Outbox projection
(stepped by its ``ProjectionRunner``) enqueues them for K subscriptions made at the start (``ticket.``,
each its own path on one receiver): N x K pending deliveries. Then ``VACUUM (ANALYZE)`` of the webhook
tables, so each round is planned on current statistics.

The receiver (``create_receiver``) runs in a uvicorn process of its own (uvloop, httptools), so it shares no
event loop with what is measured: it checks each POST's Standard Webhooks signature with the stdlib's HMAC,
records (path, ``webhook-id``, verified) in arrival order and answers 204.

Measured, interleaved per round (baseline, sender, baseline, sender, ...), medians reported:

- **baseline**: a plain ``httpx.AsyncClient``, no database: the round's deliveries (read beforehand),
  each rendered and signed exactly as the sender does (``payload.render``, ``signing.headers``) and POSTed
  to the same URL, ``concurrency`` at a time (the sender's own limit: min(max_in_flight, K x per_endpoint));
- **sender**: the real ``Sender.run()`` (lease, LISTEN, ``send_due``) with the real guarded transport
  (``allow_private=True``), signing and recording of every attempt, until nothing is pending. Its time runs
  from the start to the last delivery's ``finished_at``.

Reported: deliveries/s of each and the ratio sender ÷ baseline (medians); per-POST latency (the harness's
clock around each baseline POST; ``webhook_attempts.latency_ms``, the sender's own timing of its POST, for
the sender); CPU time per delivery of this process, of the receiver and of PostgreSQL (when it runs on this
machine), which say where the difference goes when the machine, not the design, is the limit. There is no
product target: the ratio is reported against an informal expectation of 0.5x.

Checked after every run (the run fails if not): the baseline's POSTs all got a 2xx, and the sender's
deliveries all ended ``delivered``; the receiver got every (subscription, message) at least once, nothing
else, every signature verified; and, for the sender, per ticket per endpoint the messages arrived in
position order.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import hmac
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import asyncpg
import httpx
import msgspec
import psutil
from rich.console import Console
from rich.table import Table

from bench.database import PostgresInfo, postgres_info, scratch_database, server_url
from bench.load import Latency
from bench.queue_latency import latency_of
from bench.results import Machine, Target, machine
from bench.servers import AppServer, ServerFailed
from service.db.engine import create_engine
from service.eventlog.doorbell import Doorbell
from service.eventlog.model import Appended, NewEvent
from service.eventlog.store import EventStore
from service.outbound import signing, subscriptions
from service.outbound.outbox import Outbox
from service.outbound.payload import message_id, render
from service.outbound.sender import Sender
from service.outbound.targets import guarded_transport
from service.projections.runner import ProjectionRunner
from service.projections.ticket_table import ticket_of
from service.queue.events import OfferAccepted, QueueEvent, TicketJoined, TicketOffered, encode_event
from service.queue.model import Requirements

if TYPE_CHECKING:
    Connection = asyncpg.Connection[asyncpg.Record]

LOOP_FACTORY: Callable[[], asyncio.AbstractEventLoop] | None
try:  # the app's event loop under uvicorn: the sender is measured on the loop it runs on in production
    import uvloop

    LOOP_FACTORY, LOOP_NAME = uvloop.new_event_loop, "uvloop"
except ImportError:  # pragma: no cover - not installed on Windows
    LOOP_FACTORY, LOOP_NAME = None, "asyncio"

RATIO_EXPECTATION = 0.5  # informal: there is no product target for webhook throughput
EVENTS_PER_TICKET = 3  # joined, offered, accepted
TICKET_GROUP = 100  # tickets whose joins, then offers, then acceptances are appended together
LOCATIONS = 8
PER_ENDPOINT = 4  # the Sender's defaults, as the app runs it
MAX_IN_FLIGHT = 100
TIMEOUT_S = 10.0  # the app's default webhook_delivery_timeout_s
POLL_S = 0.2  # how often the harness looks whether the sender is done (the figure uses finished_at)
STALL_S = 30.0  # no delivery finished for this long: the sender is stuck, the run fails
CONTROL = "/_control/"  # the receiver's own endpoints; everything else is a webhook
HOOK_PATH = "/hooks/{}"

_ROUND = """
    SELECT d.subscription_id, s.url, s.secret, d.position, d.ticket_id, m.type, m.created_at, m.ticket
      FROM webhook_deliveries AS d
      JOIN webhook_subscriptions AS s ON s.id = d.subscription_id
      JOIN webhook_messages AS m ON m.position = d.position
     WHERE d.position BETWEEN $1 AND $2
     ORDER BY d.id
"""
_STATUSES = "SELECT status, count(*) FROM webhook_deliveries WHERE position BETWEEN $1 AND $2 GROUP BY status"
_ATTEMPTS = """
    SELECT count(*), count(*) FILTER (WHERE a.status_code BETWEEN 200 AND 299), max(d.finished_at),
           percentile_cont(ARRAY[0.5, 0.9, 0.99]) WITHIN GROUP (ORDER BY a.latency_ms), max(a.latency_ms)
      FROM webhook_attempts AS a JOIN webhook_deliveries AS d ON d.id = a.delivery_id
     WHERE d.position BETWEEN $1 AND $2
"""


# -- results ---------------------------------------------------------------------------------------


class WebhooksSettings(msgspec.Struct, kw_only=True):
    smoke: bool
    events: int  # ticket events appended per round
    tickets: int  # per round, fresh ones
    endpoints: int  # subscriptions, each its own path on the one receiver
    deliveries: int  # per round: events x endpoints
    rounds: int
    per_endpoint: int  # the Sender's per-endpoint budget of attempts in flight
    max_in_flight: int
    concurrency: int  # min(max_in_flight, endpoints x per_endpoint): the baseline's too
    locations: int
    timeout_s: float
    loop: str  # the harness's event loop (``LOOP_FACTORY``)


class Batch(msgspec.Struct, frozen=True, kw_only=True):
    """One round's backlog, made before the round is measured."""

    round: int
    first_position: int
    last_position: int
    append_s: float
    enqueue_s: float  # the Outbox projection, stepped until caught up
    deliveries: int


class WebhooksRun(msgspec.Struct, frozen=True, kw_only=True):
    kind: str  # "baseline" or "sender"
    round: int
    deliveries: int
    attempts: int  # POSTs made: the deliveries, plus any retries
    seconds: float
    deliveries_per_s: float
    latency_ms: Latency  # per POST: timed by the harness (baseline); webhook_attempts.latency_ms (sender)
    cpu_us_per_delivery: float  # this process (the sender or the baseline client), user + system
    receiver_cpu_us_per_delivery: float
    postgres_cpu_us_per_delivery: float | None  # the server's processes; None when it is not on this machine


class Check(msgspec.Struct, frozen=True, kw_only=True):
    """What the receiver got, against the round's deliveries (and the database, for the sender)."""

    kind: str
    round: int
    expected: int  # (subscription, message) pairs
    received: int  # POSTs the receiver recorded
    missing: int
    unexpected: int  # a path or message that is not one of the round's deliveries
    duplicates: int  # allowed (at least once), but reported
    unverified: int  # signature did not verify
    out_of_order: int | None  # per ticket per endpoint; None for the baseline, which does not order
    not_delivered: int  # baseline: non-2xx answers or errors; sender: deliveries not ``delivered``

    @property
    def problems(self) -> list[str]:
        found = [
            f"{self.not_delivered} not delivered" if self.not_delivered else "",
            f"{self.missing} of {self.expected} never received" if self.missing else "",
            f"{self.unexpected} unexpected POSTs" if self.unexpected else "",
            f"{self.unverified} signatures did not verify" if self.unverified else "",
            f"{self.out_of_order} arrived out of order" if self.out_of_order else "",
        ]
        return [problem for problem in found if problem]


class WebhooksFigures(msgspec.Struct, frozen=True, kw_only=True):
    baseline_per_s: float  # medians over the rounds
    sender_per_s: float
    ratio: float  # sender / baseline
    baseline_by_round: list[float]
    sender_by_round: list[float]
    baseline_latency_ms: Latency  # each a median over the rounds
    sender_latency_ms: Latency
    baseline_cpu_us_per_delivery: float  # this process
    sender_cpu_us_per_delivery: float
    baseline_postgres_cpu_us_per_delivery: float | None  # ~0: the control
    sender_postgres_cpu_us_per_delivery: float | None


class WebhooksResults(msgspec.Struct, kw_only=True):
    benchmark: str = "webhooks"
    started_at: datetime
    finished_at: datetime | None = None
    ok: bool = False
    error: str | None = None
    machine: Machine
    settings: WebhooksSettings
    postgres: PostgresInfo | None = None
    batches: list[Batch] = msgspec.field(default_factory=list)
    runs: list[WebhooksRun] = msgspec.field(default_factory=list)
    checks: list[Check] = msgspec.field(default_factory=list)
    figures: WebhooksFigures | None = None
    targets: list[Target] = msgspec.field(default_factory=list)


class WebhooksFailure(RuntimeError):
    """A delivery went missing, out of order or undelivered: the figures cannot be trusted."""


def settings_for(
    *, smoke: bool, events: int, endpoints: int, rounds: int, per_endpoint: int = PER_ENDPOINT
) -> WebhooksSettings:
    return WebhooksSettings(
        smoke=smoke,
        events=events,
        tickets=-(-events // EVENTS_PER_TICKET),
        endpoints=endpoints,
        deliveries=events * endpoints,
        rounds=rounds,
        per_endpoint=per_endpoint,
        max_in_flight=MAX_IN_FLIGHT,
        concurrency=min(MAX_IN_FLIGHT, endpoints * per_endpoint),
        locations=LOCATIONS,
        timeout_s=TIMEOUT_S,
        loop=LOOP_NAME,
    )


# -- the receiver (its own uvicorn process) ---------------------------------------------------------

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]

_NO_CONTENT = {"type": "http.response.start", "status": 204, "headers": []}
_EMPTY = {"type": "http.response.body", "body": b""}


class Receiver:
    """A minimal app backend: verify, record, 204. Control: ``POST /_control/reset`` with
    ``{"secrets": {path: secret}}`` forgets what it got and takes the paths' secrets;
    ``GET /_control/received`` is ``{"records": [[path, webhook_id, verified], ...]}`` in arrival order."""

    def __init__(self) -> None:
        self.keys: dict[str, bytes] = {}
        self.records: list[tuple[str, str, bool]] = []

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            while (message := await receive())["type"] != "lifespan.shutdown":
                await send({"type": "lifespan.startup.complete"})
            await send({"type": "lifespan.shutdown.complete"})
            return
        if scope["type"] != "http":
            return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        path: str = scope["path"]
        if path.startswith(CONTROL):
            await self._control(path, body, send)
            return
        headers = dict(scope["headers"])
        msg_id = headers.get(b"webhook-id", b"")
        self.records.append((path, msg_id.decode(), self._verified(path, msg_id, headers, body)))
        await send(_NO_CONTENT)
        await send(_EMPTY)

    def _verified(self, path: str, msg_id: bytes, headers: dict[bytes, bytes], body: bytes) -> bool:
        """Standard Webhooks: ``v1,`` + base64 HMAC-SHA256 of ``id.timestamp.body``, one of several."""
        key = self.keys.get(path)
        if key is None:
            return False
        signed = b"%s.%s.%s" % (msg_id, headers.get(b"webhook-timestamp", b""), body)
        expected = b"v1," + base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest())
        offered = headers.get(b"webhook-signature", b"").split(b" ")
        return any(hmac.compare_digest(expected, signature) for signature in offered)

    async def _control(self, path: str, body: bytes, send: Send) -> None:
        answer = b""
        if path == CONTROL + "reset":
            secrets: dict[str, str] = msgspec.json.decode(body)["secrets"]
            self.keys = {
                p: base64.b64decode(s.removeprefix(signing.SECRET_PREFIX)) for p, s in secrets.items()
            }
            self.records = []
        elif path == CONTROL + "received":
            answer = msgspec.json.encode({"records": self.records})
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": answer})


def create_receiver() -> Receiver:
    """uvicorn's factory (``--factory bench.webhooks:create_receiver``)."""
    return Receiver()


# -- the run ----------------------------------------------------------------------------------------


class _Delivery(msgspec.Struct, frozen=True):
    """One (subscription, message) of a round, as the database has it."""

    subscription_id: str
    url: str
    secret: str
    position: int
    ticket_id: str
    event_type: str
    created_at: datetime
    ticket: bytes


async def run_webhooks(settings: WebhooksSettings, console: Console) -> WebhooksResults:
    """Measure; a failure is recorded in the results (with the runs done so far), not raised."""
    results = WebhooksResults(started_at=datetime.now(UTC), machine=machine(), settings=settings)
    try:
        await _measure(settings, results, console)
        results.ok = True
    except (WebhooksFailure, ServerFailed) as exc:
        results.error = str(exc)
    results.finished_at = datetime.now(UTC)
    return results


async def _measure(settings: WebhooksSettings, results: WebhooksResults, console: Console) -> None:
    server, source = await asyncio.to_thread(server_url)
    with tempfile.TemporaryDirectory(prefix="chargeline-bench-") as tmp:
        async with scratch_database(server, {}) as url:
            db: Connection = await asyncpg.connect(url)
            engine = create_engine(url)  # the app's engine: pool of 10, as the sender has in production
            store = EventStore(engine)
            await store.start()
            receiver = AppServer(
                "receiver", "bench.webhooks:create_receiver", CONTROL + "health", url, Path(tmp)
            )
            try:
                results.postgres = await postgres_info(db, source)
                console.print(
                    f"PostgreSQL {results.postgres.version} ({source}); {settings.events:,} ticket events x "
                    f"{settings.endpoints} endpoints = {settings.deliveries:,} deliveries a round, "
                    f"concurrency {settings.concurrency}",
                    highlight=False,
                )
                async with receiver, httpx.AsyncClient(base_url=receiver.base_url, timeout=60) as control:
                    run = _Run(settings, results, console, db, store, receiver, control)
                    try:
                        await run.subscribe()
                        for number in range(1, settings.rounds + 1):
                            await run.round(number)
                    except httpx.HTTPError as exc:  # talking to the receiver's control endpoints
                        receiver.check_alive()
                        raise WebhooksFailure(f"receiver: {exc!r}\n{receiver.log_tail()}") from None
            finally:
                await store.close()
                await engine.dispose()
                await db.close()
    _summarise(results)


class _Run:
    def __init__(
        self,
        settings: WebhooksSettings,
        results: WebhooksResults,
        console: Console,
        db: Connection,
        store: EventStore,
        receiver: AppServer,
        control: httpx.AsyncClient,
    ) -> None:
        self.settings = settings
        self.results = results
        self.console = console
        self.db = db
        self.store = store
        self.receiver = receiver
        self.control = control
        self.outbox = ProjectionRunner(store, Outbox(), Doorbell(store.engine))
        self.secrets: dict[str, str] = {}  # path -> secret
        self.paths: dict[str, str] = {}  # subscription id -> path
        self.postmaster: psutil.Process | None = None

    def _cpu(self) -> _Cpu:
        return _Cpu(time.process_time(), _process_cpu_s(self.receiver.pid), _server_cpu_s(self.postmaster))

    async def subscribe(self) -> None:
        self.postmaster = await _postmaster(self.db)
        for number in range(1, self.settings.endpoints + 1):
            path = HOOK_PATH.format(number)
            async with self.store.connection() as connection:
                subscription = await subscriptions.create(
                    connection,
                    url=self.receiver.base_url + path,
                    event_types=["ticket."],
                    description=f"bench endpoint {number}",
                    now=datetime.now(UTC),
                )
            self.secrets[path] = subscription.secret
            self.paths[subscription.id] = path

    async def round(self, number: int) -> None:
        batch = await self._backlog(number)
        deliveries = [
            _Delivery(*row) for row in await self.db.fetch(_ROUND, batch.first_position, batch.last_position)
        ]
        await self._baseline(number, deliveries)
        await self._sender(number, batch, deliveries)

    # -- set-up --

    async def _backlog(self, number: int) -> Batch:
        """Append the round's events and let the Outbox enqueue them; checks the count enqueued."""
        settings = self.settings
        started = time.perf_counter()
        first = last = 0
        for phase in _phases(number, settings.events, settings.locations):
            appended = await asyncio.gather(*(self.store.append(stream, events) for stream, events in phase))
            if not all(isinstance(result, Appended) for result in appended):
                raise WebhooksFailure(f"appending round {number}'s events: {appended!r}")
            positions = [p for result in appended if isinstance(result, Appended) for p in result.positions]
            first = first or min(positions)
            last = max(last, *positions)
        append_s = time.perf_counter() - started
        started = time.perf_counter()
        while await self.outbox.step():
            pass
        enqueue_s = time.perf_counter() - started
        count = int(
            await self.db.fetchval(
                "SELECT count(*) FROM webhook_deliveries WHERE position BETWEEN $1 AND $2", first, last
            )
        )
        if count != settings.deliveries:
            raise WebhooksFailure(
                f"the outbox enqueued {count} deliveries for round {number}, not {settings.deliveries}"
            )
        # Current statistics for the pending backlog, as autovacuum would have them in a steady state.
        await self.db.execute(
            "VACUUM (ANALYZE) webhook_deliveries, webhook_messages, webhook_attempts", timeout=None
        )
        batch = Batch(
            round=number,
            first_position=first,
            last_position=last,
            append_s=round(append_s, 3),
            enqueue_s=round(enqueue_s, 3),
            deliveries=count,
        )
        self.results.batches.append(batch)
        self.console.print(
            f"  round {number}: {count:,} deliveries pending (appended in {append_s:.1f} s, "
            f"enqueued by the outbox in {enqueue_s:.1f} s)",
            highlight=False,
        )
        return batch

    async def _reset_receiver(self) -> None:
        response = await self.control.post(CONTROL + "reset", json={"secrets": self.secrets})
        response.raise_for_status()

    async def _received(self) -> list[tuple[str, str, bool]]:
        response = await self.control.get(CONTROL + "received")
        response.raise_for_status()
        records: list[tuple[str, str, bool]] = msgspec.json.decode(
            response.content, type=dict[str, list[tuple[str, str, bool]]]
        )["records"]
        return records

    # -- measured --

    async def _baseline(self, number: int, deliveries: Sequence[_Delivery]) -> None:
        await self._reset_receiver()
        concurrency = self.settings.concurrency
        latencies: list[float] = []
        failures: list[str] = []
        work = iter(deliveries)  # shared by the workers: each takes the next delivery when it is free
        limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)

        async def worker(client: httpx.AsyncClient) -> None:
            for delivery in work:
                # What the sender does per attempt, minus the database: render, sign, POST.
                now = datetime.now(UTC)
                body = render(
                    delivery.position, delivery.event_type, delivery.created_at, ticket_of(delivery.ticket)
                )
                headers = signing.headers([delivery.secret], message_id(delivery.position), now, body)
                started = time.perf_counter()
                try:
                    response = await client.post(delivery.url, content=body, headers=headers)
                except httpx.HTTPError as exc:
                    failures.append(repr(exc))
                    continue
                latencies.append((time.perf_counter() - started) * 1000)
                if not 200 <= response.status_code < 300:
                    failures.append(f"HTTP {response.status_code}")

        async with httpx.AsyncClient(
            limits=limits, timeout=self.settings.timeout_s, trust_env=False
        ) as client:
            cpu = self._cpu()
            started = time.perf_counter()
            await asyncio.gather(*(worker(client) for _ in range(concurrency)))
            seconds = time.perf_counter() - started
            cpu = self._cpu().minus(cpu)
        count = len(deliveries)
        harness_us, receiver_us, postgres_us = cpu.per_delivery_us(count)
        self._record(
            WebhooksRun(
                kind="baseline",
                round=number,
                deliveries=count,
                attempts=count,
                seconds=round(seconds, 3),
                deliveries_per_s=count / seconds,
                latency_ms=latency_of(latencies or [0.0]),
                cpu_us_per_delivery=harness_us,
                receiver_cpu_us_per_delivery=receiver_us,
                postgres_cpu_us_per_delivery=postgres_us,
            )
        )
        records = await self._received()
        self._check("baseline", number, deliveries, records, not_delivered=len(failures), ordered=False)
        if failures:
            raise WebhooksFailure(
                f"baseline round {number}: {len(failures)} POSTs failed, e.g. {failures[0]}"
            )

    async def _sender(self, number: int, batch: Batch, deliveries: Sequence[_Delivery]) -> None:
        await self._reset_receiver()
        settings = self.settings
        # As the app builds it (service/plugin.py), with private targets allowed: the receiver is local.
        client = httpx.AsyncClient(
            transport=guarded_transport(allow_private=True),
            timeout=settings.timeout_s,
            follow_redirects=False,
            trust_env=False,
        )
        sender = Sender(
            self.store,
            client,
            timeout_s=settings.timeout_s,
            per_endpoint=settings.per_endpoint,
            max_in_flight=settings.max_in_flight,
        )
        cpu = self._cpu()
        started_at = datetime.now(UTC)
        task = asyncio.create_task(sender.run(), name="bench-webhook-sender")
        try:
            await self._wait_until_sent(task)
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            await client.aclose()
        cpu = self._cpu().minus(cpu)
        first, last = batch.first_position, batch.last_position
        statuses = {row[0]: int(row[1]) for row in await self.db.fetch(_STATUSES, first, last)}
        row = await self.db.fetchrow(_ATTEMPTS, first, last)
        assert row is not None  # an aggregate: always one row
        attempts, succeeded, finished_at, percentiles, slowest = row
        if finished_at is None:
            raise WebhooksFailure(f"sender round {number}: no delivery finished")
        count = len(deliveries)
        harness_us, receiver_us, postgres_us = cpu.per_delivery_us(count)
        seconds = (finished_at - started_at).total_seconds()
        p50, p90, p99 = percentiles
        self._record(
            WebhooksRun(
                kind="sender",
                round=number,
                deliveries=count,
                attempts=int(attempts),
                seconds=round(seconds, 3),
                deliveries_per_s=count / seconds,
                latency_ms=Latency(
                    p50=round(p50, 3), p90=round(p90, 3), p99=round(p99, 3), max=round(slowest, 3)
                ),
                cpu_us_per_delivery=harness_us,
                receiver_cpu_us_per_delivery=receiver_us,
                postgres_cpu_us_per_delivery=postgres_us,
            )
        )
        records = await self._received()
        not_delivered = count - statuses.get("delivered", 0)
        self._check("sender", number, deliveries, records, not_delivered=not_delivered, ordered=True)
        if attempts != succeeded:
            self.console.print(f"  [yellow]{attempts - succeeded} attempts failed and were retried[/]")

    async def _wait_until_sent(self, task: asyncio.Task[None]) -> None:
        """Until nothing is pending; fails if the sender stops, or makes no progress for ``STALL_S``."""
        last_pending, progressed = -1, time.monotonic()
        while True:
            await asyncio.sleep(POLL_S)
            if task.done():
                raise WebhooksFailure(f"the sender stopped: {task.exception()!r}")
            pending = int(
                await self.db.fetchval("SELECT count(*) FROM webhook_deliveries WHERE status = 'pending'")
            )
            if pending == 0:
                return
            if pending != last_pending:
                last_pending, progressed = pending, time.monotonic()
            elif time.monotonic() - progressed > STALL_S:
                raise WebhooksFailure(
                    f"the sender made no progress for {STALL_S:.0f} s; {pending} still pending"
                )

    def _record(self, run: WebhooksRun) -> None:
        self.results.runs.append(run)
        latency, postgres = run.latency_ms, run.postgres_cpu_us_per_delivery
        self.console.print(
            f"  {run.kind:<8} #{run.round} {run.seconds:6.2f} s {run.deliveries_per_s:6,.0f} deliveries/s  "
            f"p50 {latency.p50:6.2f} p99 {latency.p99:6.2f} ms  CPU {run.cpu_us_per_delivery:5,.0f} µs each, "
            f"PG {'-' if postgres is None else format(postgres, '5,.0f')}",
            highlight=False,
        )

    def _check(
        self,
        kind: str,
        number: int,
        deliveries: Sequence[_Delivery],
        records: Sequence[tuple[str, str, bool]],
        *,
        not_delivered: int,
        ordered: bool,
    ) -> None:
        expected = {(self.paths[d.subscription_id], message_id(d.position)): d for d in deliveries}
        seen: set[tuple[str, str]] = set()
        latest: dict[tuple[str, str], int] = {}  # (path, ticket) -> the highest position arrived so far
        unexpected = duplicates = unverified = out_of_order = 0
        for path, msg_id, verified in records:
            delivery = expected.get((path, msg_id))
            if delivery is None:
                unexpected += 1
                continue
            unverified += not verified
            duplicates += (path, msg_id) in seen
            seen.add((path, msg_id))
            # A retry of the message just before is fine; anything older after a newer one is not.
            stream = (path, delivery.ticket_id)
            out_of_order += delivery.position < latest.get(stream, 0)
            latest[stream] = max(latest.get(stream, 0), delivery.position)
        check = Check(
            kind=kind,
            round=number,
            expected=len(expected),
            received=len(records),
            missing=len(expected) - len(seen),
            unexpected=unexpected,
            duplicates=duplicates,
            unverified=unverified,
            out_of_order=out_of_order if ordered else None,
            not_delivered=not_delivered,
        )
        self.results.checks.append(check)
        if check.problems:
            raise WebhooksFailure(f"{kind} round {number}: " + "; ".join(check.problems))


def _phases(number: int, events: int, locations: int) -> list[list[tuple[str, list[NewEvent]]]]:
    """The round's appends, phase by phase: in each group of tickets, all joins, then all offers, then all
    acceptances, so a ticket's messages are spread through the log as they would be in a real queue (and
    the sender's per-ticket ordering has something to hold back). One append per location and phase;
    a phase's appends go to different streams and may be concurrent."""
    now = datetime.now(UTC)
    counts = [EVENTS_PER_TICKET] * (events // EVENTS_PER_TICKET)
    if events % EVENTS_PER_TICKET:
        counts.append(events % EVENTS_PER_TICKET)  # the last ticket gets only the first event(s)
    phases: list[list[tuple[str, list[NewEvent]]]] = []
    for start in range(0, len(counts), TICKET_GROUP):
        group = list(enumerate(counts[start : start + TICKET_GROUP], start))
        for step in range(EVENTS_PER_TICKET):
            streams: dict[str, list[NewEvent]] = {}
            for index, count in group:
                if step < count:
                    location = f"LOC-{index % locations + 1:02d}"
                    event = _ticket_event(step, f"T{number}-{index:06d}", location, index, now)
                    streams.setdefault(f"queue-{location}", []).append(
                        NewEvent(type=event.TYPE, data=encode_event(event), occurred_at=event.at)
                    )
            phases.append(list(streams.items()))
    return phases


def _ticket_event(step: int, ticket_id: str, location: str, index: int, now: datetime) -> QueueEvent:
    at = now + timedelta(seconds=step)
    if step == 0:
        return TicketJoined(
            at=at,
            ticket_id=ticket_id,
            driver_id=f"driver-{index}",
            edrv_user_id=None,
            requirements=Requirements(connector_types=("CCS2",)),
            rank=index + 1,
        )
    if step == 1:
        return TicketOffered(
            at=at,
            ticket_id=ticket_id,
            chargestation_id=f"CS-{location}",
            connector_id="1",
            respond_by=at + timedelta(minutes=2),
        )
    return OfferAccepted(at=at, ticket_id=ticket_id, hold_until=at + timedelta(minutes=10))


class _Cpu(msgspec.Struct, frozen=True):
    """CPU seconds (user + system) used so far by this process, the receiver and PostgreSQL."""

    harness: float
    receiver: float
    postgres: float | None

    def minus(self, before: _Cpu) -> _Cpu:
        postgres = None
        if self.postgres is not None and before.postgres is not None:
            postgres = self.postgres - before.postgres
        return _Cpu(self.harness - before.harness, self.receiver - before.receiver, postgres)

    def per_delivery_us(self, count: int) -> tuple[float, float, float | None]:
        def each(seconds: float) -> float:
            return round(seconds / count * 1e6, 1)

        return each(self.harness), each(self.receiver), None if self.postgres is None else each(self.postgres)


def _process_cpu_s(pid: int | None) -> float:
    """CPU seconds (user + system) of a process so far; 0 if it is gone."""
    if pid is None:
        return 0.0
    try:
        times = psutil.Process(pid).cpu_times()
    except psutil.Error:
        return 0.0
    return float(times.user + times.system)


async def _postmaster(db: Connection) -> psutil.Process | None:
    """PostgreSQL's postmaster when the server runs on this machine (embedded, or a local
    ``BENCH_DATABASE_URL``): the parent of our backend. None for a server elsewhere."""
    backend = int(await db.fetchval("SELECT pg_backend_pid()"))
    try:
        parent = psutil.Process(backend).parent()
        if parent is None or "postgres" not in " ".join([parent.name(), *parent.cmdline()]):
            return None
        parent.cpu_times()  # readable by us?
    except psutil.Error:
        return None
    return parent


def _server_cpu_s(postmaster: psutil.Process | None) -> float | None:
    """The whole server's CPU seconds: the postmaster, the backends it has reaped (its children's
    times) and those still running. A backend that comes and goes within a run counts once it exits."""
    if postmaster is None:
        return None
    try:
        times = postmaster.cpu_times()
        total = float(times.user + times.system + times.children_user + times.children_system)
        for child in postmaster.children():
            with contextlib.suppress(psutil.Error):
                child_times = child.cpu_times()
                total += child_times.user + child_times.system
    except psutil.Error:
        return None
    return total


# -- summary and table --------------------------------------------------------------------------------


def _summarise(results: WebhooksResults) -> None:
    baseline = [run for run in results.runs if run.kind == "baseline"]
    sender = [run for run in results.runs if run.kind == "sender"]
    if not baseline or not sender:
        return
    figures = WebhooksFigures(
        baseline_per_s=statistics.median(run.deliveries_per_s for run in baseline),
        sender_per_s=statistics.median(run.deliveries_per_s for run in sender),
        ratio=statistics.median(run.deliveries_per_s for run in sender)
        / statistics.median(run.deliveries_per_s for run in baseline),
        baseline_by_round=[round(run.deliveries_per_s, 1) for run in baseline],
        sender_by_round=[round(run.deliveries_per_s, 1) for run in sender],
        baseline_latency_ms=_median_latency([run.latency_ms for run in baseline]),
        sender_latency_ms=_median_latency([run.latency_ms for run in sender]),
        baseline_cpu_us_per_delivery=statistics.median(run.cpu_us_per_delivery for run in baseline),
        sender_cpu_us_per_delivery=statistics.median(run.cpu_us_per_delivery for run in sender),
        baseline_postgres_cpu_us_per_delivery=_median_or_none(
            [run.postgres_cpu_us_per_delivery for run in baseline]
        ),
        sender_postgres_cpu_us_per_delivery=_median_or_none(
            [run.postgres_cpu_us_per_delivery for run in sender]
        ),
    )
    results.figures = figures
    results.targets.append(
        Target(
            name="sender throughput / baseline throughput (informal expectation, no product target)",
            limit=RATIO_EXPECTATION,
            value=figures.ratio,
            unit="x",
            passed=None if results.settings.smoke else figures.ratio >= RATIO_EXPECTATION,
        )
    )


def _median_or_none(values: Sequence[float | None]) -> float | None:
    known = [value for value in values if value is not None]
    return statistics.median(known) if known else None


def _median_latency(latencies: Sequence[Latency]) -> Latency:
    return Latency(
        p50=statistics.median(latency.p50 for latency in latencies),
        p90=statistics.median(latency.p90 for latency in latencies),
        p99=statistics.median(latency.p99 for latency in latencies),
        max=statistics.median(latency.max for latency in latencies),
    )


def print_webhooks_report(results: WebhooksResults, console: Console) -> None:
    figures, settings = results.figures, results.settings
    if figures is not None:
        postgres = results.postgres
        table = Table(
            title=(
                f"Outbound webhooks, {settings.events:,} ticket events x {settings.endpoints} endpoints "
                f"= {settings.deliveries:,} deliveries, {settings.concurrency} in flight, "
                f"median of {settings.rounds}"
            ),
            caption=(
                "baseline: the same signed POSTs from plain httpx, no database. CPU: this process; PG: "
                f"PostgreSQL's.\n{results.machine.cpu_count} CPUs, {results.machine.platform}; "
                f"PostgreSQL {postgres.version if postgres else '?'} "
                f"({postgres.source if postgres else '?'}); {settings.loop}"
            ),
        )
        table.add_column("")
        for column in ("deliveries/s", "p50 ms", "p99 ms", "CPU µs each", "PG µs each", "by round"):
            table.add_column(column, justify="right")
        rows = (
            ("baseline", figures.baseline_per_s, figures.baseline_latency_ms,
             figures.baseline_cpu_us_per_delivery, figures.baseline_postgres_cpu_us_per_delivery,
             figures.baseline_by_round),
            ("sender", figures.sender_per_s, figures.sender_latency_ms,
             figures.sender_cpu_us_per_delivery, figures.sender_postgres_cpu_us_per_delivery,
             figures.sender_by_round),
        )  # fmt: skip
        for name, per_s, latency, cpu, postgres_cpu, by_round in rows:
            table.add_row(
                name,
                f"{per_s:,.0f}",
                f"{latency.p50:.2f}",
                f"{latency.p99:.2f}",
                f"{cpu:,.0f}",
                "-" if postgres_cpu is None else f"{postgres_cpu:,.0f}",
                " ".join(f"{value:,.0f}" for value in by_round),
            )
        table.add_row("sender / baseline", f"{figures.ratio:.2f}x", "", "", "", "", "", style="bold")
        console.print(table)
    sender_checks = [check for check in results.checks if check.kind == "sender"]
    if sender_checks and not any(check.problems for check in sender_checks):
        retried = sum(run.attempts - run.deliveries for run in results.runs if run.kind == "sender")
        duplicates = sum(check.duplicates for check in sender_checks)
        console.print(
            f"Checked: every delivery delivered ({retried} retries), received by the right endpoint "
            f"({duplicates} duplicates), signature verified, in order per ticket and endpoint",
            highlight=False,
        )
    for target in results.targets:
        verdict = {True: "[green]PASS[/]", False: "[red]FAIL[/]", None: "[dim]not evaluated (smoke)[/]"}
        console.print(
            f"Target: {target.name} ≥ {target.limit:g}{target.unit}: "
            f"{target.value:.2f}{target.unit} {verdict[target.passed]}"
        )
    if results.error:
        console.print(f"[bold red]Benchmark failed:[/] {results.error}", highlight=False)
