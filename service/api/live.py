"""Server-sent event streams: a driver's ticket, a location's public board, and the whole log.

Every message's ``id`` is a log position. A client that reconnects with ``Last-Event-ID`` gets what
changed after it and nothing it has already seen. Messages are whole states (a Ticket, a board), so one
message after a reconnect brings a client fully up to date.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime
from typing import Annotated, Any, NamedTuple

import msgspec
from litestar import Request, Response, get
from litestar.datastructures import State
from litestar.di import NamedDependency
from litestar.openapi.datastructures import ResponseSpec
from litestar.params import HeaderParameter, QueryParameter
from litestar.response import ServerSentEvent

from service.api.admin_events import EventOut
from service.api.auth import ADMIN_SECURITY, require_admin
from service.api.drivers import DRIVER_SECURITY, Driver
from service.api.problems import MAX_POSITION, MINIMUM_ZERO, problem_responses
from service.api.queues import QueueBoard, known_location, queue_board
from service.api.ticket_out import TicketOut
from service.api.ticket_reads import own_ticket, present_ticket, settle
from service.api.tickets import DRIVER_ERRORS, LocationId, TicketId
from service.dispatch.queues import Queues, stream_of
from service.eventlog.model import RecordedEvent, StoreUnavailable
from service.eventlog.store import read_after
from service.projections import queue_queries
from service.queue.events import TicketEvent, decode_event
from service.queue.fold import evolve_queue, evolve_ticket
from service.realtime.feed import LogFeed
from service.realtime.shared import SharedReads
from service.realtime.sse import Ended, Message, StreamLimits, end, stream

LastEventId = Annotated[
    int | None,
    HeaderParameter(
        name="Last-Event-ID",
        ge=0,
        le=MAX_POSITION,
        schema_extra=MINIMUM_ZERO,
        description="Resume after this log position (sent by EventSource)",
    ),
]
_json = msgspec.json.Encoder()
SSE = "text/event-stream"
SSE_DOC = "A text/event-stream; every message's id is a log position"


def shared_of(state: State) -> SharedReads:
    shared: SharedReads = state.shared_reads
    return shared


async def _site(queues: Queues, location_id: str, now: datetime) -> queue_queries.Site:
    async with queues.store.connection() as connection:
        return await queue_queries.site(connection, location_id, now)


def limits_of(state: State) -> StreamLimits:
    limits: StreamLimits = state.stream_limits
    return limits


@get(
    "/v1/tickets/{ticket_id:str}/events",
    tags=["Queue"],
    summary="Follow one of your tickets: `event: ticket` with the whole Ticket on every change",
    description=f"{SSE_DOC}. The first message is the ticket as it is now (after a reconnect: only if it "
    "changed since Last-Event-ID). The stream ends after the ticket ends; reconnecting then gets a 204.",
    security=DRIVER_SECURITY,
    media_type=SSE,
    responses={
        204: ResponseSpec(None, description="The ticket ended at or before Last-Event-ID: nothing more"),
        **problem_responses(**DRIVER_ERRORS, e404="No such ticket of yours"),
    },
)
async def follow_ticket(
    request: Request[object, object, State],
    driver: NamedDependency[Driver],
    queues: NamedDependency[Queues],
    feed: NamedDependency[LogFeed],
    ticket_id: TicketId,
    last_event_id: LastEventId = None,
) -> Response[bytes] | ServerSentEvent:
    ticket = await own_ticket(queues.store, driver, ticket_id)
    if ticket.live and last_event_id is not None:
        # The client may have seen it end through another instance, ahead of the read model here: once
        # the read model has what the client has seen, an ended ticket gets its 204 on every instance.
        await settle(request.app.state, queues.store, last_event_id)
        ticket = await own_ticket(queues.store, driver, ticket_id)
    location = ticket.location_id
    if not ticket.live and last_event_id is not None:
        async with queues.store.connection() as connection:
            final = await queue_queries.ticket_position(connection, ticket_id)
        if final is not None and last_event_id >= final:
            return Response(b"", status_code=204)  # the client has the final state: EventSource stops here

    async def messages() -> AsyncIterator[Message]:
        async with feed.subscribe(streams=frozenset({stream_of(location)})) as subscription:
            state = await queues.load(location)
            async with queues.store.connection() as connection:
                at = await queue_queries.stream_position(connection, stream_of(location), state.version)
            ended = ticket
            if ticket_id not in state.tickets and ticket.live:
                # It ended a moment ago and the read model has not caught up yet: wait until it has.
                await settle(request.app.state, queues.store, at)
                ended = await own_ticket(queues.store, driver, ticket_id)
            mine = state.tickets.get(ticket_id, ended)
            last = await present_ticket(queues, mine, state, datetime.now(UTC))
            first = [] if last_event_id is not None and at <= last_event_id else [_ticket_message(last, at)]
            if not mine.live:
                first.append(end("the ticket has ended", None))

            async def react(events: Sequence[RecordedEvent]) -> Sequence[Message]:
                nonlocal state, mine
                # Already in the state the stream started from: skipped.
                fresh = [event for event in events if event.version > state.version]
                messages: list[Message] = []
                for n, event in enumerate(fresh):
                    change = decode_event(event.type, event.data)
                    state = evolve_queue(state, change)
                    if not (isinstance(change, TicketEvent) and change.ticket_id == ticket_id):
                        continue
                    mine = evolve_ticket(mine, change, location) or mine
                    following = fresh[n + 1] if n + 1 < len(fresh) else None
                    # Each update of the ticket (the events one append wrote: they share recorded_at) gets
                    # its own message, even when a stream that fell behind gets several in one batch.
                    if following is not None and following.recorded_at != event.recorded_at:
                        messages += await show(event.position, messages)
                if fresh:  # and what the rest (its place in line) made of it
                    messages += await show(fresh[-1].position, messages)
                return messages

            async def show(position: int, earlier: list[Message]) -> list[Message]:
                """The ticket as of ``position``, if the driver would see anything new in it."""
                nonlocal last
                now = datetime.now(UTC)
                current = state.tickets.get(ticket_id, mine)
                site = None
                if current.status == "waiting":  # its place and estimate need the site: read once for all
                    site = await shared_of(request.app.state).get(
                        "site", location, position, lambda: _site(queues, location, now)
                    )
                view = await present_ticket(queues, current, state, now, site=site)
                if _without_eta(view) == _without_eta(last):
                    return []  # nothing the driver sees changed (the estimate alone is no news)
                last = view
                message = _ticket_message(view, position)
                if view.status not in ("waiting", "offered", "held"):
                    raise Ended([*earlier, message, end("the ticket has ended", None)])
                return [message]

            async def react_or_nothing(events: Sequence[RecordedEvent]) -> Sequence[Message]:
                """``react``, undone if the database is away (the stream calls it again with the same
                events: they must not look as if already seen)."""
                nonlocal state, mine, last
                before = state, mine, last
                try:
                    return await react(events)
                except StoreUnavailable:
                    state, mine, last = before
                    raise

            if not mine.live:
                for message in first:
                    yield message
                return
            async for message in stream(first, subscription, react_or_nothing, limits_of(request.app.state)):
                yield message

    return ServerSentEvent(messages())


@get(
    "/v1/locations/{location_id:str}/queue/events",
    tags=["Queue"],
    summary="Follow a location's public board: `event: queue` with the whole board on every change",
    description=f"{SSE_DOC}. Sent on every change of the queue or of the location's connectors.",
    media_type=SSE,
    responses=problem_responses(e404="No such location"),
)
async def follow_queue(
    request: Request[object, object, State],
    queues: NamedDependency[Queues],
    feed: NamedDependency[LogFeed],
    location_id: LocationId,
    last_event_id: LastEventId = None,
) -> ServerSentEvent:
    await known_location(queues, location_id)
    async with queues.store.connection() as connection:
        stations = await queue_queries.station_ids(connection, location_id)
    streams = frozenset({stream_of(location_id), *(f"chargestation-{s}" for s in stations)})

    async def messages() -> AsyncIterator[Message]:
        async with feed.subscribe(streams=streams) as subscription:
            async with queues.store.connection() as connection:
                latest = await queue_queries.latest_position(connection, streams)
            state, shared = request.app.state, shared_of(request.app.state)
            board = await shared.get(
                "board", location_id, latest, lambda: _published(state, queues, location_id, latest)
            )
            first = (
                []
                if last_event_id is not None and latest <= last_event_id
                else [_board_message(board, latest)]
            )

            async def react(events: Sequence[RecordedEvent]) -> Sequence[Message]:
                nonlocal board
                position = events[-1].position
                # Read and encoded once for every viewer of this board, however many there are.
                fresh = await shared.get(
                    "board", location_id, position, lambda: _published(state, queues, location_id, position)
                )
                if fresh.shape != board.shape:
                    board = fresh
                    return [_board_message(fresh, position)]
                return []

            async for message in stream(first, subscription, react, limits_of(request.app.state)):
                yield message

    return ServerSentEvent(messages())


@get(
    "/v1/admin/events/stream",
    guards=[require_admin],
    security=ADMIN_SECURITY,
    tags=["Admin"],
    summary="Follow the event log: every event as it commits, `event: <its type>`",
    description=f"{SSE_DOC}. With Last-Event-ID (or `after`), the events after that position come first.",
    media_type=SSE,
    responses=problem_responses(e400="A parameter is out of range", e401="Missing or wrong admin token"),
)
async def follow_log(
    request: Request[object, object, State],
    queues: NamedDependency[Queues],
    feed: NamedDependency[LogFeed],
    type_prefix: Annotated[
        str | None, QueryParameter(max_length=200, description="Only events whose type starts with this")
    ] = None,
    after: Annotated[
        int | None,
        QueryParameter(
            ge=0, le=MAX_POSITION, schema_extra=MINIMUM_ZERO, description="Start after this position"
        ),
    ] = None,
    last_event_id: LastEventId = None,
) -> ServerSentEvent:
    start = last_event_id if last_event_id is not None else after
    prefix = type_prefix or ""

    def wanted(event: RecordedEvent) -> bool:
        return event.type.startswith(prefix)

    async def messages() -> AsyncIterator[Message]:
        async with feed.subscribe(interest=wanted) as subscription:
            position = start if start is not None else subscription.from_position
            while position < subscription.from_position:  # history first, up to where the feed takes over
                async with queues.store.connection() as connection:
                    page = await read_after(connection, position, 1000)
                page = [event for event in page if event.position <= subscription.from_position]
                if not page:
                    break
                for event in page:
                    if wanted(event):
                        yield _event_message(event)
                position = page[-1].position

            async def react(events: Sequence[RecordedEvent]) -> Sequence[Message]:
                return [_event_message(event) for event in events]

            async for message in stream([], subscription, react, limits_of(request.app.state)):
                yield message

    return ServerSentEvent(messages())


def _ticket_message(ticket: TicketOut, position: int) -> Message:
    return Message(data=_json.encode(ticket).decode(), event="ticket", id=position)


class _Published(NamedTuple):
    board: QueueBoard
    data: str
    """The board as JSON, encoded once."""
    shape: bytes
    """What makes a board news (all but the waited times, which tick by themselves), encoded once."""


BOARD_PROJECTIONS = ("connector_availability", "tickets")
"""The read models a board is drawn from (besides the queue's own stream)."""


async def _published(state: State, queues: Queues, location_id: str, position: int) -> _Published:
    """The board once the read models have caught up with ``position`` (the change it announces)."""
    await settle(state, queues.store, position, BOARD_PROJECTIONS)
    board = await queue_board(queues, location_id)
    data = _json.encode(board).decode()
    return _Published(board, data, _json.encode(_shape(board)))


def _board_message(published: _Published, position: int) -> Message:
    return Message(data=published.data, event="queue", id=position)


def _event_message(event: RecordedEvent) -> Message:
    return Message(data=_json.encode(EventOut.of(event)).decode(), event=event.type, id=event.position)


def _without_eta(ticket: TicketOut) -> TicketOut:
    return msgspec.structs.replace(ticket, eta=None)


def _shape(board: QueueBoard) -> Any:
    return [board.paused, board.counts, board.offerable_connectors, [(e.status, e.offer) for e in board.line]]


ROUTES = [follow_queue, follow_log]
DRIVER_ROUTES = [follow_ticket]
