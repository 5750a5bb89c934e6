"""Operator authentication: ``Authorization: Bearer <CHARGELINE_ADMIN_TOKEN>``."""

from __future__ import annotations

import hmac
from typing import Any

from litestar.connection import ASGIConnection
from litestar.handlers.base import BaseRouteHandler

from service.api.problems import problem
from service.settings import Settings

ADMIN_SECURITY: list[dict[str, list[str]]] = [{"adminToken": []}]


def require_admin(connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler) -> None:
    settings: Settings = connection.app.state.settings
    challenge = {"WWW-Authenticate": 'Bearer realm="chargeline-admin"'}
    if not settings.admin_token:
        raise _unauthorized("the admin API is disabled: set CHARGELINE_ADMIN_TOKEN", challenge)
    scheme, _sep, token = connection.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(
        token.strip().encode(), settings.admin_token.encode()
    ):
        raise _unauthorized("a valid admin bearer token is required", challenge)


def _unauthorized(detail: str, headers: dict[str, str]) -> Exception:
    exc = problem(401, "Unauthorized", detail)
    exc.headers = headers
    return exc
