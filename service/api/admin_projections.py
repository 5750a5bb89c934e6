"""Operators' view of the projections, and rebuilds by replay through the API."""

from __future__ import annotations

import asyncio
import logging
from typing import Annotated, Any

import msgspec
from litestar import Request, get, post
from litestar.di import NamedDependency
from litestar.params import PathParameter

from service.api.auth import ADMIN_SECURITY, require_admin
from service.api.problems import problem, problem_responses
from service.eventlog.store import EventStore
from service.projections.catalog import PROJECTIONS
from service.projections.rebuild import rebuild
from service.projections.status import ProjectionStatus, projection_statuses

log = logging.getLogger(__name__)


class ProjectionsOut(msgspec.Struct, frozen=True):
    head: int
    """The log's latest position."""
    projections: list[ProjectionStatus]
    rebuilding: list[str]
    """Rebuilds this process is running."""
    failed_rebuilds: dict[str, str]
    """The last rebuild this process ran of a projection, if it failed: why."""


class RebuildStarted(msgspec.Struct, frozen=True):
    name: str
    status: str


@get(
    "/v1/admin/projections",
    guards=[require_admin],
    security=ADMIN_SECURITY,
    tags=["Admin"],
    summary="Each projection's position, lag and skipped events",
    responses=problem_responses(e401="Missing or wrong admin token"),
)
async def list_projections(
    request: Request[Any, Any, Any], store: NamedDependency[EventStore]
) -> ProjectionsOut:
    head, statuses = await projection_statuses(store)
    failed: dict[str, str] = request.app.state.setdefault("failed_rebuilds", {})
    return ProjectionsOut(
        head=head, projections=statuses, rebuilding=sorted(_rebuilds(request)), failed_rebuilds=dict(failed)
    )


@post(
    "/v1/admin/projections/{name:str}/rebuild",
    status_code=202,
    guards=[require_admin],
    security=ADMIN_SECURITY,
    tags=["Admin"],
    summary="Rebuild a projection by replay beside the live one, then swap it in (in the background)",
    responses=problem_responses(
        e401="Missing or wrong admin token", e404="No such projection", e409="Already rebuilding here"
    ),
)
async def start_rebuild(
    request: Request[Any, Any, Any],
    store: NamedDependency[EventStore],
    name: Annotated[str, PathParameter(max_length=100)],
) -> RebuildStarted:
    projection = PROJECTIONS.get(name)
    if projection is None:
        raise problem(404, "Not Found", f"no projection {name!r}; there are: {', '.join(PROJECTIONS)}")
    running = _rebuilds(request)
    if name in running:
        raise problem(409, "Conflict", f"{name} is already being rebuilt")
    failed: dict[str, str] = request.app.state.setdefault("failed_rebuilds", {})
    failed.pop(name, None)
    task = asyncio.create_task(rebuild(store, projection), name=f"rebuild-{name}")
    running[name] = task
    task.add_done_callback(lambda done: _finished(running, failed, name, done))
    return RebuildStarted(name=name, status="rebuilding")


def _rebuilds(request: Request[Any, Any, Any]) -> dict[str, asyncio.Task[int]]:
    rebuilds: dict[str, asyncio.Task[int]] = request.app.state.setdefault("rebuilds", {})
    return rebuilds


def _finished(
    running: dict[str, asyncio.Task[int]], failed: dict[str, str], name: str, task: asyncio.Task[int]
) -> None:
    running.pop(name, None)
    if task.cancelled():
        failed[name] = "cancelled (the service stopped?)"
    elif (error := task.exception()) is not None:
        failed[name] = f"{type(error).__name__}: {error}"  # e.g. RebuildInProgress in another process
        log.error("rebuild of %s failed", name, exc_info=error)
    else:
        log.info("rebuild of %s swapped in at position %d", name, task.result())


ROUTES = [list_projections, start_rebuild]
