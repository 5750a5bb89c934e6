"""The subscribers benchmark: many server-sent event streams on one Chargeline process.

Two product targets: 10,000 concurrent SSE subscribers on one process under 1 GiB RSS, and a broadcast (one
change reaching all of them) within 1 s. Measured on Chargeline as the other benchmarks run it (one uvicorn
process, ``bench/chargeline_app.py``), on a scratch database.

Set-up (not measured): one location with one station and one CCS2 connector reported ``Faulted``, its
queue policy ``respond_within_s=3600`` (an offer stands for the whole run), and nobody waiting. Then N
streams of the location's public board (``GET /v1/locations/{id}/queue/events``) are opened by a client
process of their own (``bench/subscribers_client.py``), at most ``OPEN_WINDOW`` at a time, each counted
once its first ``event: queue`` (no ticket, no offerable connector) has arrived.

Measured:

- the server's RSS (the uvicorn process and any children, psutil) before the streams open, with all N
  open and idle, and its peak while the broadcasts go out (sampled every 100 ms);
- **single-change broadcasts** (judged against the target), ``spacing_s`` apart: with nobody waiting, the
  connector is reported ``Available``, then ``Faulted``, alternately. The dispatcher has no one to offer
  it to, so each flip is one event and one board message, whose ``offerable_connectors`` lists the
  connector when it is Available and is empty when it is Faulted;
- then one driver joins (every stream must show it, once), and **compound broadcasts** (shown, not
  judged): the connector is reported ``Available`` and the dispatcher offers it to the driver (the board's
  ``counts.offered`` goes to 1), then ``Faulted`` and the offer is revoked (back to 0), alternately: two
  events each, the connector's and the queue's, and what drivers' boards see when the queue moves.

Each broadcast is timed from the webhook's 200 to the moment each stream received the board showing it, on
the machine's monotonic clock (the client stamps arrivals with CLOCK_MONOTONIC, which every process on the
machine shares).

Checked, and the run fails (exit 1) if not: every stream opens and shows the initial board; no stream gets
a board while nothing changes; every stream receives every broadcast within ``COLLECT_TIMEOUT_S``, and
the last board it got for it shows it (none stale after it); each single change (and the join) reaches each
stream as exactly one message, each compound one as one or two; no stream is ended by the server; the
connector's log holds one status event per flip; the queue's log holds no offer while nobody waits and,
after, exactly one offer per compound ``Available`` and one revocation per compound ``Faulted``; no read
model or the dispatcher skipped an event; the app is still running.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import secrets
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

import asyncpg
import httpx
import msgspec
import psutil
from rich.console import Console
from rich.table import Table

from bench import ROOT
from bench.chargeline_app import ADMIN_TOKEN_ENV, JWT_SECRET_ENV
from bench.database import PostgresInfo, postgres_info, scratch_database, server_url
from bench.load import Latency
from bench.queue_latency import CAUGHT_UP, RUNNERS, ClockCheck, clock_check, latency_of
from bench.results import Machine, Target, machine
from bench.servers import AppServer, ServerFailed, raise_open_files_limit, tree_rss
from service.api.drivers import mint_token
from service.simulate.edrv import Connector, Station

if TYPE_CHECKING:
    Connection = asyncpg.Connection[asyncpg.Record]

TARGET_SUBSCRIBERS = 10_000  # the product targets are stated for this many
RSS_LIMIT_MIB = 1024.0
BROADCAST_LIMIT_MS = 1000.0
OPEN_WINDOW = 250  # streams being opened at a time: far below uvicorn's listen backlog (2048)
FD_MARGIN = 256  # descriptors each process needs besides the streams (database pool, pipes, logs)
PORT_MARGIN = 1000  # ephemeral ports left for everything else when deciding on more source addresses
COLLECT_TIMEOUT_S = 10.0  # a subscriber without the broadcast this long after the 200 never got it
QUIET_S = 0.25  # at least this long after a broadcast's last arrival before the next one is armed
RSS_SAMPLE_S = 0.1
SETTLE_S = 1.0  # after the last stream opened, before the idle RSS is read
SETUP_TIMEOUT_S = 30.0
WAIT_STEP_S = 0.02
RESPOND_WITHIN_S = 3600
CONNECTOR_TYPE = "CCS2"
LOCATION_ID, STATION_ID, CONNECTOR_ID = (f"{prefix}{1:020x}" for prefix in ("6670", "6671", "6672"))
DRIVER = "bench-subscribers-driver"
SINGLE, COMPOUND = "single", "compound"  # the two kinds of broadcast
# What the board shows after each broadcast, as the service encodes it (a board's offerable_connectors
# is its last field, and a FreeConnector's chargestation_id and connector_id its first two).
MARKERS = {
    SINGLE: {
        "Available": (
            f'"offerable_connectors":[{{"chargestation_id":"{STATION_ID}","connector_id":"{CONNECTOR_ID}",'
        ),
        "Faulted": '"offerable_connectors":[]}',
    },
    COMPOUND: {"Available": '"offered":1,', "Faulted": '"offered":0,'},
}
FIRST_MARKER = '"line":[],"offerable_connectors":[]}'  # nobody in line, the connector not offerable
JOIN_MARKER = '"waiting":1,"offered":0,'
# Board messages each stream may get for one broadcast: a single change is one message; a compound one
# is two events, which a stream may get in one read (one message showing both) or apart.
PER_STREAM = {SINGLE: (1, 1), COMPOUND: (1, 2)}
QUEUE_EVENTS = {"Available": "ticket.offered", "Faulted": "ticket.offer_revoked"}  # a compound one causes
STATUS_EVENT = "chargestation.connector_status.updated"
MIB = 1024 * 1024
JSON = {"content-type": "application/json"}


class SubscribersSettings(msgspec.Struct, kw_only=True):
    smoke: bool
    subscribers_requested: int
    subscribers: int = 0  # as measured: fewer than requested only when the machine cannot hold them
    single_broadcasts: int  # connector flips with nobody waiting: one event, one board message (judged)
    compound_broadcasts: int  # connector flips with a driver waiting: offer or revocation too (shown)
    spacing_s: float  # start to start, or QUIET_S after the previous one's last arrival when later
    open_window: int = OPEN_WINDOW
    collect_timeout_s: float = COLLECT_TIMEOUT_S
    quiet_s: float = QUIET_S
    source_addresses: list[str] = msgspec.field(default_factory=list)  # empty: the kernel's choice
    client: str = "separate process; asyncio streams, raw bytes scanned for `event: queue` and a marker"
    client_loop: str = ""
    respond_within_s: int = RESPOND_WITHIN_S
    connector_type: str = CONNECTOR_TYPE


class Limits(msgspec.Struct, kw_only=True):
    """What bounds how many streams this machine can hold, and what was in force."""

    harness_nofile: list[int]  # RLIMIT_NOFILE (soft, hard), after raising the soft one
    server_nofile: list[int] | None = None  # the app's, read from the running process
    client_nofile: list[int] | None = None
    ephemeral_ports: int | None = None
    somaxconn: int | None = None
    limited_by: str | None = None  # why fewer subscribers than requested, if so


class Memory(msgspec.Struct, kw_only=True):
    """The app's resident memory (uvicorn process and children), in bytes."""

    server_rss_before: int = 0  # set up, no stream open
    server_rss_open: int = 0  # all streams open and idle
    server_rss_peak: int = 0  # the highest sample while they were open, broadcasts included
    server_rss_after_close: int = 0  # the client closed every stream (Python rarely returns memory)
    per_subscriber_kib: float = 0.0  # (open - before) / subscribers
    server_fds_open: int = 0
    client_rss_open: int = 0


