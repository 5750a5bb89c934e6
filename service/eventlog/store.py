"""The event store: append with optimistic concurrency and idempotent intake; read by stream or in order.

Invariants (after the ``eventsourcing`` library):
- ``version`` counts 1, 2, ... per stream; unique (stream_id, version) is the backstop.
- ``position`` is global commit order. Every append transaction takes one transaction-scoped advisory
  lock before drawing positions, and PostgreSQL makes a commit visible before it releases the lock, so
  a reader that has seen position p can never later see a lower position appear. ``read_all(after=p)``
  is therefore a safe checkpoint read; gaps only come from rolled-back appends and never fill.
- Appends go through a group committer: the lock is taken once per batch, not once per event.
- One ``pg_notify`` per append transaction carries the new highest position: a doorbell for
  listeners, never the data itself.

The hot path talks to asyncpg directly (through SQLAlchemy's pool) to pass whole batches as arrays.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING

import asyncpg
import msgspec
from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.ext.asyncio import AsyncEngine

from service.eventlog.committer import GroupCommitter
from service.eventlog.model import (
    ANY,
    Appended,
    AppendRequest,
    AppendResult,
    ConcurrencyError,
    ConflictingRedelivery,
    Duplicate,
    Expected,
    InboxKey,
    NewEvent,
    RecordedEvent,
    StoreUnavailable,
    UnstorableEvent,
    expected_matches,
)

if TYPE_CHECKING:
    Connection = asyncpg.Connection[asyncpg.Record]

log = logging.getLogger(__name__)

APPEND_LOCK_KEY = 0x63686C6E_6C6F6701  # "chln" "log" 1: the one lock every append transaction takes
NOTIFY_CHANNEL = "chargeline_events"

# As text: SQLAlchemy registers a jsonb codec on its connections; the raw JSON is all we need.
_COLUMNS = "position, stream_id, version, type, data::text, metadata::text, occurred_at, recorded_at"

_STREAM_VERSIONS = """
    SELECT s.stream_id, COALESCE((SELECT max(e.version) FROM events e WHERE e.stream_id = s.stream_id), 0)
    FROM unnest($1::text[]) AS s(stream_id)
"""
# One source per query keeps this a primary-key index scan whatever plan PostgreSQL caches; a join
# against unnest() may be planned as a hash join over the whole (ever-growing) inbox.
_KNOWN_DELIVERIES = """
    SELECT external_id, payload_sha256, position
    FROM inbox WHERE source = $1 AND external_id = ANY($2::text[])
"""
# Rows are fed in ORDER BY ord so positions grow with versions inside each stream.
_INSERT_EVENTS = """
    INSERT INTO events (stream_id, version, type, data, metadata, occurred_at)
    SELECT stream_id, version, type,
           convert_from(data, 'UTF8')::jsonb, convert_from(metadata, 'UTF8')::jsonb, occurred_at
    FROM unnest($1::text[], $2::int[], $3::text[], $4::bytea[], $5::bytea[], $6::timestamptz[])
         WITH ORDINALITY AS t(stream_id, version, type, data, metadata, occurred_at, ord)
    ORDER BY ord
    RETURNING position
"""
_INSERT_INBOX = """
    INSERT INTO inbox (source, external_id, payload_sha256, position)
    SELECT * FROM unnest($1::text[], $2::text[], $3::bytea[], $4::bigint[])
"""
_INSERT_CONFLICTS = """
    INSERT INTO inbox_conflicts (source, external_id, payload_sha256, body, original_position)
    SELECT * FROM unnest($1::text[], $2::text[], $3::bytea[], $4::bytea[], $5::bigint[])
    ON CONFLICT (source, external_id, payload_sha256) DO NOTHING
