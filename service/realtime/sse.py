"""Server-sent event streams with the manners proxies and clients need.

- A keep-alive comment after ``keepalive_s`` of silence, so idle-timeout proxies leave quiet streams open.
- A maximum lifetime, ended with a ``retry`` hint: clients reconnect (with ``Last-Event-ID``) to a fresh
  stream, possibly on another instance, instead of pinning one connection forever.
- A clean end on shutdown, before the server's graceful-shutdown timeout runs out.
- Never a database connection held while waiting: streams read from the log feed; the callbacks that
  build messages open short-lived connections of their own.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence

import msgspec
from litestar.response import ServerSentEventMessage

from service.eventlog.model import RecordedEvent, StoreUnavailable
from service.realtime.feed import Subscription

Message = ServerSentEventMessage
REACT_RETRY_S = 0.5
"""How often a stream tries again to make its messages while the database is away."""
React = Callable[[Sequence[RecordedEvent]], Awaitable[Sequence[Message]]]
"""Makes a batch of events into messages. If it raises ``StoreUnavailable`` it must leave no trace: it
is called again with the same events once the database is back."""


class StreamLimits(msgspec.Struct, frozen=True, kw_only=True):
    keepalive_s: float = 15.0
    lifetime_s: float = 1800.0
    retry_ms: int = 1000
    """The reconnection delay suggested when the server ends a stream."""


class Ended(Exception):
    """Raised by a ``React`` callback when the stream has said all it ever will (e.g. an ended ticket)."""


def end(reason: str, retry_ms: int | None) -> Message:
    """The last message of a stream: a comment saying why, and when to reconnect (None: do not)."""
    return Message(data=None, comment=reason, retry=retry_ms)


async def stream(
    first: Sequence[Message], subscription: Subscription, react: React, limits: StreamLimits
) -> AsyncIterator[Message]:
    """``first``, then what ``react`` makes of each batch of events from ``subscription``."""
    loop = asyncio.get_running_loop()
    for message in first:
        yield message
    deadline = loop.time() + limits.lifetime_s
    quiet_since = loop.time()
    while True:
        if loop.time() >= deadline:
            yield end(
                "this stream has reached its maximum lifetime; reconnect with Last-Event-ID", limits.retry_ms
            )
            return
        event = await subscription.wait()  # an event, or None on the feed's tick (or an ending)
        if subscription.closed:
            yield end("the server is shutting down; reconnect with Last-Event-ID", limits.retry_ms)
            return
        if subscription.overflowed:
            yield end("this stream fell too far behind; reconnect with Last-Event-ID", limits.retry_ms)
            return
        if event is None:
            if loop.time() - quiet_since >= limits.keepalive_s:
                yield Message(data=None, comment="keep-alive")
                quiet_since = loop.time()
            continue
        batch = [event, *subscription.pending()]
        while True:
            try:
                messages = await react(batch)
                break
            except Ended as ended:
                for message in ended.args[0] if ended.args else ():
                    yield message
                return
            except StoreUnavailable:
                # The database is away. Keep the stream and these events, and try again until it is
                # back: a reconnect would be refused meanwhile, and EventSource gives up on a refusal.
                if subscription.closed or loop.time() >= deadline:
                    yield end("the database is unavailable; reconnect with Last-Event-ID", limits.retry_ms)
                    return
                if loop.time() - quiet_since >= limits.keepalive_s:
                    yield Message(data=None, comment="keep-alive")
                    quiet_since = loop.time()
                await asyncio.sleep(min(limits.keepalive_s, REACT_RETRY_S))
        for message in messages:
            yield message
            quiet_since = loop.time()
