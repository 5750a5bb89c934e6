"""Queues on the event log: load a queue's state, decide a command, append with the expected version.

A queue is the stream ``queue-<location_id>``. Loading starts from the queue's snapshot and folds only
the events after it, so a command costs the same on the busiest site as on a new one. Appends carry the
version the decision was made on; if the stream moved meanwhile (another command, another process), the
state is loaded again and the command decided again, a bounded number of times.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime

import msgspec

from service.eventlog.model import Appended, ConcurrencyError, Exact, NewEvent
from service.eventlog.store import EventStore
from service.metrics import QUEUE_EVENTS
from service.queue.commands import Command
from service.queue.decide import decide
from service.queue.events import QueueEvent, TicketEvent, decode_event, encode_event
from service.queue.fold import evolve_ticket, replay
from service.queue.model import QueueState, Ticket

log = logging.getLogger(__name__)

STREAM_PREFIX = "queue-"
SNAPSHOT_SCHEMA = 2
"""Bump when ``QueueState``'s shape changes: older snapshots are then ignored (and replaced)."""
ATTEMPTS = 8

_state_encoder = msgspec.json.Encoder()
_state_decoder = msgspec.json.Decoder(QueueState)
_metadata_encoder = msgspec.json.Encoder()

_LOAD_SNAPSHOT = "SELECT version, state FROM queue_snapshots WHERE location_id = $1 AND schema = $2"
_LOAD_EVENTS = "SELECT type, data::text FROM events WHERE stream_id = $1 AND version > $2 ORDER BY version"
_SAVE_SNAPSHOT = """
    INSERT INTO queue_snapshots (location_id, version, schema, state) VALUES ($1, $2, $3, $4)
    ON CONFLICT (location_id) DO UPDATE SET version = excluded.version, schema = excluded.schema,
                                            state = excluded.state
    WHERE queue_snapshots.version < excluded.version OR queue_snapshots.schema <> excluded.schema
"""


class Outcome(msgspec.Struct, frozen=True, kw_only=True):
    before: QueueState
    """The queue the command was decided on."""
    state: QueueState
    """The queue after the command."""
    events: list[QueueEvent]
    position: int | None
    """The log position of the last appended event (None: nothing appended)."""


def stream_of(location_id: str) -> str:
    return STREAM_PREFIX + location_id


class Queues:
    def __init__(self, store: EventStore) -> None:
        self.store = store
        self._turns: dict[str, asyncio.Lock] = {}

    @asynccontextmanager
    async def _turn(self, location_id: str) -> AsyncIterator[None]:
        """Commands on one queue take turns within a process, so only other processes can race them:
        a burst of joins at one site does not turn into a storm of version conflicts and retries."""
        lock = self._turns.setdefault(location_id, asyncio.Lock())
        try:
            async with lock:
                yield
        finally:
            if not lock.locked() and self._turns.get(location_id) is lock:
                del self._turns[location_id]  # nobody else waiting on it (they would hold it now)

    async def load(self, location_id: str) -> QueueState:
        """The queue's current state: its snapshot, then the events after it."""
        async with self.store.connection() as connection:
            snapshot = await connection.fetchrow(_LOAD_SNAPSHOT, location_id, SNAPSHOT_SCHEMA)
            state = (
                _state_decoder.decode(snapshot[1])
                if snapshot is not None
                else QueueState(location_id=location_id)
            )
            rows = await connection.fetch(_LOAD_EVENTS, stream_of(location_id), state.version)
        return replay(location_id, (decode_event(row[0], row[1]) for row in rows), state)

    async def execute(
        self,
        location_id: str,
        command: Command,
        *,
        actor: str,
        now: datetime | None = None,
        cause: int | None = None,
    ) -> Outcome:
        """Decide ``command`` on the current state and append what follows. Raises ``Rejected`` when the
        queue refuses it, ``StoreUnavailable`` when the database is away, ``ConcurrencyError`` when the
        queue kept moving for every attempt. ``cause``: the log position that prompted the command."""
        async with self._turn(location_id):
            return await self._execute(location_id, command, actor, now, cause)

    async def _execute(
        self, location_id: str, command: Command, actor: str, now: datetime | None, cause: int | None
    ) -> Outcome:
        for attempt in range(1, ATTEMPTS + 1):
            state = await self.load(location_id)
            events = decide(state, command, now or datetime.now(UTC))
            if not events:
                return Outcome(before=state, state=state, events=[], position=None)
            metadata = _metadata_encoder.encode({"command": type(command).__name__, "actor": actor})
            try:
                result = await self.store.append(
                    stream_of(location_id),
                    [
                        NewEvent(type=e.TYPE, data=encode_event(e), metadata=metadata, occurred_at=e.at)
                        for e in events
                    ],
                    expected=Exact(state.version),
                )
            except ConcurrencyError:
                if attempt == ATTEMPTS:
                    raise
                # Another process changed the queue first: decide again on what it is now, after a
                # short random pause so that racing processes fall out of step.
                await asyncio.sleep(random.uniform(0, 0.005 * attempt))
                continue
            assert isinstance(result, Appended)
            _record(location_id, events, result, actor, cause)
            after = replay(location_id, events, state)
            await self._save_snapshot(after)
            return Outcome(before=state, state=after, events=events, position=result.positions[-1])
        raise AssertionError("unreachable")

    async def _save_snapshot(self, state: QueueState) -> None:
        """Best effort: a snapshot that is not written only makes the next load fold a few more events."""
        try:
            async with self.store.connection() as connection:
                await connection.execute(
                    _SAVE_SNAPSHOT,
                    state.location_id,
                    state.version,
                    SNAPSHOT_SCHEMA,
                    _state_encoder.encode(state),
                )
        except Exception as exc:
            log.warning(
                "queue %s: snapshot at version %d not saved: %r", state.location_id, state.version, exc
            )


def _record(
    location_id: str, events: list[QueueEvent], result: Appended, actor: str, cause: int | None
) -> None:
    """Count each queue event and log it with its position, the thread from a webhook to an offer."""
    for event, position in zip(events, result.positions, strict=True):
        QUEUE_EVENTS.labels(event.TYPE).inc()
        log.info(
            "%s",
            event.TYPE,
            extra={
                "location_id": location_id,
                "ticket_id": getattr(event, "ticket_id", None),
                "stream_id": stream_of(location_id),
                "position": position,
                "actor": actor,
                "caused_by": cause,
            },
        )


def ticket_after(outcome: Outcome, ticket_id: str) -> Ticket | None:
    """A ticket as the command left it, live or ended."""
    ticket = outcome.before.tickets.get(ticket_id)
    for event in outcome.events:
        if isinstance(event, TicketEvent) and event.ticket_id == ticket_id:
            ticket = evolve_ticket(ticket, event, outcome.state.location_id)
    return ticket
