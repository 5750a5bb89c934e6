"""The rebuild benchmark: replaying the whole log into the sessions projection, against a raw scan.

The log is filled with N ``session.updated`` events by set-based SQL (not measured), vacuumed, analysed
and read once so both measured paths start from the same warm table. Then, interleaved:

- **raw**: page through the whole log in position order on a plain asyncpg connection and decode every
  payload with ``msgspec.json.decode``: the floor for reading and parsing the log from Python;
- **rebuild**: ``rebuild(EventStore(create_engine(url)), PROJECTIONS["sessions"])``, exactly what
  ``chargeline rebuild sessions`` runs: fold in memory, bulk save, catch up, swap.

The headline is rebuild events/s ÷ raw events/s (medians); the target is at least 0.5.
After every rebuild the sessions table and the checkpoint are checked against the log.
"""

from __future__ import annotations

import asyncio
import json
import statistics
import time
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import asyncpg
import msgspec
from rich.console import Console
from rich.table import Table

from bench import ROOT
from bench.database import PostgresInfo, postgres_info, scratch_database, server_url
from bench.results import Machine, Target, machine
from service.db.engine import create_engine
from service.eventlog.store import EventStore
from service.projections.catalog import PROJECTIONS
from service.projections.rebuild import rebuild

if TYPE_CHECKING:
    Connection = asyncpg.Connection[asyncpg.Record]

FIXTURE = ROOT / "tests" / "fixtures" / "edrv" / "session.updated.loose-types.json"
EVENTS_PER_SESSION = 100  # ~N/100 sessions, each a stream of versions 1..100
FILL_CHUNK = 100_000  # rows per INSERT statement (each its own transaction)
PAGE = 10_000  # the raw scan's page, as rebuild.PAGE
RATIO_TARGET = 0.5

_RAW_PAGE = "SELECT position, data::text FROM events WHERE position > $1 ORDER BY position LIMIT $2"

# Event i (1..N) belongs to session (i - 1) % S as its version (i - 1) / S + 1: the sessions' streams are
# interleaved in the log as live deliveries would be. Each version is 10 s later than the one before and
# reports more energy, a higher meter reading and state of charge, and a new cost, so every event
# changes the fold's view; a session's last version ends it. Numbers stay partly strings (loose types).
_FILL = """
INSERT INTO events (stream_id, version, type, data, metadata, occurred_at)
SELECT 'session-' || g.id, g.v, 'session.updated',
       $1::jsonb || jsonb_build_object(
           '_id', g.id,
           'status', CASE WHEN g.last THEN 'Ended' ELSE 'started' END,
           'updatedAt', to_char(g.t AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'),
           'metrics', ($1::jsonb -> 'metrics') || jsonb_build_object(
               'energyConsumed', g.v * 37,
               'energyPeriod', (g.v * 37) % 611 + 0.5,
               'chargingStop', CASE WHEN g.last
                   THEN to_char(g.t AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"') END),
           'cost', ($1::jsonb -> 'cost') || jsonb_build_object('amount', round(g.v * 37 * 0.00035, 2)),
           'energy_report', ($1::jsonb -> 'energy_report') || jsonb_build_object(
               'timestamp', to_char(g.t AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"'),
               'power', jsonb_build_object('value', (7 + g.v % 5)::text || '.' || (g.v % 10)::text,
                                           'unit', 'kW'),
               'energy_meter', jsonb_build_object('value', 120450 + g.v * 37, 'unit', 'Wh'),
               'state_of_charge', jsonb_build_object('value', least(20 + g.v / 2, 100)::text,
                                                     'unit', 'Percent'))),
       jsonb_build_object(
           'source', 'edrv', 'external_id', '65b0' || lpad(to_hex(g.i), 20, '0'), 'object', 'session',
           'received_at', to_char((g.t + interval '300 ms') AT TIME ZONE 'UTC',
                                  'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'),
           'signature_verified', false, 'schema_version', 1),
       g.t + interval '300 ms'
FROM (
    SELECT i, s.v, '6601bb' || lpad(to_hex(s.s), 18, '0') AS id,
           s.v = ($3::bigint - 1 - s.s) / $4::bigint + 1 AS last,
           timestamptz '2024-05-02 09:15:30+00' + s.s * interval '1 minute' + s.v * interval '10 s' AS t
    FROM generate_series($2::bigint, $5::bigint) AS i,
         LATERAL (SELECT (i - 1) % $4::bigint AS s, ((i - 1) / $4::bigint + 1)::int AS v) AS s
) AS g
ORDER BY g.i
"""


class RebuildSettings(msgspec.Struct, kw_only=True):
    smoke: bool
    events: int
    sessions: int
    rounds: int
    page: int = PAGE