class Ramp(msgspec.Struct, kw_only=True):
    open_s: float  # first connect → last stream's first board, as the client saw it
    opened_per_s: float
    server_cpu_s: float  # the app's CPU time over the ramp
    client_cpu_s: float


class Broadcast(msgspec.Struct, kw_only=True):
    kind: str  # "single" (one change, judged) or "compound" (the change and the dispatcher's answer)
    number: int  # within its kind
    connector_status: str  # what the webhook reported
    webhook_ms: float  # its round trip, sent → 200
    committed_ms: float | None = None
    """Compound: the offer's (or revocation's) recorded_at minus the wall clock right after the 200, how
    much of the latency is the dispatcher's; the rest is the way to the subscribers (see ``clock``)."""
    reached: int  # subscribers that received the board showing it
    missing: int
    latency_ms: Latency | None  # from the 200 to each subscriber's arrival; max = the last subscriber
    first_ms: float | None
    messages: int = 0
    """`event: queue` messages received by all subscribers from this broadcast's arming to the next's (or
    to the end, ``quiet_s`` at least after its last arrival): all it caused, stale or late ones included."""
    messages_per_stream: list[int] = msgspec.field(default_factory=list)  # [fewest, most] on one stream
    server_cpu_s: float  # the app's CPU time from just before the webhook to the last arrival
    client_cpu_s: float  # the client's CPU time since the previous broadcast's last arrival


class SubscribersFigures(msgspec.Struct, kw_only=True):
    kind: str
    latency_ms: Latency  # every subscriber of every broadcast of this kind
    last_ms: list[float]  # each broadcast's last subscriber
    worst_last_ms: float


class SubscribersResults(msgspec.Struct, kw_only=True):
    benchmark: str = "subscribers"
    started_at: datetime
    finished_at: datetime | None = None
    ok: bool = False
    error: str | None = None
    machine: Machine
    settings: SubscribersSettings
    limits: Limits | None = None
    postgres: PostgresInfo | None = None
    clock: ClockCheck | None = None  # PostgreSQL's clock minus ours (committed_ms compares the two)
    memory: Memory = msgspec.field(default_factory=Memory)
    ramp: Ramp | None = None
    broadcasts: list[Broadcast] = msgspec.field(default_factory=list)  # single-change ones, then compound
    figures: SubscribersFigures | None = None  # the single-change broadcasts: judged against the target
    compound_figures: SubscribersFigures | None = None  # the compound ones: shown, not judged
    targets: list[Target] = msgspec.field(default_factory=list)


