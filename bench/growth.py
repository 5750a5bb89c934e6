"""The growth benchmark: does Chargeline stay as fast when its log and its queues are big?

1. **Ingest with a big log**: two scratch databases on the same server, one empty and one holding N
   events (10 M; ``bench/growth_fill.py``), each with its own Chargeline process started identically.
   ``POST /webhooks/edrv`` is measured on both exactly as ``bench ingest`` measures it (wrk, closed loop,
   the same bodies and checks), rounds interleaved (empty, big, empty, big, ...). The headline is
   big-log req/s ÷ empty-log req/s (medians); the target is at least 0.9.
2. **Queue reads with many live tickets**: on the big-log app, the driver's ``GET /v1/tickets/{id}`` and
   the public ``GET /v1/locations/{id}/queue`` at a location with 1,000 live tickets against one with 10
   (``bench/growth_reads.py``); ratios of latency and throughput, no target.
"""

from __future__ import annotations

import asyncio
import secrets
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import asyncpg
import httpx
import msgspec
from rich.console import Console

from bench.chargeline_app import ADMIN_TOKEN_ENV, DRIVER_RATE_LIMIT_ENV, JWT_SECRET_ENV
from bench.database import PostgresInfo, postgres_info, scratch_database, server_url
from bench.growth_fill import Fill, fill_log, fill_settings
from bench.growth_reads import (
    ENDPOINTS,
    ReadFailure,
    ReadFigures,
    ReadRatio,
    ReadRun,
    measure_read,
    set_up_sites,
    summarise_reads,
    write_requests,
)
from bench.ingest import App, BenchFailure, Runner
from bench.load import LoadError, Wrk, wrk_installed
from bench.payload import write_template
from bench.results import Figures, Machine, Ratios, Run, RunSettings, Target, machine, median_figures
from bench.servers import AppServer, ServerFailed

if TYPE_CHECKING:
    Connection = asyncpg.Connection[asyncpg.Record]

RATIO_TARGET = 0.9
# The drivers' per-token budget for the bench app: the reads go round a few tokens thousands of times a
# minute. The limiter still runs on every request, at both locations alike.
DRIVER_RATE_LIMIT = 1_000_000_000


class GrowthSettings(msgspec.Struct, kw_only=True):
    smoke: bool
    events: int  # in the big log
    ingest: RunSettings  # as bench ingest: duration, warm-up, rounds, connections, load generator
    tickets: int  # live tickets in the big queue ...
    few_tickets: int  # ... and in the small one
    read_duration_s: int
    read_rounds: int
    read_connections: int


class IngestGrowth(msgspec.Struct, frozen=True, kw_only=True):
    empty: Figures  # medians of the closed-loop rounds on the empty log
    big: Figures  # ... and on the big one
    ratios: Ratios  # big ÷ empty: throughput below 1 is slower, latency above 1 is


class GrowthResults(msgspec.Struct, kw_only=True):
    benchmark: str = "growth"
    started_at: datetime
    finished_at: datetime | None = None
    ok: bool = False
    error: str | None = None
    machine: Machine
    settings: GrowthSettings
    postgres: PostgresInfo | None = None
    fill: Fill | None = None
    runs: list[Run] = msgspec.field(default_factory=list)  # ingest, app "empty-log" or "big-log"
    ingest: IngestGrowth | None = None
    read_runs: list[ReadRun] = msgspec.field(default_factory=list)
    reads: list[ReadFigures] = msgspec.field(default_factory=list)
    read_ratios: list[ReadRatio] = msgspec.field(default_factory=list)
    targets: list[Target] = msgspec.field(default_factory=list)


async def run_growth(settings: GrowthSettings, console: Console) -> GrowthResults:
    """Measure; a failure is recorded in the results (with the runs done so far), not raised."""
    results = GrowthResults(started_at=datetime.now(UTC), machine=machine(), settings=settings)
    try:
        await _measure(settings, results, console)
        results.ok = True
    except (BenchFailure, ServerFailed, LoadError, ReadFailure, httpx.HTTPError) as exc:
        results.error = f"{type(exc).__name__}: {exc}" if isinstance(exc, httpx.HTTPError) else str(exc)
    results.finished_at = datetime.now(UTC)
    return results


