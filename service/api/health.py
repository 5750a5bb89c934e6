"""Liveness and readiness for load balancers and orchestrators."""

from __future__ import annotations

import asyncio

import msgspec
from litestar import Response, get
from litestar.di import NamedDependency
from litestar.plugins.prometheus import PrometheusController
from sqlalchemy.ext.asyncio import AsyncEngine

from service.api.problems import problem, problem_responses
from service.db.migrate import current_revision, head_revision

READY_TIMEOUT_S = 2.0


class Liveness(msgspec.Struct, frozen=True):
    status: str


class Readiness(msgspec.Struct, frozen=True):
    status: str
    database: bool
    migration: str | None
    head: str | None


@get("/health/live", tags=["Health"], summary="The process is up")
async def live() -> Liveness:
    return Liveness(status="ok")


@get(
    "/health/ready",
    tags=["Health"],
    summary="The database answers and its schema is at the latest migration",
    description="503 (problem+json with the same fields) when not ready.",
    responses=problem_responses(e503="Database unreachable or schema behind the latest migration"),
)
async def ready(engine: NamedDependency[AsyncEngine]) -> Readiness:
    head = head_revision()
    try:
        async with asyncio.timeout(READY_TIMEOUT_S), engine.connect() as connection:
            migration = await current_revision(connection)
    except Exception as exc:
        raise problem(
            503,
            "Not Ready",
            f"database unreachable: {type(exc).__name__}",
            database=False,
            migration=None,
            head=head,
        ) from None
    if migration != head:
        raise problem(
            503,
            "Not Ready",
            "database schema is not at the latest migration: run `chargeline migrate`",
            database=True,
            migration=migration,
            head=head,
        )
    return Readiness(status="ok", database=True, migration=migration, head=head)


class MetricsController(PrometheusController):
    """Litestar's Prometheus endpoint, documented as the text it serves (not as JSON)."""

    @get(
        media_type="text/plain",
        tags=["Health"],
        summary="Prometheus metrics in the text exposition format",
    )
    async def get(self) -> Response[bytes]:
        response: Response[bytes] = await PrometheusController.get.fn(self)
        return response