class SubscribersFailure(RuntimeError):
    """Streams did not open, missed a broadcast or ended, or the service misbehaved: no trustworthy run."""


async def run_subscribers(settings: SubscribersSettings, console: Console) -> SubscribersResults:
    """Measure; a failure is recorded in the results (with what was measured so far), not raised."""
    results = SubscribersResults(started_at=datetime.now(UTC), machine=machine(), settings=settings)
    try:
        await _measure(settings, results, console)
        results.ok = True
    except (SubscribersFailure, ServerFailed) as exc:
        results.error = str(exc)
    results.finished_at = datetime.now(UTC)
    return results


def plan(settings: SubscribersSettings, console: Console) -> Limits:
    """Raise the open-files limit (the app and the client inherit it), then decide how many streams fit
    and over which source addresses; fills ``settings.subscribers`` and ``source_addresses``."""
    soft, hard = raise_open_files_limit()
    limits = Limits(
        harness_nofile=[soft, hard],
        ephemeral_ports=_ephemeral_ports(),
        somaxconn=_read_int("/proc/sys/net/core/somaxconn"),
    )
    wanted = settings.subscribers_requested
    fits = soft - FD_MARGIN
    if wanted > fits:
        limits.limited_by = (
            f"RLIMIT_NOFILE: the hard limit is {hard} descriptors a process, so at most {fits} streams "
            f"(leaving {FD_MARGIN} for the rest); {wanted} were requested"
        )
        console.print(f"[yellow]Measuring {fits} subscribers, not {wanted}: {limits.limited_by}[/]")
        wanted = max(fits, 1)
    settings.subscribers = wanted
    ports = limits.ephemeral_ports
    if ports is not None and wanted > ports - PORT_MARGIN:
        count = math.ceil(wanted / max(ports - PORT_MARGIN, 1))
        settings.source_addresses = [f"127.0.0.{n}" for n in range(1, count + 1)]
    return limits


async def _measure(settings: SubscribersSettings, results: SubscribersResults, console: Console) -> None:
    results.limits = plan(settings, console)
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
                    run = _Run(http, db, app, results, console, admin, jwt_secret, Path(tmp))
                    try:
                        await run.run()
                    except httpx.HTTPError as exc:
                        app.check_alive()
                        raise SubscribersFailure(f"HTTP: {exc!r}\n{app.log_tail()}") from None
            finally:
                await db.close()
    _summarise(results)


class _Client:
    """The client process (``bench/subscribers_client.py``): JSON lines both ways."""

    def __init__(self, process: asyncio.subprocess.Process, log_path: Path) -> None:
        self.process = process
        self.log_path = log_path

    @classmethod
    async def start(cls, args: list[str], log: IO[bytes], log_path: Path) -> _Client:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "bench.subscribers_client",
            *args,
            cwd=ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=log,
            limit=64 * MIB,  # one line holds every subscriber's arrival
        )
        return cls(process, log_path)

    async def receive(self, timeout_s: float) -> dict[str, Any]:
        assert self.process.stdout is not None
        try:
            line = await asyncio.wait_for(self.process.stdout.readline(), timeout_s)
        except TimeoutError:
            raise SubscribersFailure(f"the client said nothing for {timeout_s:.0f} s") from None
        if not line:
            await self.process.wait()
            raise SubscribersFailure(
                f"the client exited with code {self.process.returncode}\n{self.log_tail()}"
            )
        message: dict[str, Any] = msgspec.json.decode(line)
        return message

    async def command(self, command: dict[str, Any], timeout_s: float) -> dict[str, Any]:
        assert self.process.stdin is not None
        self.process.stdin.write(msgspec.json.encode(command) + b"\n")
        await self.process.stdin.drain()
        return await self.receive(timeout_s)

    def log_tail(self, lines: int = 20) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return "(no client log)"
        return "\n".join(text.splitlines()[-lines:]) or "(empty client log)"

    async def stop(self) -> None:
        if self.process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self.process.kill()
            await self.process.wait()


@dataclass
class _Window:
    """What the client's current message window is for, and how many board messages a stream may get."""

    what: str
    fewest: int
    most: int
    broadcast: Broadcast | None = None  # records what the window held


