"""A location's queue in public (anonymised), and the operators' controls: policy, pause, remove."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated

import msgspec
from litestar import Request, get, post, put
from litestar.datastructures import State
from litestar.di import NamedDependency
from litestar.params import JSONBody

from service.api.auth import ADMIN_SECURITY, require_admin
from service.api.problems import problem, problem_responses
from service.api.ticket_out import OfferOut, RequirementsOut, TicketOut, offer_out, requirements_out
from service.api.ticket_reads import present_ticket, settle
from service.api.tickets import LocationId, TicketId
from service.dispatch.queues import Queues, ticket_after
from service.projections import queue_queries
from service.queue.commands import Command, PauseQueue, RemoveTicket, ResumeQueue, SetQueuePolicy
from service.queue.model import LIVE, Policy, TicketStatus

ENDED_WINDOW = timedelta(hours=24)
Seconds = Annotated[int, msgspec.Meta(ge=1, le=86_400)]


class LineEntry(msgspec.Struct, frozen=True):
    """A ticket on the public board: no id, no driver."""

    place: int
    status: TicketStatus
    requirements: RequirementsOut
    waited_s: int
    offer: OfferOut | None


class FreeConnector(msgspec.Struct, frozen=True):
    chargestation_id: str
    connector_id: str
    type: str | None
    power_kw: float | None


class QueueBoard(msgspec.Struct, frozen=True):
    location_id: str
    paused: bool
    counts: dict[str, int]
    """Live tickets by status, and tickets that ended in the last 24 hours by how they ended."""
    line: list[LineEntry]
    offerable_connectors: list[FreeConnector]
    """Free right now and not offered to anyone."""


class PolicyOut(msgspec.Struct, frozen=True):
    location_id: str
    respond_within_s: int
    plug_in_within_s: int
    max_snoozes: int
    max_queue_length: int
    paused: bool


class PolicyChange(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Any of the fields; the others keep their values."""

    respond_within_s: Seconds | None = None
    plug_in_within_s: Seconds | None = None
    max_snoozes: Annotated[int, msgspec.Meta(ge=0, le=100)] | None = None
    max_queue_length: Annotated[int, msgspec.Meta(ge=1, le=10_000)] | None = None
    paused: bool | None = None


