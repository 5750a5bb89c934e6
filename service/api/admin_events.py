"""``GET /v1/admin/events``: operators page through the log in position order."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

import msgspec
from litestar import get
from litestar.di import NamedDependency
from litestar.params import QueryParameter

from service.api.auth import ADMIN_SECURITY, require_admin
from service.api.problems import MAX_POSITION, problem_responses
from service.eventlog.model import RecordedEvent
from service.eventlog.store import EventStore


class EventOut(msgspec.Struct, frozen=True):
    position: int
    stream_id: str
    version: int
    type: str
    occurred_at: datetime
    recorded_at: datetime
    data: dict[str, Any]
    metadata: dict[str, Any]

    @classmethod
    def of(cls, event: RecordedEvent) -> EventOut:
        return cls(
            position=event.position,
            stream_id=event.stream_id,
            version=event.version,
            type=event.type,
            occurred_at=event.occurred_at,
            recorded_at=event.recorded_at,
            data=msgspec.json.decode(event.data),
            metadata=msgspec.json.decode(event.metadata),
        )


class EventPage(msgspec.Struct, frozen=True):
    events: list[EventOut]
    next_after: int | None
    """Pass as ``after`` to get the next page; null when this page reached the end of the log."""


@get(
    "/v1/admin/events",
    guards=[require_admin],
    security=ADMIN_SECURITY,
    tags=["Admin"],
    summary="Read the event log in position order",
    responses=problem_responses(e400="A parameter is out of range", e401="Missing or wrong admin token"),
)
async def list_events(
    store: NamedDependency[EventStore],
    after: Annotated[
        int,
        QueryParameter(ge=0, le=MAX_POSITION, description="Return events with a position greater than this"),
    ] = 0,
    limit: Annotated[int, QueryParameter(ge=1, le=1000, description="At most this many events")] = 100,
    stream_id: Annotated[str | None, QueryParameter(description="Only this stream", max_length=200)] = None,
    event_type: Annotated[
        str | None, QueryParameter(name="type", description="Only events of this type", max_length=200)
    ] = None,
) -> EventPage:
    events = await store.read_all(after, limit, stream_id=stream_id, type=event_type)
    next_after = events[-1].position if len(events) == limit else None
    return EventPage(events=[EventOut.of(event) for event in events], next_after=next_after)
