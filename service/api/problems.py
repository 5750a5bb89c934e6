"""RFC 9457 problem details for every error the API returns, including the ones we did not foresee."""

from __future__ import annotations

import logging
from http import HTTPStatus
from typing import Any

import asyncpg
import msgspec
from litestar.openapi.datastructures import ResponseSpec
from litestar.plugins.problem_details import (
    ProblemDetailsConfig,
    ProblemDetailsException,
    ProblemDetailsPlugin,
)

from service.eventlog.model import ConcurrencyError, StoreUnavailable
from service.queue.decide import Rejected

log = logging.getLogger(__name__)

RETRY_AFTER_S = 5
MAX_POSITION = 2**53 - 1
"""The largest log position or row id a request may name: a larger number is a 400, not a 500 (they are
PostgreSQL bigints). Below 2**63 so that the bound is exact in a JSON number (a double): clients and
fuzzers reading the document's ``maximum`` as a double must not think 2**63 + 191 allowed."""

MINIMUM_ZERO = {"minimum": 0}
"""``schema_extra`` for optional parameters with ``ge=0``: Litestar leaves a zero bound out of its schema."""


class ProblemDetails(msgspec.Struct, frozen=True):
    """RFC 9457 problem details; some problems add members of their own (e.g. readiness fields)."""

    status: int
    title: str
    detail: str | None = None
    type: str | None = None
    instance: str | None = None


def problem_responses(**descriptions: str) -> dict[int, ResponseSpec]:
    """OpenAPI entries for error responses, e.g. ``problem_responses(e401="Bad token")``."""
    return {
        int(code[1:]): ResponseSpec(
            ProblemDetails,
            description=description or HTTPStatus(int(code[1:])).phrase,
            media_type="application/problem+json",
            generate_examples=False,
        )
        for code, description in descriptions.items()
    }


def problem(status: int, title: str, detail: str, **extra: Any) -> ProblemDetailsException:
    return ProblemDetailsException(status_code=status, title=title, detail=detail, extra=extra or None)


def _store_unavailable(exc: StoreUnavailable) -> ProblemDetailsException:
    return ProblemDetailsException(
        status_code=503,
        title="Service Unavailable",
        detail="the database is unavailable; please retry (a retried webhook is stored exactly once)",
        headers={"Retry-After": str(RETRY_AFTER_S)},
    )


def _concurrency_conflict(exc: ConcurrencyError) -> ProblemDetailsException:
    return problem(409, "Conflict", str(exc), stream_id=exc.stream_id, actual_version=exc.actual)


def _rejected(exc: Rejected) -> ProblemDetailsException:
    """A command the queue refuses in its current state; ``code`` says which rule, for apps to branch on."""
    extra: dict[str, Any] = {"code": exc.code}
    if exc.ticket is not None:
        extra.update(ticket_id=exc.ticket.id, ticket_url=f"/v1/tickets/{exc.ticket.id}")
    return problem(409, "Conflict", exc.detail, **extra)


def _unstorable_text(exc: asyncpg.CharacterNotInRepertoireError) -> ProblemDetailsException:
    """Text PostgreSQL cannot hold (a NUL character) in a parameter: nothing can match it, and it is the
    request's fault."""
    return problem(400, "Bad Request", "a parameter contains a character that cannot be stored (NUL)")


def _unexpected(exc: Exception) -> ProblemDetailsException:
    log.error("unhandled error", exc_info=exc)
    return problem(500, "Internal Server Error", "an unexpected error occurred; it has been logged")


def problem_details_plugin() -> ProblemDetailsPlugin:
    return ProblemDetailsPlugin(
        ProblemDetailsConfig(
            enable_for_all_http_exceptions=True,
            exception_to_problem_detail_map={
                StoreUnavailable: _store_unavailable,
                ConcurrencyError: _concurrency_conflict,
                Rejected: _rejected,
                asyncpg.CharacterNotInRepertoireError: _unstorable_text,
                Exception: _unexpected,
            },
        )
    )
