"""A server-sent event stream lives through a database outage: the events it could not make messages of
are kept and sent once the database is back, instead of the stream breaking (its client's reconnect
would be refused while the database is away, and EventSource gives up on a refusal)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

import msgspec

from service.eventlog.model import RecordedEvent, StoreUnavailable
from service.realtime.feed import Subscription
from service.realtime.sse import Message, StreamLimits, stream

LIMITS = StreamLimits(keepalive_s=0.01, lifetime_s=60)


def recorded(position: int) -> RecordedEvent:
    moment = datetime.now(UTC)
    return RecordedEvent(
        position=position,
        stream_id="queue-site",
        version=position,
        type="ticket.joined",
        data=msgspec.Raw(b"{}"),
        metadata=msgspec.Raw(b"{}"),
        occurred_at=moment,
        recorded_at=moment,
    )


class ReadsWhenBack:
    """Makes one message per batch, but only once the database is back (after ``away_for`` tries)."""

    def __init__(self, away_for: int) -> None:
        self.away_for = away_for
        self.batches: list[list[int]] = []

    async def __call__(self, events: Sequence[RecordedEvent]) -> Sequence[Message]:
        self.batches.append([event.position for event in events])
        if len(self.batches) <= self.away_for:
            raise StoreUnavailable("connection refused")
        return [Message(data=str(events[-1].position), id=events[-1].position)]


async def test_events_that_arrive_while_the_database_is_away_are_sent_once_it_is_back() -> None:
    subscription = Subscription(None, None, 10)
    subscription.offer(recorded(7))
    subscription.offer(recorded(8))
    react = ReadsWhenBack(away_for=3)
    sent: list[Message] = []
    async for message in stream([], subscription, react, LIMITS):
        sent.append(message)
        if message.data is not None:
            break
    assert react.batches == [[7, 8]] * 4  # the same events, tried again until they could be read
    assert sent[-1].data == "8"
    assert "keep-alive" in [m.comment for m in sent[:-1]]  # the client hears from it meanwhile


async def test_a_stream_waiting_for_the_database_ends_with_a_retry_hint_at_shutdown() -> None:
    subscription = Subscription(None, None, 10)
    subscription.offer(recorded(7))
    react = ReadsWhenBack(away_for=1_000_000)
    sent: list[Message] = []
    async for message in stream([], subscription, react, LIMITS):
        sent.append(message)
        if len(react.batches) >= 2:
            subscription.close()  # the server shuts down while the database is still away
    assert sent[-1].retry == LIMITS.retry_ms
    assert "reconnect with Last-Event-ID" in str(sent[-1].comment)
