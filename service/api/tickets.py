"""Drivers' queue API: join a location's queue, follow the ticket, accept or snooze an offer, leave.

A driver sees and acts on their own tickets only: anyone else's ticket is a 404, as is one that does not
exist. Commands answer with the ticket as the command left it, and return only once the tickets read
model has it too, so the driver's next read sees their own write.
"""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime
from typing import Annotated

import msgspec
from litestar import Request, Response, delete, get, post
from litestar.datastructures import State
from litestar.di import NamedDependency
from litestar.openapi.datastructures import ResponseSpec
from litestar.params import HeaderParameter, JSONBody, PathParameter, QueryParameter

from service.api.drivers import DRIVER_SECURITY, Driver
from service.api.problems import problem, problem_responses
from service.api.ticket_out import TicketOut
from service.api.ticket_reads import own_ticket, present_ticket, settle
from service.dispatch.queues import Outcome, Queues, stream_of, ticket_after
from service.projections import queue_queries
from service.queue.commands import AcceptOffer, Command, JoinQueue, LeaveQueue, SnoozeOffer
from service.queue.decide import Rejected
from service.queue.model import Requirements, Ticket, requirements_of
from service.realtime.feed import LogFeed

MAX_WAIT_S = 60
TicketId = Annotated[str, PathParameter(min_length=1, max_length=100, description="The ticket's id")]
LocationId = Annotated[str, PathParameter(min_length=1, max_length=100, description="An eDRV location id")]
ConnectorType = Annotated[str, msgspec.Meta(min_length=1, max_length=40)]
StationId = Annotated[str, msgspec.Meta(min_length=1, max_length=100)]