async def _measure(settings: GrowthSettings, results: GrowthResults, console: Console) -> None:
    if not wrk_installed():  # both parts need it: the Python generator is far too weak to compare
        raise BenchFailure("wrk is not installed: make wrk (as root), or apt-get install wrk")
    with tempfile.TemporaryDirectory(prefix="chargeline-bench-") as tmp:
        work = Path(tmp)
        generator = Wrk(write_template(work / "body.json"))
        settings.ingest.load_generator = generator.name
        server, source = await asyncio.to_thread(server_url)
        # Same server, same settings: only the size of the log differs.
        async with scratch_database(server, {}) as empty_url, scratch_database(server, {}) as big_url:
            empty_db: Connection = await asyncpg.connect(empty_url)
            big_db: Connection = await asyncpg.connect(big_url)
            try:
                results.postgres = await postgres_info(big_db, source)
                console.print(
                    f"PostgreSQL {results.postgres.version} ({source}); filling one log with "
                    f"{settings.events:,} events, the other stays empty",
                    highlight=False,
                )
                fill = fill_settings(settings.events)
                results.fill = await fill_log(big_url, fill, console, verbose=not settings.smoke)
                admin, secret = secrets.token_urlsafe(16), secrets.token_urlsafe(32)
                env = {
                    ADMIN_TOKEN_ENV: admin,
                    JWT_SECRET_ENV: secret,
                    DRIVER_RATE_LIMIT_ENV: str(DRIVER_RATE_LIMIT),
                }
                empty, big = (
                    App(
                        AppServer(
                            name, "bench.chargeline_app:create_app", "/health/ready", url, work, env=env
                        ),
                        "events",
                    )
                    for name, url in (("empty-log", empty_url), ("big-log", big_url))
                )
                async with empty.server, big.server:
                    runners = {
                        empty: Runner(generator, empty_db, settings.ingest, results, console),
                        big: Runner(generator, big_db, settings.ingest, results, console),
                    }
                    await _ingest_rounds(settings.ingest, runners)
                    await _reads(settings, results, big.server, big_db, admin, secret, work, console)
            finally:
                await empty_db.close()
                await big_db.close()
    _summarise(results)


async def _ingest_rounds(settings: RunSettings, runners: dict[App, Runner]) -> None:
    if settings.warmup_s:  # fills pools and caches; recorded, but not part of any median
        for app, runner in runners.items():
            await runner.measure(app, "warmup", 0, duration_s=settings.warmup_s)
    for number in range(1, settings.rounds + 1):
        for app, runner in runners.items():
            await runner.measure(app, "max", number, duration_s=settings.duration_s)


async def _reads(
    settings: GrowthSettings,
    results: GrowthResults,
    app: AppServer,
    db: Connection,
    admin: str,
    secret: str,
    work: Path,
    console: Console,
) -> None:
    sizes = [settings.few_tickets, settings.tickets]
    console.print(f"Queues of {' and '.join(f'{size:,}' for size in sizes)} live tickets: joining")
    async with httpx.AsyncClient(base_url=app.base_url, timeout=30) as http:
        sites = await set_up_sites(http, db, admin, secret, sizes)
    requests = [write_requests(work, site) for site in sites]
    for number in range(1, settings.read_rounds + 1):
        for endpoint in ENDPOINTS:
            for size, paths in zip(sizes, requests, strict=True):
                load = await measure_read(
                    app.base_url,
                    paths[endpoint],
                    connections=settings.read_connections,
                    duration_s=settings.read_duration_s,
                    what=f"GET {endpoint} at {size} tickets, round {number}",
                )
                app.check_alive()
                results.read_runs.append(ReadRun(endpoint=endpoint, tickets=size, round=number, load=load))
                console.print(
                    f"  GET {endpoint:<6} {size:>6,} tickets #{number} {load.rps:7.0f} req/s  "
                    f"p50 {load.latency_ms.p50:6.2f}  p99 {load.latency_ms.p99:6.2f} ms",
                    highlight=False,
                )


def _summarise(results: GrowthResults) -> None:
    def medians(app: str) -> Figures:
        return median_figures([run.load for run in results.runs if run.app == app and run.kind == "max"])

    empty, big = medians("empty-log"), medians("big-log")
    ratios = Ratios(
        throughput=big.rps / empty.rps,
        p50=big.latency_ms.p50 / empty.latency_ms.p50,
        p90=big.latency_ms.p90 / empty.latency_ms.p90,
        p99=big.latency_ms.p99 / empty.latency_ms.p99,
    )
    results.ingest = IngestGrowth(empty=empty, big=big, ratios=ratios)
    results.reads, results.read_ratios = summarise_reads(results.read_runs, results.settings.few_tickets)
    results.targets.append(
        Target(
            name=f"ingest req/s with {results.settings.events:,} events in the log / on an empty log",
            limit=RATIO_TARGET,
            value=ratios.throughput,
            unit="x",
            passed=None if results.settings.smoke else ratios.throughput >= RATIO_TARGET,
        )
    )