"""

# Errors that mean "the database is not there right now": the append did not (knowingly) commit.
_UNAVAILABLE = (
    OSError,
    asyncpg.PostgresConnectionError,
    asyncpg.InterfaceError,
    asyncpg.CannotConnectNowError,
    asyncpg.AdminShutdownError,
    asyncpg.QueryCanceledError,
    DBAPIError,  # raised by SQLAlchemy's pool when it cannot connect
    PoolTimeout,  # every pooled connection busy for longer than the pool timeout
)


class EventStore:
    def __init__(self, engine: AsyncEngine, *, max_batch: int = 512) -> None:
        self.engine = engine
        self._committer: GroupCommitter[AppendRequest, AppendResult] = GroupCommitter(
            self._write_batch, max_batch=max_batch
        )

    async def start(self) -> None:
        self._committer.start()

    async def close(self) -> None:
        await self._committer.close()

    @property
    def committer(self) -> GroupCommitter[AppendRequest, AppendResult]:
        return self._committer

    # -- writing ----------------------------------------------------------------------------------

    async def append(
        self,
        stream_id: str,
        events: Sequence[NewEvent],
        *,
        expected: Expected = ANY,
        inbox: InboxKey | None = None,
    ) -> AppendResult:
        """Append ``events`` to ``stream_id`` atomically; resolves once committed.

        Raises ``ConcurrencyError`` if the stream is not at ``expected``, ``StoreUnavailable`` if the
        database cannot be reached (nothing stored), ``UnstorableEvent`` if PostgreSQL rejects the JSON.
        """
        if inbox is not None and not events:
            raise ValueError("an inbox delivery must append at least one event")
        request = AppendRequest(stream_id=stream_id, events=tuple(events), expected=expected, inbox=inbox)
        return await self._committer.submit(request)

    async def _write_batch(self, requests: Sequence[AppendRequest]) -> list[AppendResult | Exception]:
        try:
            async with self._connection() as connection, connection.transaction():
                return await _append_batch(connection, requests)
        except asyncpg.DataError as exc:
            # One request's JSON poisons the whole statement; find it by writing each on its own.
            if len(requests) == 1:
                return [UnstorableEvent(f"PostgreSQL rejected the event data: {exc}")]
            log.warning("append batch of %d rejected (%s); retrying one by one", len(requests), exc)
            return [(await self._write_batch([request]))[0] for request in requests]
        except StoreUnavailable as exc:
            log.warning("append batch of %d failed, database unavailable: %s", len(requests), exc)
            return [exc] * len(requests)
        except asyncpg.PostgresError as exc:
            # e.g. a read-only standby after a failover, or lock/resource exhaustion: nothing committed,
            # the caller may retry. Logged as an error because it needs an operator's eyes.
            log.exception("append batch of %d refused by PostgreSQL", len(requests))
            return [StoreUnavailable(f"{type(exc).__name__}: {exc}")] * len(requests)

    # -- reading ----------------------------------------------------------------------------------

    async def read_stream(self, stream_id: str, from_version: int = 1) -> list[RecordedEvent]:
        sql = f"SELECT {_COLUMNS} FROM events WHERE stream_id = $1 AND version >= $2 ORDER BY version"
        async with self._connection() as connection:
            rows = await connection.fetch(sql, stream_id, from_version)
        return [_recorded(row) for row in rows]

    async def read_all(
        self,
        after_position: int = 0,
        limit: int = 1000,
        *,
        stream_id: str | None = None,
        type: str | None = None,
    ) -> list[RecordedEvent]:
        """Events with position > ``after_position``, in position order, optionally filtered."""
        where, args = _filters(stream_id, type, first=3)
        sql = f"SELECT {_COLUMNS} FROM events WHERE position > $1{where} ORDER BY position LIMIT $2"
        async with self._connection() as connection:
            rows = await connection.fetch(sql, after_position, limit, *args)
        return [_recorded(row) for row in rows]

    async def read_latest(
        self, limit: int, *, stream_id: str | None = None, type: str | None = None
    ) -> list[RecordedEvent]:
        """The last ``limit`` events (optionally filtered), oldest first."""
        where, args = _filters(stream_id, type, first=2)
        sql = f"SELECT {_COLUMNS} FROM events WHERE true{where} ORDER BY position DESC LIMIT $1"
        async with self._connection() as connection:
            rows = await connection.fetch(sql, limit, *args)
        return [_recorded(row) for row in reversed(rows)]

    async def head_position(self) -> int:
        async with self._connection() as connection:
            value = await connection.fetchval("SELECT COALESCE(max(position), 0) FROM events")
        return int(value)

    async def quarantine(self, *, source: str, reason: str, content_type: str | None, body: bytes) -> int:
        """Keep a delivery we cannot put in the log, raw, for an operator to look at."""
        sql = (
            "INSERT INTO quarantine (source, reason, content_type, body) VALUES ($1, $2, $3, $4) RETURNING id"
        )
        async with self._connection() as connection:
            return int(await connection.fetchval(sql, source, reason, content_type, body))

    @asynccontextmanager
    async def _connection(self) -> AsyncIterator[Connection]:
        """A pooled connection's asyncpg driver. If the database goes away it is invalidated (never
        reused) and the caller sees ``StoreUnavailable``."""
        try:
            async with self.engine.connect() as connection:
                raw = await connection.get_raw_connection()
                driver: Connection = raw.driver_connection  # type: ignore[assignment]
                try:
                    yield driver
                except _UNAVAILABLE:
                    await connection.invalidate()
                    raise
        except _UNAVAILABLE as exc:
            raise StoreUnavailable(str(exc) or type(exc).__name__) from exc


async def _append_batch(
    connection: Connection, requests: Sequence[AppendRequest]
) -> list[AppendResult | Exception]:
    """Decide and write a whole batch inside one transaction that holds the append lock."""
    await connection.execute("SELECT pg_advisory_xact_lock($1)", APPEND_LOCK_KEY)
    ids_by_source: dict[str, list[str]] = {}
    for request in requests:
        if request.inbox is not None:
            ids_by_source.setdefault(request.inbox.source, []).append(request.inbox.external_id)
    known: dict[tuple[str, str], tuple[bytes, int]] = {}
    for source, external_ids in ids_by_source.items():
        for row in await connection.fetch(_KNOWN_DELIVERIES, source, external_ids):
            known[(source, row[0])] = (bytes(row[1]), row[2])
    streams = list({request.stream_id for request in requests})
    versions: dict[str, int] = {row[0]: row[1] for row in await connection.fetch(_STREAM_VERSIONS, streams)}

    batch = _Batch(known, versions)
    outcomes = [batch.plan(request) for request in requests]
    positions = await batch.write(connection)
    return [outcome(positions) for outcome in outcomes]


# An outcome is resolved once the batch's positions are known.
Outcome = Callable[[Sequence[int]], AppendResult | Exception]


class _Batch:
    """The rows one transaction inserts, and the inbox bookkeeping that depends on their positions."""

    def __init__(self, known: dict[tuple[str, str], tuple[bytes, int]], versions: dict[str, int]) -> None:
        self._known = known  # deliveries already in the inbox: (sha256, position)
        self._versions = versions
        self._claimed: dict[tuple[str, str], tuple[bytes, int]] = {}  # first seen in this batch: (sha, row)
        self._events: list[tuple[str, int, NewEvent]] = []
        self._inbox: list[tuple[InboxKey, int]] = []  # (delivery, row of its first event)
        self._conflicts: list[tuple[InboxKey, int, bool]] = []  # (delivery, position or row, is_row)

    def plan(self, request: AppendRequest) -> Outcome:
        inbox = request.inbox
        if inbox is not None:
            key = (inbox.source, inbox.external_id)
            if key in self._known:
                sha, position = self._known[key]
                return self._redelivery(inbox, sha, position, is_row=False)
            if key in self._claimed:
                sha, row = self._claimed[key]
                return self._redelivery(inbox, sha, row, is_row=True)
        actual = self._versions[request.stream_id]
        if not expected_matches(request.expected, actual):
            error = ConcurrencyError(request.stream_id, request.expected, actual)
            return lambda _: error
        start = len(self._events)
        self._events.extend(
            (request.stream_id, actual + offset, event) for offset, event in enumerate(request.events, 1)
        )
        stop, version = len(self._events), actual + len(request.events)
        self._versions[request.stream_id] = version
        if inbox is not None:
            self._claimed[(inbox.source, inbox.external_id)] = (inbox.payload_sha256, start)
            self._inbox.append((inbox, start))
        return lambda positions: Appended(tuple(positions[start:stop]), version)

    def _redelivery(self, inbox: InboxKey, sha: bytes, where: int, *, is_row: bool) -> Outcome:
        def position(positions: Sequence[int]) -> int:
            return positions[where] if is_row else where

        if sha == inbox.payload_sha256:
            return lambda positions: Duplicate(position(positions))
        self._conflicts.append((inbox, where, is_row))
        return lambda positions: ConflictingRedelivery(position(positions))

    async def write(self, connection: Connection) -> list[int]:
        positions: list[int] = []
        if self._events:
            rows = await connection.fetch(
                _INSERT_EVENTS,
                [stream_id for stream_id, _, _ in self._events],
                [version for _, version, _ in self._events],
                [event.type for _, _, event in self._events],
                [event.data for _, _, event in self._events],
                [event.metadata for _, _, event in self._events],
                [event.occurred_at for _, _, event in self._events],
            )
            # Positions are drawn in insertion order (ORDER BY ord), so sorting maps them back to rows.
            positions = sorted(row[0] for row in rows)
            await connection.execute("SELECT pg_notify($1, $2)", NOTIFY_CHANNEL, str(positions[-1]))
        if self._inbox:
            await connection.execute(
                _INSERT_INBOX,
                [key.source for key, _ in self._inbox],
                [key.external_id for key, _ in self._inbox],
                [key.payload_sha256 for key, _ in self._inbox],
                [positions[row] for _, row in self._inbox],
            )
        if self._conflicts:
            await connection.execute(
                _INSERT_CONFLICTS,
                [key.source for key, _, _ in self._conflicts],
                [key.external_id for key, _, _ in self._conflicts],
                [key.payload_sha256 for key, _, _ in self._conflicts],
                [key.body for key, _, _ in self._conflicts],
                [positions[where] if is_row else where for _, where, is_row in self._conflicts],
            )
        return positions


def _filters(stream_id: str | None, type: str | None, *, first: int) -> tuple[str, list[str]]:
    """SQL conditions for the filters actually given (so each shape gets its own index-friendly plan)."""
    where, args = "", []
    for column, value in (("stream_id", stream_id), ("type", type)):
        if value is not None:
            args.append(value)
            where += f" AND {column} = ${first + len(args) - 1}"
    return where, args


def _recorded(row: asyncpg.Record) -> RecordedEvent:
    return RecordedEvent(
        position=row[0],
        stream_id=row[1],
        version=row[2],
        type=row[3],
        data=msgspec.Raw(row[4].encode()),
        metadata=msgspec.Raw(row[5].encode()),
        occurred_at=row[6],
        recorded_at=row[7],
    )
