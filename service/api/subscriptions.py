"""Operators manage the app backends that receive signed webhooks of ticket changes (admin token)."""

from __future__ import annotations

import asyncio
import contextlib
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Annotated, Literal

import httpx
import msgspec
from litestar import Request, Router, delete, get, patch, post
from litestar.datastructures import State
from litestar.di import NamedDependency
from litestar.params import JSONBody, Parameter, QueryParameter

from service.api.auth import ADMIN_SECURITY, require_admin
from service.api.problems import MAX_POSITION, problem, problem_responses
from service.eventlog.store import EventStore
from service.outbound import subscriptions
from service.outbound.deliveries import DeliveryOut, DeliveryStatus, list_deliveries
from service.outbound.outbox import OUTBOX_CHANNEL
from service.outbound.subscriptions import Subscription, event_type_problem
from service.outbound.targets import TargetRefused, Unresolvable, check_url, resolve_allowed
from service.settings import Settings

if TYPE_CHECKING:
    import asyncpg

    Connection = asyncpg.Connection[asyncpg.Record]

Url = Annotated[str, msgspec.Meta(min_length=1, max_length=2048, examples=["https://app.example.com/hooks"])]
EventTypes = Annotated[
    list[Annotated[str, msgspec.Meta(min_length=1, max_length=100)]],
    msgspec.Meta(min_length=1, max_length=20, examples=[["ticket."], ["ticket.offered", "ticket.no_show"]]),
]
Description = Annotated[str, msgspec.Meta(max_length=500)]
SubscriptionId = Annotated[str, Parameter(max_length=100, description="The subscription's id")]
Health = Literal["healthy", "failing", "disabled"]
LONGEST_REPLAY = timedelta(days=31)
RESOLVE_TIMEOUT_S = 2.0


