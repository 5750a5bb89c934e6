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
from collections.abc import AsyncIterator, Sequence
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
    required_version,
)
from service.logs import Throttle

if TYPE_CHECKING:
    Connection = asyncpg.Connection[asyncpg.Record]

log = logging.getLogger(__name__)

NOTIFY_CHANNEL = "chargeline_events"

# As text: SQLAlchemy registers a jsonb codec on its connections; the raw JSON is all we need.
_COLUMNS = "position, stream_id, version, type, data::text, metadata::text, occurred_at, recorded_at"

# The whole batch is decided and written by append_events() (migrations/versions/0002): the append
# lock is held for one server-side statement, not across client round trips. Sent outside a transaction,
# the statement is its own transaction, so the reply means committed.
_APPEND = "SELECT * FROM append_events($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)"
_KEEP_CONFLICTS = """
    INSERT INTO inbox_conflicts (source, external_id, payload_sha256, body, original_position)
    SELECT * FROM unnest($1::text[], $2::text[], $3::bytea[], $4::bytea[], $5::bigint[])
    ON CONFLICT (source, external_id, payload_sha256) DO NOTHING
"""

# Errors that mean "the database is not there right now": the append did not (knowingly) commit.
_UNAVAILABLE = (
    OSError,
    asyncpg.PostgresConnectionError,
    asyncpg.InterfaceError,
    asyncpg.InternalClientError,  # e.g. a statement on a connection the server just terminated
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
            self._write_batch, max_batch=max_batch, size_of=_size_of
        )
        self._unavailable_reports = Throttle(5.0)  # an outage under load fails dozens of batches a second

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
        database cannot be reached (not committed, or unknown if the connection broke while committing:
        retry), ``UnstorableEvent`` if PostgreSQL rejects the JSON.
        """
        if inbox is not None and not events:
            raise ValueError("an inbox delivery must append at least one event")
        request = AppendRequest(stream_id=stream_id, events=tuple(events), expected=expected, inbox=inbox)
        return await self._committer.submit(request)

    async def _write_batch(self, requests: Sequence[AppendRequest]) -> list[AppendResult | Exception]:
        try:
            async with self.connection() as connection:
                return await _append_batch(connection, requests)
        except asyncpg.DataError as exc:
            # One request's JSON poisons the whole statement; halve the batch until it stands alone.
            if len(requests) == 1:
                return [UnstorableEvent(f"PostgreSQL rejected the event data: {exc}")]
            log.warning("append batch of %d rejected (%s); splitting it", len(requests), exc)
            half = len(requests) // 2
            return [*await self._write_batch(requests[:half]), *await self._write_batch(requests[half:])]
        except StoreUnavailable as exc:
            if (held := self._unavailable_reports.due()) is not None:
                log.warning(
                    "append batch of %d failed, database unavailable: %s (%d such failures since the last "
                    "report)",
                    len(requests),
                    exc,
                    held,
                )
            return [StoreUnavailable(str(exc)) for _ in requests]
        except asyncpg.PostgresError as exc:
            # e.g. a read-only standby after a failover, or lock/resource exhaustion: nothing committed,
            # the caller may retry. Logged as an error because it needs an operator's eyes.
            log.exception("append batch of %d refused by PostgreSQL", len(requests))
            return [StoreUnavailable(f"{type(exc).__name__}: {exc}") for _ in requests]

    # -- reading ----------------------------------------------------------------------------------

    async def read_stream(self, stream_id: str, from_version: int = 1) -> list[RecordedEvent]:
        sql = f"SELECT {_COLUMNS} FROM events WHERE stream_id = $1 AND version >= $2 ORDER BY version"
        async with self.connection() as connection:
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
        async with self.connection() as connection:
            return await read_after(connection, after_position, limit, stream_id=stream_id, type=type)

    async def read_latest(
        self,
        limit: int,
        *,
        stream_id: str | None = None,
        type: str | None = None,
        up_to: int | None = None,
    ) -> list[RecordedEvent]:
        """The last ``limit`` events (optionally filtered, at or below ``up_to``), oldest first."""
        where, args = _filters(stream_id, type, first=3)
        sql = f"SELECT {_COLUMNS} FROM events WHERE position <= $2{where} ORDER BY position DESC LIMIT $1"
        async with self.connection() as connection:
            rows = await connection.fetch(sql, limit, up_to if up_to is not None else 2**63 - 1, *args)
        return [_recorded(row) for row in reversed(rows)]

    async def head_position(self) -> int:
        async with self.connection() as connection:
            value = await connection.fetchval("SELECT COALESCE(max(position), 0) FROM events")
        return int(value)

    async def quarantine(self, *, source: str, reason: str, content_type: str | None, body: bytes) -> int:
        """Keep a delivery we cannot put in the log, raw, for an operator to look at."""
        sql = (
            "INSERT INTO quarantine (source, reason, content_type, body) VALUES ($1, $2, $3, $4) RETURNING id"
        )
        async with self.connection() as connection:
            return int(await connection.fetchval(sql, source, reason, content_type, body))

    @asynccontextmanager
    async def connection(self) -> AsyncIterator[Connection]:
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
    """Decide and write a whole batch in one statement (one transaction holding the append lock)."""
    events = [event for request in requests for event in request.events]
    keys = [request.inbox for request in requests]
    rows = await connection.fetch(
        _APPEND,
        [request.stream_id for request in requests],
        [required_version(request.expected) for request in requests],
        [len(request.events) for request in requests],
        [key and key.source for key in keys],
        [key and key.external_id for key in keys],
        [key and key.payload_sha256 for key in keys],
        [event.type for event in events],
        [event.data for event in events],
        [event.metadata for event in events],
        [event.occurred_at for event in events],
    )
    results = [_result(request, row) for request, row in zip(requests, rows, strict=True)]
    conflicts = [
        (request.inbox, result.original_position)
        for request, result in zip(requests, results, strict=True)
        if isinstance(result, ConflictingRedelivery) and request.inbox is not None
    ]
    if conflicts:  # rare: kept after the batch committed, before anyone is answered
        await connection.execute(
            _KEEP_CONFLICTS,
            [key.source for key, _ in conflicts],
            [key.external_id for key, _ in conflicts],
            [key.payload_sha256 for key, _ in conflicts],
            [key.body for key, _ in conflicts],
            [position for _, position in conflicts],
        )
    return results


def _size_of(request: AppendRequest) -> int:
    """Bytes a request adds to a batch (PostgreSQL caps one array argument at 1 GB)."""
    return sum(len(event.data) + len(event.metadata) for event in request.events)


def _result(request: AppendRequest, row: asyncpg.Record) -> AppendResult | Exception:
    outcome, version, positions = row
    match outcome:
        case "appended":
            return Appended(tuple(positions), version)
        case "duplicate":
            return Duplicate(positions[0])
        case "conflict":
            return ConflictingRedelivery(positions[0])
        case "wrong_version":
            return ConcurrencyError(request.stream_id, request.expected, version)
    raise AssertionError(f"append_events() returned an unknown outcome {outcome!r}")


async def read_after(
    connection: Connection,
    after_position: int,
    limit: int,
    *,
    stream_id: str | None = None,
    type: str | None = None,
) -> list[RecordedEvent]:
    """``read_all`` on a connection the caller holds (a projection reads inside its transaction)."""
    where, args = _filters(stream_id, type, first=3)
    sql = f"SELECT {_COLUMNS} FROM events WHERE position > $1{where} ORDER BY position LIMIT $2"
    rows = await connection.fetch(sql, after_position, limit, *args)
    return [_recorded(row) for row in rows]


async def read_types_after(
    connection: Connection, after_position: int, limit: int, types: Sequence[str]
) -> tuple[list[RecordedEvent], int]:
    """Events of ``types`` after a position, and the head of the log in the same snapshot.

    Positions become visible in order, so every event up to that head is visible in the snapshot:
    a reader that got fewer than ``limit`` events has seen all of ``types`` up to the head and may
    move past the events of other types without reading them (through the (type, position) index).
    """
    sql = f"""
        SELECT {_COLUMNS}, head.head_position
        FROM (SELECT coalesce(max(position), 0) AS head_position FROM events) AS head
        LEFT JOIN LATERAL (
            SELECT * FROM events
            WHERE position > $1 AND type = ANY($3::text[]) ORDER BY position LIMIT $2
        ) AS e ON true
        ORDER BY e.position
    """
    rows = await connection.fetch(sql, after_position, limit, list(types))
    head = int(rows[0][8]) if rows else after_position
    return [_recorded(row) for row in rows if row[0] is not None], head


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
        data=msgspec.Raw(row[4]),  # a str is fine: no copy back to bytes
        metadata=msgspec.Raw(row[5]),
        occurred_at=row[6],
        recorded_at=row[7],
    )