class Setup(msgspec.Struct, kw_only=True):
    """How the log was prepared (not measured against anything)."""

    fill_s: float
    events_bytes: int  # pg_total_relation_size('events'): table, TOAST and indexes
    head: int


class RebuildRun(msgspec.Struct, frozen=True, kw_only=True):
    kind: str  # "raw" or "rebuild"
    round: int
    events: int
    seconds: float
    events_per_s: float


class RebuildFigures(msgspec.Struct, frozen=True, kw_only=True):
    raw_events_per_s: float  # medians over the rounds
    rebuild_events_per_s: float
    ratio: float  # rebuild / raw
    raw_by_round: list[float]
    rebuild_by_round: list[float]


class RebuildResults(msgspec.Struct, kw_only=True):
    benchmark: str = "rebuild"
    started_at: datetime
    finished_at: datetime | None = None
    ok: bool = False
    error: str | None = None
    machine: Machine
    settings: RebuildSettings
    postgres: PostgresInfo | None = None
    setup: Setup | None = None
    runs: list[RebuildRun] = msgspec.field(default_factory=list)
    figures: RebuildFigures | None = None
    targets: list[Target] = msgspec.field(default_factory=list)


class RebuildFailure(RuntimeError):
    """The rebuilt projection does not match the log: the figures cannot be trusted."""


