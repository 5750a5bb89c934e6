"""The log feed: one reader of the log per process, fanning new events out to in-process subscribers.

Every process follows the log on its own (the doorbell's LISTEN, with a poll fallback), so an event
accepted by any instance reaches the subscribers connected to every instance. Subscribers never talk to
the database while they wait: they get events from the feed through bounded queues. One that falls too
far behind is cut off (``overflowed``) and reconnects from its last position, instead of slowing the
others or holding memory without bound.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

from service.eventlog.doorbell import Doorbell
from service.eventlog.model import RecordedEvent
from service.eventlog.store import EventStore
from service.metrics import SSE_SUBSCRIBERS

log = logging.getLogger(__name__)

Interest = Callable[[RecordedEvent], bool]


class Subscription:
    def __init__(self, streams: frozenset[str] | None, interest: Interest | None, capacity: int) -> None:
        self.streams = streams
        """Only events of these streams (None: every event, through ``interest``)."""
        self.interest = interest
        self.from_position = 0
        """Every event after this position is delivered (set when subscribing)."""
        self.overflowed = False
        self.closed = False
        """The server is shutting down: the stream should end now."""
        self._queue: asyncio.Queue[RecordedEvent | None] = asyncio.Queue(capacity + 1)
        self._capacity = capacity

    def offer(self, event: RecordedEvent) -> None:
        if self.overflowed or (self.interest is not None and not self.interest(event)):
            return
        if self._queue.qsize() < self._capacity:
            self._queue.put_nowait(event)
            return
        # Too far behind: drop what is queued and wake the reader to end its stream.
        self.overflowed = True
        while not self._queue.empty():
            self._queue.get_nowait()
        self._queue.put_nowait(None)

    async def next(self, timeout_s: float) -> RecordedEvent | None:
        """The next event; None after ``timeout_s`` without one, or once ``overflowed`` or ``closed``."""
        try:
            async with asyncio.timeout(timeout_s):  # not wait_for: see Doorbell.wait
                while not (self.overflowed or self.closed):
                    if (event := await self._queue.get()) is not None:
                        return event
        except TimeoutError:
            pass
        return None

    async def wait(self) -> RecordedEvent | None:
        """The next event, or None on the feed's tick (every ``tick_s``, while nothing arrives) or once
        ``overflowed`` or ``closed``. No timer per call: a stream waiting for its next message costs a
        queue read, which matters when ten thousand of them are woken by one event."""
        if self.overflowed or self.closed:
            return None
        return await self._queue.get()

    def tick(self) -> None:
        if self._queue.empty():
            self._queue.put_nowait(None)

    def close(self) -> None:
        self.closed = True
        if self._queue.full():
            self._queue.get_nowait()
        self._queue.put_nowait(None)

    def pending(self) -> list[RecordedEvent]:
        """What has arrived already, without waiting."""
        events = []
        while not self._queue.empty() and not (self.overflowed or self.closed):
            event = self._queue.get_nowait()
            if event is not None:
                events.append(event)
        return events


class LogFeed:
    def __init__(
        self,
        store: EventStore,
        doorbell: Doorbell,
        *,
        page: int = 1000,
        retry_s: float = 1.0,
        tick_s: float = 1.0,
    ) -> None:
        self.store = store
        self.doorbell = doorbell
        self.page = page
        self.retry_s = retry_s
        self.tick_s = tick_s
        """How often a quiet subscription is woken (to send keep-alives, to end at its lifetime)."""
        self.position = 0
        """Every event up to here has been handed to the subscribers of the time."""
        self._by_stream: dict[str, set[Subscription]] = {}
        self._everything: set[Subscription] = set()
        self.ready = asyncio.Event()
        self.closing = False

    async def run(self) -> None:
        """Forever: follow the log from the head at startup, handing each event to its subscribers."""
        ticking = asyncio.create_task(self._tick_forever(), name="log-feed-ticks")
        try:
            await self._follow()
        finally:
            ticking.cancel()

    async def _tick_forever(self) -> None:
        while True:
            await asyncio.sleep(self.tick_s)
            for subscription in (*self._everything, *(s for subs in self._by_stream.values() for s in subs)):
                subscription.tick()

    async def _follow(self) -> None:
        while True:
            try:
                if not self.ready.is_set():
                    self.position = await self.store.head_position()
                    self.ready.set()
                seen = self.doorbell.rings
                await self._catch_up()
                await self.doorbell.wait(seen)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the database is away: keep the position, read on when it is back
                log.warning("log feed: %r; retrying in %.1f s", exc, self.retry_s)
                await asyncio.sleep(self.retry_s)

    async def _catch_up(self) -> None:
        while True:
            if not self._by_stream and not self._everything:
                # Nobody listens: nothing to read, but new subscribers start from the present.
                self.position = max(self.position, self.doorbell.head)
                return
            events = await self.store.read_all(self.position, self.page)
            for event in events:
                for subscription in (*self._by_stream.get(event.stream_id, ()), *self._everything):
                    subscription.offer(event)
                self.position = event.position
            if len(events) < self.page:
                return

    def close_all(self) -> None:
        """End every stream (the server is shutting down); new subscriptions are closed at once."""
        self.closing = True
        for subscription in {*self._everything, *(s for subs in self._by_stream.values() for s in subs)}:
            subscription.close()

    @asynccontextmanager
    async def subscribe(
        self,
        *,
        streams: frozenset[str] | None = None,
        interest: Interest | None = None,
        capacity: int = 1000,
    ) -> AsyncIterator[Subscription]:
        """Events after the feed's current position, of ``streams`` (or all events ``interest`` wants)."""
        await self.ready.wait()
        subscription = Subscription(streams, interest, capacity)
        subscription.from_position = self.position
        if self.closing:
            subscription.close()
        if streams is None:
            self._everything.add(subscription)
        for stream in streams or ():
            self._by_stream.setdefault(stream, set()).add(subscription)
        SSE_SUBSCRIBERS.inc()
        try:
            yield subscription
        finally:
            SSE_SUBSCRIBERS.dec()
            self._everything.discard(subscription)
            for stream in streams or ():
                subscribers = self._by_stream.get(stream)
                if subscribers is not None:
                    subscribers.discard(subscription)
                    if not subscribers:
                        del self._by_stream[stream]