class _Run:
    def __init__(
        self,
        http: httpx.AsyncClient,
        db: Connection,
        app: AppServer,
        results: SubscribersResults,
        console: Console,
        admin_token: str,
        jwt_secret: str,
        tmp: Path,
    ) -> None:
        self.http = http
        self.db = db
        self.app = app
        self.results = results
        self.settings = results.settings
        self.console = console
        self.admin = {"Authorization": f"Bearer {admin_token}"}
        token = mint_token(jwt_secret, DRIVER, edrv_user_id=f"edrv-{DRIVER}")
        self.driver = {"Authorization": f"Bearer {token}"}
        self.station = Station(
            STATION_ID, LOCATION_ID, [Connector(CONNECTOR_ID, CONNECTOR_TYPE, 150, "Faulted")]
        )
        self.tmp = tmp
        self.latencies: dict[str, list[float]] = {SINGLE: [], COMPOUND: []}
        self.peak = 0
        self.flips = 0  # connector statuses reported after set-up
        self.compound: list[tuple[Broadcast, float]] = []  # with time.time() right after its 200
        self.client_cpu = 0.0  # the client's CPU time when it was last heard from
        self.window = _Window("the idle streams, before the first broadcast", 0, 0)
        self.next_at = 0.0  # loop time: when the next step may start (spacing_s after the last)
        self.quiet_until = 0.0  # loop time: QUIET_S after the last step's last arrival

    @property
    def pid(self) -> int:
        assert self.app.pid is not None
        return self.app.pid

    async def run(self) -> None:
        await self._set_up()
        limits = self.results.limits
        assert limits is not None
        with contextlib.suppress(psutil.Error):
            limits.server_nofile = list(psutil.Process(self.pid).rlimit(psutil.RLIMIT_NOFILE))
        await asyncio.sleep(SETTLE_S / 2)
        self.results.memory.server_rss_before = tree_rss(self.pid)
        n = self.settings.subscribers
        self.console.print(
            f"Opening {n} streams of the location's board (at most {OPEN_WINDOW} at a time"
            + (
                f", from {len(self.settings.source_addresses)} source addresses"
                if self.settings.source_addresses
                else ""
            )
            + ")",
            highlight=False,
        )
        with (self.tmp / "client.log").open("wb") as log:
            client = await _Client.start(self._client_args(), log, self.tmp / "client.log")
            try:
                await self._ramp(client)
                sampler = asyncio.create_task(self._sample_rss())
                try:
                    await self._steps(client)
                finally:
                    sampler.cancel()
                    await asyncio.gather(sampler, return_exceptions=True)
                closed = await client.command({"cmd": "close"}, 30)
                if closed.get("closed_by_server"):
                    raise SubscribersFailure(f"the server ended {closed['closed_by_server']} streams")
                await asyncio.wait_for(client.process.wait(), 30)
            finally:
                await client.stop()
        await asyncio.sleep(SETTLE_S)
        self.results.memory.server_rss_after_close = tree_rss(self.pid)
        await self._final_checks()

    def _client_args(self) -> list[str]:
        args = [
            "--host", "127.0.0.1",
            "--port", str(self.app.port),
            "--path", f"/v1/locations/{LOCATION_ID}/queue/events",
            "--count", str(self.settings.subscribers),
            "--window", str(OPEN_WINDOW),
            "--first", FIRST_MARKER,
        ]  # fmt: skip
        if self.settings.source_addresses:
            args += ["--sources", ",".join(self.settings.source_addresses)]
        return args

    # -- set-up -------------------------------------------------------------------------------------

    async def _set_up(self) -> None:
        await self._webhook(self.station.status(CONNECTOR_ID, "Faulted"))

        async def known() -> bool:
            return (await self.http.get(f"/v1/locations/{LOCATION_ID}/queue")).status_code == 200

        await self._wait(known, "the location did not become known")
        response = await self.http.put(
            f"/v1/admin/locations/{LOCATION_ID}/queue-policy",
            json={"respond_within_s": RESPOND_WITHIN_S},
            headers=self.admin,
        )
        self._expect(response, 200, "PUT queue-policy")
        await self._check_board(waiting=0, offerable=0)

    async def _check_board(self, *, waiting: int, offerable: int) -> None:
        """Once everything has caught up: that many drivers waiting, no offer, that many connectors free."""
        await self._wait(self._caught_up, "the dispatcher and read models did not catch up")
        board = (await self.http.get(f"/v1/locations/{LOCATION_ID}/queue")).json()
        seen = (board["counts"]["waiting"], board["counts"]["offered"], len(board["offerable_connectors"]))
        if seen != (waiting, 0, offerable):
            raise SubscribersFailure(
                f"the board should show {waiting} waiting, no offer, {offerable} offerable: {board}"
            )

    # -- the streams --------------------------------------------------------------------------------

    async def _ramp(self, client: _Client) -> None:
        n = self.settings.subscribers
        server_cpu = _cpu_s(self.pid)
        timeout = 60 + n * 0.03
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            self.app.check_alive()
            if loop.time() > deadline:
                raise SubscribersFailure(f"the streams were not all open after {timeout:.0f} s")
            try:
                message = await client.receive(1.0)
            except SubscribersFailure:
                if client.process.returncode is not None:
                    raise
                continue  # nothing this second: the client is still opening
            if message["type"] == "progress":
                self.console.print(
                    f"  {message['opened']:>6} open after {message['elapsed_s']:.1f} s", highlight=False
                )
            elif message["type"] == "failed":
                self.app.check_alive()
                raise SubscribersFailure(
                    f"{message['failed']} of {n} streams failed to open ({message['opened']} opened): "
                    f"{message['errors']}\n{self.app.log_tail()}"
                )
            elif message["type"] == "ready":
                break
        limits = self.results.limits
        assert limits is not None
        limits.client_nofile = message["nofile"]
        self.client_cpu = message["cpu_s"]
        self.settings.client_loop = message["loop"]
        self.results.ramp = Ramp(
            open_s=message["open_s"],
            opened_per_s=round(n / message["open_s"], 1) if message["open_s"] else 0.0,
            server_cpu_s=round(_cpu_s(self.pid) - server_cpu, 3),
            client_cpu_s=round(message["cpu_s"], 3),
        )
        await asyncio.sleep(SETTLE_S)
        memory = self.results.memory
        memory.server_rss_open = tree_rss(self.pid)
        memory.client_rss_open = message["rss"]
        with contextlib.suppress(psutil.Error):
            memory.server_fds_open = psutil.Process(self.pid).num_fds()
        self.peak = memory.server_rss_open
        self.console.print(
            f"{n} streams open in {message['open_s']:.1f} s; the app's RSS "
            f"{memory.server_rss_before / MIB:.0f} MiB before, {memory.server_rss_open / MIB:.0f} MiB now "
            f"({memory.server_fds_open} descriptors)",
            highlight=False,
        )

    async def _sample_rss(self) -> None:
        while True:
            self.peak = max(self.peak, tree_rss(self.pid))
            await asyncio.sleep(RSS_SAMPLE_S)

    async def _steps(self, client: _Client) -> None:
        """The single-change broadcasts (nobody waiting), a driver joining, the compound broadcasts."""
        loop = asyncio.get_running_loop()
        self.next_at = self.quiet_until = loop.time()
        for number in range(1, self.settings.single_broadcasts + 1):
            await self._broadcast(client, SINGLE, number)
        await self._join(client)  # its arming checks the last single broadcast's window
        self.results.figures = self._figures(SINGLE)
        for number in range(1, self.settings.compound_broadcasts + 1):
            await self._broadcast(client, COMPOUND, number)
        await self._turn()
        reply = await client.command({"cmd": "tally"}, 30)
        if reply["type"] != "tally":
            raise SubscribersFailure(f"the client did not tally: {reply}")
        self._close_window(reply["window"])
        self.results.memory.server_rss_peak = max(self.peak, tree_rss(self.pid))
        self.results.compound_figures = self._figures(COMPOUND)

    async def _broadcast(self, client: _Client, kind: str, number: int) -> None:
        n = self.settings.subscribers
        total = self.settings.single_broadcasts if kind == SINGLE else self.settings.compound_broadcasts
        status = "Available" if number % 2 else "Faulted"
        window = _Window(f"{kind} broadcast {number} (connector {status})", *PER_STREAM[kind])
        await self._turn()
        await self._arm(client, MARKERS[kind][status], window)
        server_cpu = _cpu_s(self.pid)
        body = self.station.status(CONNECTOR_ID, status)
        sent = time.monotonic()
        response = await self.http.post("/webhooks/edrv", content=body, headers=JSON)
        answered, answered_at = time.monotonic(), time.time()
        self._expect(response, 200, f"POST /webhooks/edrv (connector {status})")
        self.flips += 1
        reply = await self._collect(client)
        server_cpu = _cpu_s(self.pid) - server_cpu
        latencies = [(at - answered) * 1000 for at in reply["arrivals"] if at is not None]
        self.latencies[kind] += latencies
        broadcast = Broadcast(
            kind=kind,
            number=number,
            connector_status=status,
            webhook_ms=round((answered - sent) * 1000, 3),
            reached=len(latencies),
            missing=n - len(latencies),
            latency_ms=latency_of(latencies) if latencies else None,
            first_ms=round(min(latencies), 3) if latencies else None,
            server_cpu_s=round(server_cpu, 3),
            client_cpu_s=round(reply["cpu_s"] - self.client_cpu, 3),
        )
        self.client_cpu = reply["cpu_s"]
        window.broadcast = broadcast
        self.results.broadcasts.append(broadcast)
        if kind == COMPOUND:
            self.compound.append((broadcast, answered_at))
        latency = broadcast.latency_ms
        self.console.print(
            f"  {kind:<8} broadcast {number}/{total} (connector {status:<9}) reached {broadcast.reached}/{n}"
            + (
                f": p50 {latency.p50:7.1f}  p99 {latency.p99:7.1f}  last {latency.max:7.1f} ms after "
                f"the 200; server CPU {server_cpu:.2f} s"
                if latency
                else ""
            ),
            highlight=False,
        )
        self._check_reply(reply, window.what)

    async def _join(self, client: _Client) -> None:
        """A driver joins: every stream must get that board, once (it is not timed as a broadcast)."""
        n = self.settings.subscribers
        window = _Window("the driver's joining", 1, 1)
        await self._turn()
        await self._arm(client, JOIN_MARKER, window)
        response = await self.http.post(
            f"/v1/locations/{LOCATION_ID}/tickets",
            json={"connector_types": [CONNECTOR_TYPE]},
            headers=self.driver,
        )
        answered = time.monotonic()
        self._expect(response, 201, "POST tickets (join)")
        if response.json()["status"] != "waiting":
            raise SubscribersFailure(f"the driver joined as {response.json()['status']!r}, expected waiting")
        reply = await self._collect(client)
        self.client_cpu = reply["cpu_s"]
        arrivals = [at for at in reply["arrivals"] if at is not None]
        self.console.print(
            f"  a driver joins: its board reached {len(arrivals)}/{n}"
            + (f", the last {(max(arrivals) - answered) * 1000:.1f} ms after the 201" if arrivals else ""),
            highlight=False,
        )
        self._check_reply(reply, window.what)
        await self._check_board(waiting=1, offerable=0)

    async def _turn(self) -> None:
        """Wait until the next step may start: ``spacing_s`` after the previous one started, and
        ``QUIET_S`` after its last arrival (so that what it caused is counted in its own window)."""
        loop = asyncio.get_running_loop()
        await asyncio.sleep(max(0.0, self.next_at - loop.time(), self.quiet_until - loop.time()))
        self.next_at = loop.time() + self.settings.spacing_s

    async def _arm(self, client: _Client, marker: str, window: _Window) -> None:
        reply = await client.command({"cmd": "arm", "marker": marker}, 10)
        if reply["type"] != "armed":
            raise SubscribersFailure(f"the client did not arm: {reply}")
        self._close_window(reply["window"])
        self.window = window

    async def _collect(self, client: _Client) -> dict[str, Any]:
        reply = await client.command(
            {"cmd": "collect", "timeout_s": COLLECT_TIMEOUT_S}, COLLECT_TIMEOUT_S + 30
        )
        self.quiet_until = asyncio.get_running_loop().time() + QUIET_S
        if reply["type"] != "arrivals":
            raise SubscribersFailure(f"the client did not collect: {reply}")
        return reply

    def _check_reply(self, reply: dict[str, Any], what: str) -> None:
        n = self.settings.subscribers
        missing = n - reply["arrived"]
        if missing:
            self.app.check_alive()
            raise SubscribersFailure(
                f"{what}: {missing} of {n} subscribers did not receive it within {COLLECT_TIMEOUT_S:.0f} s "
                f"({reply['closed_by_server']} streams ended by the server)\n{self.app.log_tail()}"
            )
        if reply["closed_by_server"]:
            raise SubscribersFailure(f"the server ended {reply['closed_by_server']} streams")

    def _close_window(self, counts: dict[str, int]) -> None:
        """Check what the streams got in the window that just ended against what it was for."""
        window = self.window
        if window.broadcast is not None:
            window.broadcast.messages = counts["messages"]
            window.broadcast.messages_per_stream = [counts["fewest"], counts["most"]]
        expected = f"{window.fewest}" + (f" to {window.most}" if window.most != window.fewest else "")
        problems = []
        if counts["fewest"] < window.fewest or counts["most"] > window.most:
            problems.append(
                f"from {counts['fewest']} to {counts['most']} board messages a stream "
                f"({counts['messages']} in all), expected {expected}"
            )
        if window.most and counts["last_unmarked"]:
            problems.append(
                f"on {counts['last_unmarked']} streams the last board did not show it "
                "(a stale one came after)"
            )
        if problems:
            self.app.check_alive()
            raise SubscribersFailure(f"{window.what}: {'; '.join(problems)}\n{self.app.log_tail()}")

    def _figures(self, kind: str) -> SubscribersFigures | None:
        latencies = self.latencies[kind]
        last = [b.latency_ms.max for b in self.results.broadcasts if b.kind == kind and b.latency_ms]
        if not latencies:
            return None
        return SubscribersFigures(
            kind=kind, latency_ms=latency_of(latencies), last_ms=last, worst_last_ms=max(last)
        )

    # -- checks -------------------------------------------------------------------------------------

    async def _final_checks(self) -> None:
        """The connector's log: one status event per flip. The queue's log: no offer while nobody waited,
        then an offer after each compound Available, a revocation after each compound Faulted, in order,
        and nothing else; fills each compound broadcast's committed_ms. Nothing skipped; the app running."""
        await self._wait(self._caught_up, "the dispatcher and read models did not catch up")
        statuses = await self.db.fetchval(
            "SELECT count(*) FROM events WHERE stream_id = $1 AND type = $2",
            f"chargestation-{STATION_ID}",
            STATUS_EVENT,
        )
        if statuses != 1 + self.flips:
            raise SubscribersFailure(
                f"the connector's log holds {statuses} status events, expected {1 + self.flips} "
                "(set-up and flips)"
            )
        rows = await self.db.fetch(
            "SELECT type, recorded_at FROM events WHERE stream_id = $1 AND type = ANY($2::text[])"
            " ORDER BY position",
            f"queue-{LOCATION_ID}",
            list(QUEUE_EVENTS.values()),
        )
        expected = [QUEUE_EVENTS[broadcast.connector_status] for broadcast, _ in self.compound]
        if [row[0] for row in rows] != expected:
            raise SubscribersFailure(
                f"the queue's log holds {[row[0] for row in rows]}, expected {expected} (none while nobody "
                "waited, then one per compound broadcast)"
            )
        for (broadcast, answered_at), row in zip(self.compound, rows, strict=True):
            broadcast.committed_ms = round((row[1].timestamp() - answered_at) * 1000, 3)
        skipped = await self.db.fetch("SELECT projection, position, error FROM projection_errors LIMIT 5")
        if skipped:
            raise SubscribersFailure(f"events were skipped as unreadable: {[tuple(row) for row in skipped]}")
        self.app.check_alive()

    # -- helpers ------------------------------------------------------------------------------------

    async def _webhook(self, body: bytes) -> None:
        response = await self.http.post("/webhooks/edrv", content=body, headers=JSON)
        self._expect(response, 200, "POST /webhooks/edrv")

    async def _caught_up(self) -> bool:
        return bool(await self.db.fetchval(CAUGHT_UP, RUNNERS) == len(RUNNERS))

    async def _wait(self, done: Callable[[], Awaitable[bool]], what: str) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + SETUP_TIMEOUT_S
        while not await done():
            self.app.check_alive()
            if loop.time() > deadline:
                raise SubscribersFailure(f"{what} within {SETUP_TIMEOUT_S:.0f} s\n{self.app.log_tail()}")
            await asyncio.sleep(WAIT_STEP_S)

    def _expect(self, response: httpx.Response, status: int, what: str) -> None:
        if response.status_code != status:
            raise SubscribersFailure(
                f"{what} answered {response.status_code}, expected {status}: {response.text}"
            )