def settings_for(*, smoke: bool, events: int, rounds: int) -> RebuildSettings:
    return RebuildSettings(
        smoke=smoke, events=events, sessions=max(1, events // EVENTS_PER_SESSION), rounds=rounds
    )


async def run_rebuild(settings: RebuildSettings, console: Console) -> RebuildResults:
    """Measure; a failure is recorded in the results (with the runs done so far), not raised."""
    results = RebuildResults(started_at=datetime.now(UTC), machine=machine(), settings=settings)
    try:
        await _measure(settings, results, console)
        results.ok = True
    except RebuildFailure as exc:
        results.error = str(exc)
    results.finished_at = datetime.now(UTC)
    return results


async def _measure(settings: RebuildSettings, results: RebuildResults, console: Console) -> None:
    server, source = await asyncio.to_thread(server_url)
    async with scratch_database(server, {}) as url:
        db: Connection = await asyncpg.connect(url)
        try:
            results.postgres = await postgres_info(db, source, ["work_mem", "effective_cache_size"])
            console.print(
                f"PostgreSQL {results.postgres.version} ({source}); filling the log with "
                f"{settings.events:,} events over {settings.sessions:,} sessions"
            )
            results.setup = await _fill(db, settings, console)
            await _warm_up(db)
            head = results.setup.head
            for number in range(1, settings.rounds + 1):
                count, seconds = await _raw_scan(url)
                if count != settings.events:
                    raise RebuildFailure(f"the raw scan read {count} events, expected {settings.events}")
                _record(results, console, "raw", number, seconds)
                position, seconds = await _rebuild(url)
                _record(results, console, "rebuild", number, seconds)
                await _check(db, settings, head, position)
        finally:
            await db.close()
    _summarise(results)


async def _fill(db: Connection, settings: RebuildSettings, console: Console) -> Setup:
    data = json.loads(FIXTURE.read_text())["data"]
    template = json.dumps(data, separators=(",", ":"))
    started = time.perf_counter()
    for first in range(1, settings.events + 1, FILL_CHUNK):
        last = min(first + FILL_CHUNK - 1, settings.events)
        await db.execute(_FILL, template, first, settings.events, settings.sessions, last, timeout=None)
        if not settings.smoke:
            console.print(f"  filled {last:,} / {settings.events:,}", highlight=False)
    # Both measured paths then see the same table: hint bits set, visibility map and statistics current.
    await db.execute("VACUUM (ANALYZE) events", timeout=None)
    fill_s = time.perf_counter() - started
    size = int(await db.fetchval("SELECT pg_total_relation_size('events')"))
    head = int(await db.fetchval("SELECT max(position) FROM events"))
    console.print(f"  log ready in {fill_s:.1f} s: {size / 2**20:,.0f} MiB with indexes", highlight=False)
    return Setup(fill_s=round(fill_s, 2), events_bytes=size, head=head)


async def _warm_up(db: Connection) -> None:
    """Untimed: the heap in position order (what both paths read) and the (type, position) index the
    rebuild pages through, so neither measured path pays for cold pages the other did not."""
    await _scan(db)
    types = list(PROJECTIONS["sessions"].event_types or ())
    await db.fetchval("SELECT count(*) FROM events WHERE type = ANY($1::text[])", types, timeout=None)


async def _scan(db: Connection) -> int:
    """Every event in position order, page by page, each payload decoded; returns the count."""
    decode = msgspec.json.decode
    position, count = 0, 0
    while True:
        rows = await db.fetch(_RAW_PAGE, position, PAGE)
        for row in rows:
            decode(row[1])
        count += len(rows)
        if len(rows) < PAGE:
            return count
        position = rows[-1][0]


async def _raw_scan(url: str) -> tuple[int, float]:
    started = time.perf_counter()
    db: Connection = await asyncpg.connect(url)
    try:
        count = await _scan(db)
    finally:
        await db.close()
    return count, time.perf_counter() - started


async def _rebuild(url: str) -> tuple[int, float]:
    engine = create_engine(url)
    try:
        started = time.perf_counter()
        position = await rebuild(EventStore(engine), PROJECTIONS["sessions"])
        elapsed = time.perf_counter() - started
    finally:
        await engine.dispose()
    return position, elapsed


def _record(results: RebuildResults, console: Console, kind: str, number: int, seconds: float) -> None:
    events = results.settings.events  # every event in the log is a session event: both paths read all
    run = RebuildRun(
        kind=kind, round=number, events=events, seconds=round(seconds, 3), events_per_s=events / seconds
    )
    results.runs.append(run)
    console.print(
        f"  {kind:<8} #{number}  {run.seconds:8.2f} s  {run.events_per_s:10,.0f} events/s", highlight=False
    )


async def _check(db: Connection, settings: RebuildSettings, head: int, swapped_at: int) -> None:
    """The rebuilt table against the log: one row per session, every one ended, checkpoint at the head."""
    problems = []
    if swapped_at != head:
        problems.append(f"rebuild() swapped the tables in at position {swapped_at}, the log's head is {head}")
    sessions = int(await db.fetchval("SELECT count(*) FROM sessions"))
    if sessions != settings.sessions:
        problems.append(f"sessions has {sessions} rows for {settings.sessions} sessions in the log")
    ended = int(await db.fetchval("SELECT count(*) FROM sessions WHERE status = 'ended'"))
    if ended != settings.sessions:
        problems.append(f"{ended} of {settings.sessions} sessions ended (each one's last event ends it)")
    checkpoint = await db.fetchval("SELECT position FROM projection_checkpoints WHERE name = 'sessions'")
    if checkpoint != head:
        problems.append(f"the sessions checkpoint is {checkpoint}, the log's head {head}")
    if problems:
        raise RebuildFailure("; ".join(problems))


def _summarise(results: RebuildResults) -> None:
    raw = [run.events_per_s for run in results.runs if run.kind == "raw"]
    rebuilt = [run.events_per_s for run in results.runs if run.kind == "rebuild"]
    figures = RebuildFigures(
        raw_events_per_s=statistics.median(raw),
        rebuild_events_per_s=statistics.median(rebuilt),
        ratio=statistics.median(rebuilt) / statistics.median(raw),
        raw_by_round=[round(value) for value in raw],
        rebuild_by_round=[round(value) for value in rebuilt],
    )
    results.figures = figures
    results.targets.append(
        Target(
            name="rebuild throughput / raw scan-and-decode throughput",
            limit=RATIO_TARGET,
            value=figures.ratio,
            unit="x",
            passed=None if results.settings.smoke else figures.ratio >= RATIO_TARGET,
        )
    )


def print_rebuild_report(results: RebuildResults, console: Console) -> None:
    figures, settings = results.figures, results.settings
    if figures is not None:
        postgres = results.postgres
        table = Table(
            title=(
                f"Rebuild of the sessions projection, {settings.events:,} events over "
                f"{settings.sessions:,} sessions, median of {settings.rounds}"
            ),
            caption=(
                f"{results.machine.cpu_count} CPUs, {results.machine.platform}; "
                f"PostgreSQL {postgres.version if postgres else '?'} ({postgres.source if postgres else '?'})"
            ),
        )
        table.add_column("")
        table.add_column("events/s", justify="right")
        table.add_column("events/s by round", justify="right")
        for name, value, by_round in (
            ("raw scan + decode", figures.raw_events_per_s, figures.raw_by_round),
            ("rebuild (sessions)", figures.rebuild_events_per_s, figures.rebuild_by_round),
        ):
            table.add_row(name, f"{value:,.0f}", " ".join(f"{v:,}" for v in by_round))
        table.add_row("rebuild / raw", f"{figures.ratio:.2f}x", "", style="bold")
        console.print(table)
    for target in results.targets:
        verdict = {True: "[green]PASS[/]", False: "[red]FAIL[/]", None: "[dim]not evaluated (smoke)[/]"}
        console.print(
            f"Target: {target.name} ≥ {target.limit:g}{target.unit}: "
            f"{target.value:.2f}{target.unit} {verdict[target.passed]}"
        )
    if results.error:
        console.print(f"[bold red]Benchmark failed:[/] {results.error}", highlight=False)