class Removal(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    reason: Annotated[str, msgspec.Meta(min_length=1, max_length=500)]


@get(
    "/v1/locations/{location_id:str}/queue",
    tags=["Queue"],
    summary="A location's queue: counts, the line (anonymised) and the free connectors",
    responses=problem_responses(e404="No such location"),
)
async def get_queue(queues: NamedDependency[Queues], location_id: LocationId) -> QueueBoard:
    await known_location(queues, location_id)
    return await queue_board(queues, location_id)


async def queue_board(queues: Queues, location_id: str) -> QueueBoard:
    """The public board of a location's queue, as it is now."""
    now = datetime.now(UTC)
    state = await queues.load(location_id)
    async with queues.store.connection() as connection:
        site = await queue_queries.site(connection, location_id, now, history=False)
        ended = await queue_queries.ended_counts(connection, location_id, now - ENDED_WINDOW)
    line = state.line()
    offered = {t.offer.spot for t in line if t.offer is not None}
    counts: dict[str, int] = {str(status): sum(t.status == status for t in line) for status in LIVE}
    counts.update(
        {status: ended.get(status, 0) for status in ("fulfilled", "no_show", "cancelled", "removed")}
    )
    return QueueBoard(
        location_id=location_id,
        paused=state.policy.paused,
        counts=counts,
        line=[
            LineEntry(
                place=place,
                status=ticket.status,
                requirements=requirements_out(ticket),
                waited_s=max(int((now - ticket.created_at).total_seconds()), 0),
                offer=offer_out(ticket),
            )
            for place, ticket in enumerate(line, 1)
        ],
        offerable_connectors=[
            FreeConnector(
                c.connector.chargestation_id, c.connector.connector_id, c.connector.type, c.connector.power_kw
            )
            for c in site.connectors
            if c.connector.state == "offerable" and c.connector.spot not in offered
        ],
    )


ADMIN_ERRORS = {"e401": "Missing or wrong admin token", "e404": "No such location"}


@get(
    "/v1/admin/locations/{location_id:str}/queue-policy",
    guards=[require_admin],
    security=ADMIN_SECURITY,
    tags=["Admin"],
    summary="A location's queue policy",
    responses=problem_responses(**ADMIN_ERRORS),
)
async def get_policy(queues: NamedDependency[Queues], location_id: LocationId) -> PolicyOut:
    await known_location(queues, location_id)
    return _policy_out(location_id, (await queues.load(location_id)).policy)


@put(
    "/v1/admin/locations/{location_id:str}/queue-policy",
    guards=[require_admin],
    security=ADMIN_SECURITY,
    tags=["Admin"],
    summary="Change a location's queue policy (any of its fields); returns the whole policy",
    responses=problem_responses(e400="A value is out of range", **ADMIN_ERRORS),
)
async def set_policy(
    queues: NamedDependency[Queues], location_id: LocationId, data: JSONBody[PolicyChange]
) -> PolicyOut:
    command = SetQueuePolicy(**msgspec.structs.asdict(data))
    return await _change_policy(queues, location_id, command)


@post(
    "/v1/admin/locations/{location_id:str}/queue/pause",
    guards=[require_admin],
    security=ADMIN_SECURITY,
    tags=["Admin"],
    summary="Pause a queue: no new offers (offers already made stand; drivers can still join)",
    status_code=200,
    responses=problem_responses(**ADMIN_ERRORS),
)
async def pause_queue(queues: NamedDependency[Queues], location_id: LocationId) -> PolicyOut:
    return await _change_policy(queues, location_id, PauseQueue())


@post(
    "/v1/admin/locations/{location_id:str}/queue/resume",
    guards=[require_admin],
    security=ADMIN_SECURITY,
    tags=["Admin"],
    summary="Resume a paused queue: free connectors are offered again at once",
    status_code=200,
    responses=problem_responses(**ADMIN_ERRORS),
)
async def resume_queue(queues: NamedDependency[Queues], location_id: LocationId) -> PolicyOut:
    return await _change_policy(queues, location_id, ResumeQueue())


@post(
    "/v1/admin/tickets/{ticket_id:str}/remove",
    guards=[require_admin],
    security=ADMIN_SECURITY,
    tags=["Admin"],
    summary="Remove a ticket from its queue, with a reason the driver sees",
    status_code=200,
    responses=problem_responses(
        e400="No reason given",
        e401="Missing or wrong admin token",
        e404="No such ticket",
        e409="The ticket has already ended",
    ),
)
async def remove_ticket(
    request: Request[object, object, State],
    queues: NamedDependency[Queues],
    ticket_id: TicketId,
    data: JSONBody[Removal],
) -> TicketOut:
    async with queues.store.connection() as connection:
        ticket = await queue_queries.ticket(connection, ticket_id)
    if ticket is None:
        raise problem(404, "Not Found", f"no ticket {ticket_id!r}")
    now = datetime.now(UTC)
    command = RemoveTicket(ticket_id=ticket_id, reason=data.reason)
    outcome = await queues.execute(ticket.location_id, command, actor="operator", now=now)
    if outcome.position is not None:
        await settle(request.app.state, queues.store, outcome.position)
    return await present_ticket(queues, ticket_after(outcome, ticket_id) or ticket, outcome.state, now)


async def _change_policy(queues: Queues, location_id: str, command: Command) -> PolicyOut:
    await known_location(queues, location_id)
    outcome = await queues.execute(location_id, command, actor="operator")
    return _policy_out(location_id, outcome.state.policy)


async def known_location(queues: Queues, location_id: str) -> None:
    """Raises a 404 problem for a location the read models have never heard of."""
    async with queues.store.connection() as connection:
        if not await queue_queries.location_known(connection, location_id):
            raise problem(404, "Not Found", f"no location {location_id!r}")


def _policy_out(location_id: str, policy: Policy) -> PolicyOut:
    return PolicyOut(location_id=location_id, **msgspec.structs.asdict(policy))


ROUTES = [get_queue, get_policy, set_policy, pause_queue, resume_queue, remove_ticket]