class NewSubscription(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    url: Url
    """http(s) only; private, loopback and link-local targets are refused (docs/webhooks.md)."""
    event_types: EventTypes = msgspec.field(default_factory=lambda: ["ticket."])
    """Prefixes of the event types to deliver: ``ticket.`` is every change of a ticket."""
    description: Description = ""


class SubscriptionChange(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Any of the fields; the others (and those given as null) keep their values."""

    url: Url | None = None
    event_types: EventTypes | None = None
    description: Description | None = None
    enabled: bool | None = None
    """``false`` stops deliveries (what was pending is cancelled); ``true`` re-enables a disabled endpoint."""


class SubscriptionOut(msgspec.Struct, frozen=True, kw_only=True):
    id: str
    url: str
    event_types: list[str]
    description: str
    enabled: bool
    health: Health
    """``failing``: its latest attempts failed (it is disabled after 24 h of that)."""
    disabled_reason: str | None
    failing_since: datetime | None
    last_success_at: datetime | None
    last_failure_at: datetime | None
    last_error: str | None
    pending_deliveries: int
    previous_secret_expires_at: datetime | None
    """While set and in the future, the previous secret signs beside the current one."""
    created_at: datetime
    updated_at: datetime


class CreatedSubscription(SubscriptionOut, frozen=True, kw_only=True):
    secret: str
    """Shown once: the key receivers verify signatures with (Standard Webhooks, ``whsec_...``)."""


class RotatedSecret(msgspec.Struct, frozen=True):
    secret: str
    """The new key, shown once. Deliveries are signed with it and the previous one until
    ``previous_secret_expires_at``."""
    previous_secret_expires_at: datetime


class ReplayRange(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    since: Annotated[datetime, msgspec.Meta(tz=True)]
    until: Annotated[datetime, msgspec.Meta(tz=True)]
    """Exclusive; events are chosen by when they happened."""


class Replayed(msgspec.Struct, frozen=True):
    enqueued: int


class DeliveryPage(msgspec.Struct, frozen=True):
    deliveries: list[DeliveryOut]
    next_before_id: int | None
    """Pass as ``before_id`` for older deliveries; null on the last page."""


ERRORS = {"e401": "Missing or wrong admin token", "e404": "No such subscription"}


@post(
    "/",
    summary="Register an app backend for signed webhooks of ticket changes; the secret is shown once",
    responses=problem_responses(
        e400="Malformed body", e401=ERRORS["e401"], e422="Refused URL or event types"
    ),
)
async def create_subscription(
    request: Request[object, object, State],
    store: NamedDependency[EventStore],
    data: JSONBody[NewSubscription],
) -> CreatedSubscription:
    url = await _allowed_url(request.app.state.settings, data.url)
    _check_event_types(data.event_types)
    async with store.connection() as connection:
        created = await subscriptions.create(
            connection, url=url, event_types=data.event_types, description=data.description, now=_now()
        )
    view = _out(created, 0)
    return CreatedSubscription(**msgspec.structs.asdict(view), secret=created.secret)


@get(
    "/",
    summary="Every subscription, with its health",
    responses=problem_responses(e401=ERRORS["e401"]),
)
async def list_subscriptions(store: NamedDependency[EventStore]) -> list[SubscriptionOut]:
    async with store.connection() as connection:
        found = await subscriptions.list_all(connection)
        pending = await subscriptions.pending_counts(connection, [s.id for s in found])
    return [_out(s, pending.get(s.id, 0)) for s in found]


@get(
    "/{subscription_id:str}",
    summary="One subscription",
    responses=problem_responses(**ERRORS),
)
async def get_subscription(
    store: NamedDependency[EventStore], subscription_id: SubscriptionId
) -> SubscriptionOut:
    async with store.connection() as connection:
        return await _view(connection, await subscriptions.get(connection, subscription_id), subscription_id)


@patch(
    "/{subscription_id:str}",
    summary="Change a subscription's URL, event types or description; enable or disable it",
    responses=problem_responses(e400="Malformed body", e422="Refused URL or event types", **ERRORS),
)
async def change_subscription(
    request: Request[object, object, State],
    store: NamedDependency[EventStore],
    subscription_id: SubscriptionId,
    data: JSONBody[SubscriptionChange],
) -> SubscriptionOut:
    changes = {name: value for name, value in msgspec.structs.asdict(data).items() if value is not None}
    if "url" in changes:
        changes["url"] = await _allowed_url(request.app.state.settings, changes["url"])
    if "event_types" in changes:
        _check_event_types(changes["event_types"])
    async with store.connection() as connection:
        changed = await subscriptions.change(connection, subscription_id, changes, _now())
        return await _view(connection, changed, subscription_id)


@delete(
    "/{subscription_id:str}",
    summary="Delete a subscription and its delivery history; nothing more is sent to it",
    responses=problem_responses(**ERRORS),
)
async def delete_subscription(store: NamedDependency[EventStore], subscription_id: SubscriptionId) -> None:
    async with store.connection() as connection:
        if not await subscriptions.delete(connection, subscription_id):
            raise _not_found(subscription_id)


@post(
    "/{subscription_id:str}/rotate-secret",
    status_code=200,
    summary="A new signing secret (shown once); the old one keeps signing beside it for 24 hours",
    responses=problem_responses(**ERRORS),
)
async def rotate_secret(store: NamedDependency[EventStore], subscription_id: SubscriptionId) -> RotatedSecret:
    async with store.connection() as connection:
        rotated = await subscriptions.rotate_secret(connection, subscription_id, _now())
    if rotated is None:
        raise _not_found(subscription_id)
    assert rotated.previous_secret_expires_at is not None
    return RotatedSecret(rotated.secret, rotated.previous_secret_expires_at)


@post(
    "/{subscription_id:str}/replay",
    status_code=202,
    summary="Deliver again the ticket events of a time range (same message ids, in order per ticket); "
    "on a disabled subscription they wait until it is enabled",
    responses=problem_responses(
        e400="Malformed body", e422="An empty, backwards or too long range", **ERRORS
    ),
)
async def replay(
    store: NamedDependency[EventStore], subscription_id: SubscriptionId, data: JSONBody[ReplayRange]
) -> Replayed:
    if data.until <= data.since:
        raise problem(422, "Unprocessable Content", "'until' must be after 'since'")
    if data.until - data.since > LONGEST_REPLAY:
        raise problem(422, "Unprocessable Content", f"a replay covers at most {LONGEST_REPLAY.days} days")
    async with store.connection() as connection, connection.transaction():
        found = await subscriptions.get(connection, subscription_id)
        if found is None:
            raise _not_found(subscription_id)
        enqueued = await subscriptions.replay(connection, found, data.since, data.until, _now())
        if enqueued:
            await connection.execute("SELECT pg_notify($1, '')", OUTBOX_CHANNEL)
    return Replayed(enqueued)


@get(
    "/{subscription_id:str}/deliveries",
    summary="A subscription's deliveries, newest first, with every attempt (status code, latency, error)",
    responses=problem_responses(**ERRORS),
)
async def deliveries(
    store: NamedDependency[EventStore],
    subscription_id: SubscriptionId,
    status: Annotated[
        DeliveryStatus | None, QueryParameter(description="Only deliveries in this state")
    ] = None,
    before_id: Annotated[
        int | None,
        QueryParameter(ge=1, le=MAX_POSITION, description="Only deliveries older than this one (paging)"),
    ] = None,
    limit: Annotated[int, QueryParameter(ge=1, le=200, description="At most this many")] = 50,
) -> DeliveryPage:
    async with store.connection() as connection:
        if await subscriptions.get(connection, subscription_id) is None:
            raise _not_found(subscription_id)
        found = await list_deliveries(
            connection, subscription_id, status=status, before_id=before_id, limit=limit
        )
    return DeliveryPage(found, found[-1].id if len(found) == limit else None)


async def _allowed_url(settings: Settings, url: str) -> str:
    """The URL if it may be posted to: http(s), and (unless allowed) no private, loopback or link-local
    address, by its literal or by what its name resolves to now. A name that does not resolve yet is
    accepted (its deliveries fail and are retried until it does); the sender checks the addresses again
    whenever it connects, because a name may resolve elsewhere later."""
    allow = settings.allow_private_webhook_targets
    try:
        checked = check_url(url, allow_private=allow)
        parsed = httpx.URL(checked)
        port = parsed.port or (443 if parsed.scheme == "https" else 80)
        with contextlib.suppress(Unresolvable, TimeoutError):  # a slow resolver: the sender checks anyway
            async with asyncio.timeout(RESOLVE_TIMEOUT_S):
                await resolve_allowed(parsed.host, port, allow_private=allow)
    except TargetRefused as exc:
        raise problem(422, "Unprocessable Content", str(exc)) from None
    return checked


def _check_event_types(event_types: list[str]) -> None:
    reason = event_type_problem(event_types)
    if reason is not None:
        raise problem(422, "Unprocessable Content", reason)


async def _view(connection: Connection, found: Subscription | None, subscription_id: str) -> SubscriptionOut:
    if found is None:
        raise _not_found(subscription_id)
    pending = await subscriptions.pending_counts(connection, [found.id])
    return _out(found, pending.get(found.id, 0))


def _out(found: Subscription, pending: int) -> SubscriptionOut:
    health: Health = "disabled" if not found.enabled else "failing" if found.failing_since else "healthy"
    return SubscriptionOut(
        id=found.id,
        url=found.url,
        event_types=found.event_types,
        description=found.description,
        enabled=found.enabled,
        health=health,
        disabled_reason=found.disabled_reason,
        failing_since=found.failing_since,
        last_success_at=found.last_success_at,
        last_failure_at=found.last_failure_at,
        last_error=found.last_error,
        pending_deliveries=pending,
        previous_secret_expires_at=found.previous_secret_expires_at,
        created_at=found.created_at,
        updated_at=found.updated_at,
    )


def _not_found(subscription_id: str) -> Exception:
    return problem(404, "Not Found", f"no subscription {subscription_id!r}")


def _now() -> datetime:
    return datetime.now(UTC)


# Every route here is an operator's: one router carries the guard, the security scheme and the tag.
ROUTER = Router(
    "/v1/admin/subscriptions",
    guards=[require_admin],
    security=ADMIN_SECURITY,
    tags=["Webhooks"],
    route_handlers=[
        create_subscription,
        list_subscriptions,
        get_subscription,
        change_subscription,
        delete_subscription,
        rotate_secret,
        replay,
        deliveries,
    ],
)
