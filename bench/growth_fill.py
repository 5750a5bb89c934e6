"""A big event log for the growth benchmark, written by set-based SQL as the intake would have written it.

Every append through the intake touches ``events`` (its primary key, the ``(stream_id, version)`` key the
append function reads each stream's version from, and the ``(type, position)`` index the projections read
through) and ``inbox`` (the delivery key every webhook is looked up by, and inserted into). So both are
filled: one inbox row per event, as for a webhook. The events are a realistic mix, 20 positions at a time:

- 13 of 20: sessions, 100 versions each (``session.started``, then ``session.updated``, then
  ``session.ended``), interleaved in the log as live sessions are;
- 6 of 20: stations' ``chargestation.connector_status.updated`` (every 50th an ``chargestation.online``),
  N / 5,000 stations;
- 1 of 20: ``location.updated``, N / 20,000 locations.

Each ``data`` is its fixture's payload (0.5 to 1.4 kB) with the resource's ``_id`` and a new ``updatedAt``;
``metadata`` is the intake's. Then ``VACUUM (ANALYZE)``, and every projection, the dispatcher and the
outbox get a checkpoint at the head: a service running on a big log has caught up with it, and the figures
must be about appending to a big log, not about folding 10 M events at start-up.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from typing import TYPE_CHECKING

import asyncpg
import msgspec
from rich.console import Console

from bench import ROOT
from service.dispatch.dispatcher import Dispatcher
from service.outbound.outbox import Outbox
from service.projections.catalog import PROJECTIONS

if TYPE_CHECKING:
    Connection = asyncpg.Connection[asyncpg.Record]

FIXTURES = ROOT / "tests" / "fixtures" / "edrv"
TEMPLATES = (  # in the order of _FILL's parameters $6..$11
    "session.started.json",
    "session.updated.loose-types.json",
    "session.ended.json",
    "chargestation.connector_status.updated.available.json",
    "chargestation.online.json",
    "location.updated.json",
)
FILL_CHUNK = 100_000  # positions per statement (each its own transaction), as bench/rebuild.py
FILL_WORKERS = 2  # connections filling at once: generating the rows is CPU-bound in PostgreSQL
EVENTS_PER_SESSION = 100
EVENTS_PER_STATION = 1_500  # 6/20 of the log over N / 5,000 stations
EVENTS_PER_LOCATION = 1_000  # 1/20 of the log over N / 20,000 locations
RUNNERS = [*PROJECTIONS, Dispatcher.name, Outbox.name]  # every checkpointed reader of the log

# Position i (1..N) has slot (i - 1) % 20 in its cycle of 20; j counts the events of its kind before it,
# so each kind's resources take turns (resource j % n, version j / n + 1) as in bench/rebuild.py.
# The inbox rows come from the same statement (no second pass over the new rows).
_FILL = """
WITH g AS (
    SELECT i, timestamptz '2024-05-02 00:00:00+00' + i * interval '20 ms' AS t,
           CASE WHEN s < 13 THEN 's' WHEN s < 19 THEN 'c' ELSE 'l' END AS kind,
           CASE WHEN s < 13 THEN c * 13 + s WHEN s < 19 THEN c * 6 + s - 13 ELSE c END AS j
    FROM generate_series($1::bigint, $2::bigint) AS i,
         LATERAL (SELECT (i - 1) % 20 AS s, (i - 1) / 20 AS c) AS x
), r AS (
    SELECT i, t, kind, j % n AS resource, (j / n + 1)::int AS v
    FROM g, LATERAL (SELECT CASE g.kind WHEN 's' THEN $3::bigint WHEN 'c' THEN $4::bigint
                                        ELSE $5::bigint END AS n) AS k
    WHERE j % n % $13::int = $14::int
), e AS (
    SELECT i, t, v,
           CASE kind WHEN 's' THEN 'session-' WHEN 'c' THEN 'chargestation-' ELSE 'location-' END AS prefix,
           CASE kind WHEN 's' THEN 'session' WHEN 'c' THEN 'chargestation' ELSE 'location' END AS object,
           CASE kind WHEN 's' THEN '65f0aa' WHEN 'c' THEN '65f0cc' ELSE '65f0ee' END
               || lpad(to_hex(resource), 18, '0') AS id,
           CASE kind
               WHEN 's' THEN CASE WHEN v = 1 THEN 'session.started'
                                  WHEN v % $12::int = 0 THEN 'session.ended' ELSE 'session.updated' END
               WHEN 'c' THEN CASE WHEN v % 50 = 0 THEN 'chargestation.online'
                                  ELSE 'chargestation.connector_status.updated' END
               ELSE 'location.updated' END AS type
    FROM r
), written AS (
    INSERT INTO events (stream_id, version, type, data, metadata, occurred_at, recorded_at)
    SELECT e.prefix || e.id, e.v, e.type,
           CASE e.type WHEN 'session.started' THEN $6::jsonb WHEN 'session.updated' THEN $7::jsonb
                       WHEN 'session.ended' THEN $8::jsonb
                       WHEN 'chargestation.connector_status.updated' THEN $9::jsonb
                       WHEN 'chargestation.online' THEN $10::jsonb ELSE $11::jsonb END
               || jsonb_build_object('_id', e.id, 'updatedAt', e.t),
           jsonb_build_object(
               'source', 'edrv', 'external_id', '65b0' || lpad(to_hex(e.i), 20, '0'), 'object', e.object,
               'received_at', e.t + interval '300 ms', 'signature_verified', false, 'schema_version', 1),
           e.t, e.t + interval '300 ms'
    FROM e
    ORDER BY e.i
    RETURNING position, metadata ->> 'external_id' AS external_id, recorded_at
)
INSERT INTO inbox (source, external_id, payload_sha256, position, received_at)
SELECT 'edrv', external_id, sha256(convert_to(external_id, 'UTF8')), position, recorded_at FROM written
"""


class FillSettings(msgspec.Struct, frozen=True, kw_only=True):
    events: int
    sessions: int
    stations: int
    locations: int


class Fill(msgspec.Struct, frozen=True, kw_only=True):
    """How the big log was made (not measured against anything)."""

    settings: FillSettings
    fill_s: float  # the INSERTs
    vacuum_s: float  # VACUUM (ANALYZE) of events and inbox, then a CHECKPOINT
    events_bytes: int  # pg_total_relation_size: table, TOAST and indexes
    inbox_bytes: int
    head: int
    types: dict[str, int]  # events by type


def fill_settings(events: int) -> FillSettings:
    return FillSettings(
        events=events,
        sessions=max(1, events * 13 // 20 // EVENTS_PER_SESSION),
        stations=max(1, events * 6 // 20 // EVENTS_PER_STATION),
        locations=max(1, events // 20 // EVENTS_PER_LOCATION),
    )


async def fill_log(url: str, settings: FillSettings, console: Console, *, verbose: bool) -> Fill:
    db: Connection = await asyncpg.connect(url)
    try:
        return await _fill(url, db, settings, console, verbose=verbose)
    finally:
        await db.close()


async def _fill(url: str, db: Connection, settings: FillSettings, console: Console, *, verbose: bool) -> Fill:
    started = time.perf_counter()
    done = [0] * FILL_WORKERS

    async def worker(index: int) -> None:
        # Each worker writes its own share of every kind's resources (resource % workers), chunk after
        # chunk in position order, so within a stream versions still grow with positions.
        templates = [_template(name) for name in TEMPLATES]
        connection: Connection = await asyncpg.connect(url)
        try:
            for first in range(1, settings.events + 1, FILL_CHUNK):
                last = min(first + FILL_CHUNK - 1, settings.events)
                await connection.execute(
                    _FILL, first, last, settings.sessions, settings.stations, settings.locations,
                    *templates, EVENTS_PER_SESSION, FILL_WORKERS, index, timeout=None,
                )  # fmt: skip
                done[index] = last
                if verbose and index == 0:
                    rate = sum(done) / FILL_WORKERS / (time.perf_counter() - started)
                    console.print(
                        f"  filled ~{sum(done) // FILL_WORKERS:,} / {settings.events:,} "
                        f"({rate:,.0f} events/s)",
                        highlight=False,
                    )
        finally:
            await connection.close()

    await asyncio.gather(*(worker(index) for index in range(FILL_WORKERS)))
    filled = time.perf_counter()
    # Hint bits set, visibility map and statistics current: the planner sees the log as it is.
    await db.execute("VACUUM (ANALYZE) events, inbox", timeout=None)
    # Written out now, so the measured runs do not share the disk with the fill's dirty pages.
    with contextlib.suppress(asyncpg.InsufficientPrivilegeError):
        await db.execute("CHECKPOINT", timeout=None)
    vacuumed = time.perf_counter()
    head = int(await db.fetchval("SELECT coalesce(max(position), 0) FROM events"))
    await db.execute(
        "INSERT INTO projection_checkpoints (name, position) SELECT unnest($1::text[]), $2", RUNNERS, head
    )
    rows = await db.fetch("SELECT type, count(*) FROM events GROUP BY type ORDER BY type", timeout=None)
    fill = Fill(
        settings=settings,
        fill_s=round(filled - started, 2),
        vacuum_s=round(vacuumed - filled, 2),
        events_bytes=int(await db.fetchval("SELECT pg_total_relation_size('events')")),
        inbox_bytes=int(await db.fetchval("SELECT pg_total_relation_size('inbox')")),
        head=head,
        types={str(row[0]): int(row[1]) for row in rows},
    )
    console.print(
        f"  log ready: {fill.fill_s:.0f} s to fill, {fill.vacuum_s:.0f} s to vacuum; events "
        f"{fill.events_bytes / 2**30:,.2f} GiB, inbox {fill.inbox_bytes / 2**30:,.2f} GiB with indexes",
        highlight=False,
    )
    return fill


def _template(name: str) -> str:
    data = json.loads((FIXTURES / name).read_text())["data"]
    return json.dumps(data, separators=(",", ":"))