class JoinRequest(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    connector_types: Annotated[list[ConnectorType], msgspec.Meta(max_length=20)] | None = None
    """Any of these (e.g. ``CCS2``, ``Type2``, any casing); absent or empty: any type."""
    min_power_kw: Annotated[float, msgspec.Meta(ge=0, le=2000)] | None = None
    chargestation_ids: Annotated[list[StationId], msgspec.Meta(max_length=100)] | None = None
    """Only these chargestations; absent or empty: any at the location."""
    edrv_user_id: Annotated[str, msgspec.Meta(min_length=1, max_length=200)] | None = None
    """The driver's eDRV user, so their sessions are recognised (the token's ``edrv_user`` wins)."""


DRIVER_ERRORS = {"e401": "Missing, invalid or expired driver token", "e429": "Too many requests"}


@post(
    "/v1/locations/{location_id:str}/tickets",
    tags=["Queue"],
    summary="Join a location's queue",
    security=DRIVER_SECURITY,
    status_code=201,
    responses=problem_responses(
        e400="The body is malformed",
        **DRIVER_ERRORS,
        e404="No such location",
        e409="You already have a live ticket here (the problem names it), or the queue is full",
        e422="No connector at this location could ever meet the requirements",
    ),
)
async def join_queue(
    request: Request[object, object, State],
    driver: NamedDependency[Driver],
    queues: NamedDependency[Queues],
    location_id: LocationId,
    data: JSONBody[JoinRequest],
    idempotency_key: Annotated[
        str | None,
        HeaderParameter(
            name="Idempotency-Key",
            max_length=200,
            description="Retrying with the same key returns the ticket the first request created",
        ),
    ] = None,
) -> Response[TicketOut]:
    edrv_user = driver.edrv_user_id or data.edrv_user_id
    if driver.edrv_user_id and data.edrv_user_id and driver.edrv_user_id != data.edrv_user_id:
        raise problem(422, "Unprocessable Content", "edrv_user_id differs from the eDRV user of your token")
    requirements = requirements_of(data.connector_types, data.min_power_kw, data.chargestation_ids)
    now = datetime.now(UTC)
    async with queues.store.connection() as connection:
        earlier = (
            await queue_queries.ticket_by_idempotency_key(connection, driver.id, idempotency_key)
            if idempotency_key is not None
            else None
        )
        known = earlier is None and await queue_queries.location_known(connection, location_id)
        site = await queue_queries.site(connection, location_id, now) if known else None
    if earlier is not None:
        return await _replayed(queues, earlier, location_id, requirements, now)
    if site is None:
        raise problem(404, "Not Found", f"no location {location_id!r}")
    if not any(requirements.accepts(c.connector) for c in site.connectors):
        raise problem(
            422,
            "Unprocessable Content",
            "no connector at this location could ever meet these requirements",
            connectors=[
                {
                    "chargestation_id": c.connector.chargestation_id,
                    "type": c.connector.type,
                    "power_kw": c.connector.power_kw,
                }
                for c in site.connectors
            ],
        )
    command = JoinQueue(
        ticket_id=str(uuid.uuid4()),
        driver_id=driver.id,
        edrv_user_id=edrv_user,
        requirements=requirements,
        idempotency_key=idempotency_key,
    )
    try:
        outcome = await queues.execute(location_id, command, actor=f"driver:{driver.id}", now=now)
    except Rejected as rejected:
        mine = rejected.ticket
        if mine is not None and idempotency_key is not None and mine.idempotency_key == idempotency_key:
            return await _replayed(queues, mine, location_id, requirements, now)
        raise
    body = await _answer(request, queues, outcome, command.ticket_id, now)
    return Response(body, status_code=201, headers={"Location": f"/v1/tickets/{command.ticket_id}"})


@get(
    "/v1/tickets/{ticket_id:str}",
    tags=["Queue"],
    summary="One of your tickets, with its place in line and an estimate of the wait",
    description="Carries a strong ETag that changes with the ticket and with its place in line (not with "
    "the estimate alone). With `If-None-Match`, an unchanged ticket is a 304; add `wait=N` to hold the "
    "request until it changes or N seconds pass (long poll).",
    security=DRIVER_SECURITY,
    responses={
        304: ResponseSpec(None, description="The ticket has not changed (If-None-Match matched)"),
        **problem_responses(e400="`wait` is out of range", **DRIVER_ERRORS, e404="No such ticket of yours"),
    },
)
async def get_ticket(
    request: Request[object, object, State],
    driver: NamedDependency[Driver],
    queues: NamedDependency[Queues],
    feed: NamedDependency[LogFeed],
    ticket_id: TicketId,
    if_none_match: Annotated[str | None, HeaderParameter(name="If-None-Match", max_length=1000)] = None,
    wait: Annotated[
        int,
        QueryParameter(ge=0, le=MAX_WAIT_S, description="Seconds to wait for a change (needs If-None-Match)"),
    ] = 0,
) -> Response[TicketOut]:
    ticket = await own_ticket(queues.store, driver, ticket_id)
    if not (wait and if_none_match):
        view = await _current_ticket(request, queues, driver, ticket)
    else:
        async with feed.subscribe(streams=frozenset({stream_of(ticket.location_id)})) as changes:
            view = await _current_ticket(request, queues, driver, ticket)
            deadline = asyncio.get_running_loop().time() + wait
            while _matches(if_none_match, etag_of(view)):
                remaining = deadline - asyncio.get_running_loop().time()
                if remaining <= 0 or changes.closed:
                    break
                if await changes.next(remaining) is None and not changes.overflowed:
                    continue  # timed out (the loop ends) or woken without news
                changes.pending()
                view = await _current_ticket(request, queues, driver, ticket)
    etag = etag_of(view)
    if if_none_match and _matches(if_none_match, etag):
        return Response(b"", status_code=304, headers={"ETag": etag})  # type: ignore[arg-type]
    return Response(view, headers={"ETag": etag})


def etag_of(ticket: TicketOut) -> str:
    """Strong: the ticket's version and its place in line (the estimate alone does not make it news)."""
    return f'"{ticket.version}.{ticket.position or 0}.{ticket.ahead or 0}"'


def _matches(if_none_match: str, etag: str) -> bool:
    """RFC 9110: ``*`` or any listed tag, compared weakly (a ``W/`` prefix is ignored)."""
    tags = {tag.strip().removeprefix("W/") for tag in if_none_match.split(",")}
    return "*" in tags or etag in tags


async def _current_ticket(
    request: Request[object, object, State], queues: Queues, driver: Driver, ticket: Ticket
) -> TicketOut:
    now = datetime.now(UTC)
    state = await queues.load(ticket.location_id)
    fresh = state.tickets.get(ticket.id)  # the queue's own state is never behind the read model
    if fresh is None and ticket.live:
        # It ended a moment ago and the read model has not caught up yet: wait until it has.
        async with queues.store.connection() as connection:
            last = await connection.fetchval(
                "SELECT max(position) FROM events WHERE stream_id = $1", stream_of(ticket.location_id)
            )
        await settle(request.app.state, queues.store, last)
        ticket = await own_ticket(queues.store, driver, ticket.id)
    return await present_ticket(queues, fresh or ticket, state, now)


@post(
    "/v1/tickets/{ticket_id:str}/accept",
    tags=["Queue"],
    summary="Accept the offered connector: it is held for you while you drive there and plug in",
    security=DRIVER_SECURITY,
    status_code=200,
    responses=problem_responses(
        **DRIVER_ERRORS, e404="No such ticket of yours", e409="The ticket has no live offer to accept"
    ),
)
async def accept_offer(
    request: Request[object, object, State],
    driver: NamedDependency[Driver],
    queues: NamedDependency[Queues],
    ticket_id: TicketId,
) -> TicketOut:
    return await _act(request, queues, driver, ticket_id, AcceptOffer(ticket_id=ticket_id))


@post(
    "/v1/tickets/{ticket_id:str}/snooze",
    tags=["Queue"],
    summary="Let the next driver have this connector and keep your place (a limited number of times)",
    security=DRIVER_SECURITY,
    status_code=200,
    responses=problem_responses(
        **DRIVER_ERRORS, e404="No such ticket of yours", e409="The ticket has no live offer to snooze"
    ),
)
async def snooze_offer(
    request: Request[object, object, State],
    driver: NamedDependency[Driver],
    queues: NamedDependency[Queues],
    ticket_id: TicketId,
) -> TicketOut:
    return await _act(request, queues, driver, ticket_id, SnoozeOffer(ticket_id=ticket_id))


@delete(
    "/v1/tickets/{ticket_id:str}",
    tags=["Queue"],
    summary="Leave the queue (idempotent: an ended ticket is returned as it ended)",
    security=DRIVER_SECURITY,
    status_code=200,
    responses=problem_responses(**DRIVER_ERRORS, e404="No such ticket of yours"),
)
async def leave_queue(
    request: Request[object, object, State],
    driver: NamedDependency[Driver],
    queues: NamedDependency[Queues],
    ticket_id: TicketId,
) -> TicketOut:
    return await _act(request, queues, driver, ticket_id, LeaveQueue(ticket_id=ticket_id))


async def _act(
    request: Request[object, object, State], queues: Queues, driver: Driver, ticket_id: str, command: Command
) -> TicketOut:
    ticket = await own_ticket(queues.store, driver, ticket_id)
    now = datetime.now(UTC)
    outcome = await queues.execute(ticket.location_id, command, actor=f"driver:{driver.id}", now=now)
    return await _answer(request, queues, outcome, ticket_id, now, fallback=ticket)


async def _answer(
    request: Request[object, object, State],
    queues: Queues,
    outcome: Outcome,
    ticket_id: str,
    now: datetime,
    *,
    fallback: Ticket | None = None,
) -> TicketOut:
    ticket = ticket_after(outcome, ticket_id) or fallback
    assert ticket is not None, "a command's own ticket is in its outcome or was read before it"
    if outcome.position is not None:
        await settle(request.app.state, queues.store, outcome.position)
    return await present_ticket(queues, ticket, outcome.state, now)


async def _replayed(
    queues: Queues,
    ticket: Ticket,
    location_id: str,
    requirements: Requirements,
    now: datetime,
) -> Response[TicketOut]:
    """The answer to a retried join: the ticket the first request created, as it is now."""
    if ticket.location_id != location_id or ticket.requirements != requirements:
        raise problem(
            422,
            "Unprocessable Content",
            "this Idempotency-Key was used for a different request",
            ticket_id=ticket.id,
        )
    state = await queues.load(location_id)
    body = await present_ticket(queues, state.tickets.get(ticket.id, ticket), state, now)
    return Response(
        body,
        status_code=201,
        headers={"Location": f"/v1/tickets/{ticket.id}", "Idempotent-Replayed": "true"},
    )


ROUTES = [join_queue, get_ticket, accept_offer, snooze_offer, leave_queue]
