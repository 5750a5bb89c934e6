"""The projection runner: folds the log into a read model, batch by batch, from its checkpoint.

- Each step reads the checkpoint ``FOR UPDATE``, applies the next events and moves the checkpoint, all
  in one transaction: a crash or a lost connection leaves either the whole step or none of it, and two
  runners can never apply the same event twice (the second waits on the row, then sees the new position).
- One runner per projection is active across all processes: a session advisory lock held on a
  dedicated connection is the lease. When the holder dies its connection closes, PostgreSQL releases
  the lock, and a waiting process takes over.
- An event the projection cannot apply (a poison event) is recorded in ``projection_errors`` in the same
  transaction and skipped: never a stall, never silent.
- It wakes on the log's doorbell and polls as a fallback; database errors are retried with the same
  checkpoint after a pause, so a database restart loses nothing and repeats nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING, Protocol

import asyncpg
import msgspec

from service.db.lease import try_lease
from service.eventlog.doorbell import Doorbell
from service.eventlog.model import RecordedEvent
from service.eventlog.store import EventStore, read_after, read_types_after
from service.metrics import PROJECTION_LAG, PROJECTION_POSITION, PROJECTION_SKIPPED

if TYPE_CHECKING:
    Connection = asyncpg.Connection[asyncpg.Record]

# Errors that say nothing about the events: the step is retried as a whole, later.
_TRANSIENT_ERRORS = (
    asyncpg.PostgresConnectionError,
    asyncpg.AdminShutdownError,
    asyncpg.QueryCanceledError,
    asyncpg.DeadlockDetectedError,
    asyncpg.SerializationError,
    asyncpg.LockNotAvailableError,
)

log = logging.getLogger(__name__)

FOLLOW_PACE_S = 0.01
"""The least time between looks while only other projections' events arrive (a fast-paced runner
must not spend a core following ingest traffic it ignores; its own events wait at most this long)."""
CHECKPOINT_EVERY_S = 1.0
"""How often a runner moves its stored checkpoint past other projections' events when it has none of
its own to apply (in memory it follows them at once)."""


class Poison(msgspec.Struct, frozen=True):
    """An event a projection could not apply, and why."""

    position: int
    event_type: str
    error: str


class Projection(Protocol):
    name: str
    """Stable snake_case; the checkpoint key."""
    event_types: tuple[str, ...] | None
    """The only event types it reads (found through an index); None: every event."""

    async def apply(self, connection: Connection, events: Sequence[RecordedEvent]) -> list[Poison]:
        """Write the read-model changes for ``events`` (inside the caller's transaction); return the
        events that could not be applied, which must leave no trace in the read model."""
        ...


class ProjectionRunner:
    def __init__(
        self,
        store: EventStore,
        projection: Projection,
        doorbell: Doorbell,
        *,
        batch_size: int = 1000,
        retry_s: float = 1.0,
        pace_s: float = 0.1,
    ) -> None:
        self.store = store
        self.projection = projection
        self.doorbell = doorbell
        self.batch_size = batch_size
        self.retry_s = retry_s
        self.pace_s = pace_s
        self.active = asyncio.Event()
        """Set while this runner holds the lease."""
        self.position = 0
        """The checkpoint as of this runner's last step (meaningful while active)."""
        self._stepped = asyncio.Event()
        self.checkpoint_every_s = CHECKPOINT_EVERY_S
        self._stored_at: float | None = None
        """When this runner last wrote its checkpoint (loop time); None: not since it started leading."""

    async def reached(self, position: int, timeout_s: float) -> bool:
        """Wait until this runner's read model reflects ``position`` (read-your-writes for a command
        that just appended); False if it did not within the timeout, or another process runs it."""
        deadline = asyncio.get_running_loop().time() + timeout_s
        while self.position < position:
            remaining = deadline - asyncio.get_running_loop().time()
            if not self.active.is_set() or remaining <= 0:
                return False
            stepped = self._stepped
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(remaining):  # not wait_for: see Doorbell.wait
                    await stepped.wait()
        return True

    async def run(self) -> None:
        """Forever: take the lease when free, then keep the read model caught up."""
        while True:
            try:
                await self._lead()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("projection %s: %r; retrying in %.1f s", self.projection.name, exc, self.retry_s)
            self.active.clear()
            await asyncio.sleep(self.retry_s)

    async def _lead(self) -> None:
        async with try_lease(self.store.engine, self.projection.name) as lease:
            if lease is None:
                return  # another process leads; try again after the pause
            try:
                self._stored_at = None  # the first step reads the stored checkpoint
                self.active.set()
                log.info("projection %s: this process runs it", self.projection.name)
                while not lease.is_closed():
                    seen, before = self.doorbell.rings, self.position
                    consumed = await self.step()
                    if consumed >= self.batch_size:
                        continue  # behind: keep going
                    if consumed:
                        # Just did work: let the next appends gather for a moment, then step again.
                        # The first event after a quiet spell is applied at once; under steady ingest
                        # steps come every pace_s with bigger batches instead of competing with appends.
                        await asyncio.sleep(self.pace_s)
                        continue
                    if self.position != before:  # followed others' events: the next look can wait
                        await asyncio.sleep(max(self.pace_s, FOLLOW_PACE_S))
                    await self.doorbell.wait(seen)  # caught up
            finally:
                self.active.clear()

    async def _apply(self, connection: Connection, events: Sequence[RecordedEvent]) -> list[Poison]:
        """Apply a batch; if PostgreSQL refuses it, find the events it refuses one by one (each in a
        savepoint) and record those as poison, so a read-model write that can never succeed does not
        stall the projection forever."""
        try:
            async with connection.transaction():  # a savepoint inside the step's transaction
                return await self.projection.apply(connection, events)
        except asyncpg.PostgresError as exc:
            if isinstance(exc, _TRANSIENT_ERRORS):
                raise
            if len(events) == 1:
                return [Poison(events[0].position, events[0].type, f"{type(exc).__name__}: {exc}")]
        poisons: list[Poison] = []
        for event in events:
            poisons += await self._apply(connection, [event])
        return poisons

    async def step(self) -> int:
        """Apply the next batch; return how many of the projection's events it applied (0: caught up)."""
        event_types = self.projection.event_types
        now = asyncio.get_running_loop().time()
        stored_recently = self._stored_at is not None and now - self._stored_at < self.checkpoint_every_s
        if event_types is not None and stored_recently:
            # Most appends are other projections' events. Look first, in one read without the
            # checkpoint's lock: with none of ours up to the head, follow the head in memory only
            # (positions are visible in order, so nothing of ours can appear below it later).
            async with self.store.connection() as connection:
                ours, head = await read_types_after(connection, self.position, 1, event_types)
            if not ours:
                self._reached(head)
                return 0
        name = self.projection.name
        async with self.store.connection() as connection, connection.transaction():
            await connection.execute(
                "INSERT INTO projection_checkpoints (name) VALUES ($1) ON CONFLICT (name) DO NOTHING", name
            )
            position = await connection.fetchval(
                "SELECT position FROM projection_checkpoints WHERE name = $1 FOR UPDATE", name
            )
            if event_types is None:
                events = await read_after(connection, position, self.batch_size)
                next_position = events[-1].position if events else position
            else:
                events, head = await read_types_after(connection, position, self.batch_size, event_types)
                next_position = events[-1].position if len(events) == self.batch_size else head
            if next_position == position:
                self._stored_at = now
                self._reached(position)
                return 0
            poisons = await self._apply(connection, events) if events else []
            await record_poisons(connection, name, poisons)
            await connection.execute(
                "UPDATE projection_checkpoints SET position = $2, updated_at = now() WHERE name = $1",
                name,
                next_position,
            )
        self._stored_at = now
        self._reached(next_position)
        if poisons:
            PROJECTION_SKIPPED.labels(name).inc(len(poisons))
        return len(events)  # only moving past other projections' events is being caught up

    def _reached(self, position: int) -> None:
        if position > self.position:
            stepped, self._stepped = self._stepped, asyncio.Event()
            stepped.set()  # wakes read-your-writes waiters (``reached``)
        self.position = max(self.position, position)
        PROJECTION_POSITION.labels(self.projection.name).set(position)
        PROJECTION_LAG.labels(self.projection.name).set(max(self.doorbell.head - position, 0))


async def record_poisons(connection: Connection, projection: str, poisons: Sequence[Poison]) -> None:
    """Keep the events a projection skipped, for operators (``projection_errors``, status, metrics)."""
    if not poisons:
        return
    log.error("projection %s skipped %d events it cannot apply", projection, len(poisons))
    await connection.execute(
        """
        INSERT INTO projection_errors (projection, position, event_type, error)
        SELECT $1, * FROM unnest($2::bigint[], $3::text[], $4::text[])
        ON CONFLICT (projection, position) DO NOTHING
        """,
        projection,
        [p.position for p in poisons],
        [p.event_type for p in poisons],
        [p.error for p in poisons],
    )