def _cpu_s(pid: int) -> float:
    """CPU seconds (user + system) of a process and its children so far."""
    try:
        process = psutil.Process(pid)
        total = 0.0
        for each in (process, *process.children(recursive=True)):
            with contextlib.suppress(psutil.Error):
                times = each.cpu_times()
                total += times.user + times.system
        return total
    except psutil.Error:
        return 0.0


def _read_int(path: str) -> int | None:
    try:
        return int(Path(path).read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def _ephemeral_ports() -> int | None:
    try:
        low, high = (int(part) for part in Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split())
    except (OSError, ValueError):
        return None
    return high - low + 1


def _summarise(results: SubscribersResults) -> None:
    memory, settings = results.memory, results.settings
    n = settings.subscribers
    if memory.server_rss_open and n:
        memory.per_subscriber_kib = round((memory.server_rss_open - memory.server_rss_before) / n / 1024, 2)
    judge = not settings.smoke
    if memory.server_rss_open:
        rss_mib = round(max(memory.server_rss_open, memory.server_rss_peak) / MIB, 1)
        results.targets.append(
            Target(
                name=f"the app's RSS with {n:,} SSE subscribers open (peak)",
                limit=RSS_LIMIT_MIB,
                value=rss_mib,
                unit="MiB",
                passed=rss_mib <= RSS_LIMIT_MIB if judge else None,
            )
        )
    figures = results.figures
    if figures is not None:
        results.targets.append(
            Target(
                name=f"a single change: webhook 200 → its board on all {n:,} subscribers, worst broadcast",
                limit=BROADCAST_LIMIT_MS,
                value=figures.worst_last_ms,
                unit="ms",
                passed=figures.worst_last_ms <= BROADCAST_LIMIT_MS if judge else None,
            )
        )


def print_subscribers_report(results: SubscribersResults, console: Console) -> None:
    settings, memory, limits = results.settings, results.memory, results.limits
    postgres = results.postgres
    n = settings.subscribers
    caption = (
        f"{results.machine.cpu_count} CPUs, shared by the app, the client process and PostgreSQL; "
        f"{results.machine.platform}; PostgreSQL {postgres.version if postgres else '?'} "
        f"({postgres.source if postgres else '?'}); client: {settings.client_loop or '?'}"
    )
    if memory.server_rss_open:
        table = Table(title=f"SSE subscribers: {n:,} streams of one location's board", caption=caption)
        table.add_column("")
        table.add_column("value", justify="right")
        ramp = results.ramp
        rows = [
            ("app RSS before the streams", f"{memory.server_rss_before / MIB:.1f} MiB"),
            (f"app RSS with {n:,} open, idle", f"{memory.server_rss_open / MIB:.1f} MiB"),
            (
                "app RSS peak, broadcasts included",
                f"{max(memory.server_rss_peak, memory.server_rss_open) / MIB:.1f} MiB",
            ),
            ("  per subscriber", f"{memory.per_subscriber_kib:.1f} KiB"),
            ("  app's open descriptors", f"{memory.server_fds_open:,}"),
            ("  app RSS after the client closed them", f"{memory.server_rss_after_close / MIB:.1f} MiB"),
            ("client RSS (its own process)", f"{memory.client_rss_open / MIB:.1f} MiB"),
        ]
        if ramp is not None:
            rows += [
                ("opening them all", f"{ramp.open_s:.1f} s ({ramp.opened_per_s:,.0f}/s)"),
                (
                    "  app / client CPU while opening",
                    f"{ramp.server_cpu_s:.1f} s / {ramp.client_cpu_s:.1f} s",
                ),
            ]
        for name, value in rows:
            table.add_row(name, value, style="bold" if name.startswith("app RSS with") else None)
        console.print(table)
    titles = {
        SINGLE: (
            f"Single-change broadcasts (judged), {settings.spacing_s:g} s apart: a connector flip with "
            f"nobody waiting; ms from the webhook's 200 to the board showing it on each of the {n:,} streams"
        ),
        COMPOUND: (
            f"Compound broadcasts (shown, not judged), {settings.spacing_s:g} s apart: with a driver "
            "waiting, the connector freed → offered, faulted → offer revoked; ms from the webhook's 200 to "
            f"the board showing the offer (revocation) on each of the {n:,} streams"
        ),
    }
    for kind, figures in ((SINGLE, results.figures), (COMPOUND, results.compound_figures)):
        broadcasts = [broadcast for broadcast in results.broadcasts if broadcast.kind == kind]
        if broadcasts:
            console.print(_broadcast_table(titles[kind], caption, kind, broadcasts, figures))
    if limits is not None and limits.limited_by:
        console.print(f"[yellow]Fewer subscribers than requested: {limits.limited_by}[/]", highlight=False)
    if n and n < TARGET_SUBSCRIBERS and not settings.smoke:
        console.print(
            f"[yellow]The product targets are stated for {TARGET_SUBSCRIBERS:,} subscribers; measured with "
            f"{n:,}[/]",
            highlight=False,
        )
    for target in results.targets:
        verdict = {True: "[green]PASS[/]", False: "[red]FAIL[/]", None: "[dim]not evaluated (smoke)[/]"}
        console.print(
            f"Target: {target.name} ≤ {target.limit:g} {target.unit}: "
            f"{target.value:.1f} {target.unit} {verdict[target.passed]}"
        )
    compound = results.compound_figures
    if compound is not None:
        console.print(
            "Shown, not judged: a compound broadcast (connector change, then the offer or its revocation) "
            f"on all {n:,} subscribers, worst broadcast: {compound.worst_last_ms:.1f} ms",
            highlight=False,
        )
    if results.error:
        console.print(f"[bold red]Benchmark failed:[/] {results.error}", highlight=False)


def _broadcast_table(
    title: str, caption: str, kind: str, broadcasts: list[Broadcast], figures: SubscribersFigures | None
) -> Table:
    table = Table(title=title, caption=caption)
    columns = ["", "reached", "msgs/stream"]
    columns += ["committed"] if kind == COMPOUND else []
    columns += ["first", "p50", "p99", "last", "webhook", "CPU app/client s"]
    for name in columns:
        table.add_column(name, justify="right" if name else "left")
    for broadcast in broadcasts:
        latency = broadcast.latency_ms
        values = (latency.p50, latency.p99, latency.max) if latency else ()
        fewest, most = broadcast.messages_per_stream or (None, None)
        row = [
            f"{broadcast.number} {broadcast.connector_status}",
            f"{broadcast.reached:,}",
            "-" if fewest is None else f"{fewest}" if fewest == most else f"{fewest}-{most}",
        ]
        if kind == COMPOUND:
            row.append(f"{broadcast.committed_ms:.1f}" if broadcast.committed_ms is not None else "-")
        row += [
            f"{broadcast.first_ms:.1f}" if broadcast.first_ms is not None else "-",
            *([f"{value:.1f}" for value in values] or ["-"] * 3),
            f"{broadcast.webhook_ms:.1f}",
            f"{broadcast.server_cpu_s:.2f} / {broadcast.client_cpu_s:.2f}",
        ]
        table.add_row(*row)
    if figures is not None:
        pooled = figures.latency_ms
        values = (pooled.p50, pooled.p99, pooled.max)
        blank = [""] * (len(columns) - 6)  # up to p50; then p99, last, and webhook and CPU left empty
        table.add_row("all", *blank, *(f"{value:.1f}" for value in values), "", "", style="bold")
    return table


def settings_for(
    *, smoke: bool, subscribers: int, single_broadcasts: int, compound_broadcasts: int, spacing_s: float
) -> SubscribersSettings:
    if single_broadcasts % 2 or single_broadcasts < 2:
        # The connector must end Faulted, so that the driver who joins next is not offered it at once.
        raise ValueError(f"single_broadcasts must be even and at least 2, not {single_broadcasts}")
    return SubscribersSettings(
        smoke=smoke,
        subscribers_requested=subscribers,
        single_broadcasts=single_broadcasts,
        compound_broadcasts=compound_broadcasts,
        spacing_s=spacing_s,
    )
