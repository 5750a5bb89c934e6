"""What every route gets, so that a new one cannot forget it: bounded and strictly decoded request bodies,
problem documents in its OpenAPI entry, and an honest ``Allow`` header on OPTIONS."""

from __future__ import annotations

import inspect
from collections.abc import Iterable
from typing import Any

import msgspec
from litestar import Controller, Router
from litestar.connection import ASGIConnection, Request
from litestar.handlers import HTTPRouteHandler
from litestar.handlers.base import BaseRouteHandler
from litestar.types import Message, Scope

from service.api.openapi_docs import ApiOperation
from service.api.problems import problem

MAX_JSON_BODY = 64 * 1024
"""Every request body but an eDRV delivery's (1 MiB, see webhooks.py): ours are a few hundred bytes."""


def harden(handlers: Iterable[object]) -> None:
    """Walk the route handlers (in routers and controllers too): each documents its errors as problem
    documents, and each that takes a body decodes it strictly."""
    for handler in handlers:
        if isinstance(handler, Router):
            harden(h for route in handler.routes for h in getattr(route, "route_handlers", ()))
        elif isinstance(handler, type) and issubclass(handler, Controller):
            harden(vars(handler).values())
        elif isinstance(handler, HTTPRouteHandler):
            if not issubclass(handler.operation_class, ApiOperation):
                handler.operation_class = ApiOperation
            if takes_body(handler) and strict_body not in (handler.guards or []):
                handler.guards = [*(handler.guards or []), strict_body]


def takes_body(handler: HTTPRouteHandler) -> bool:
    return "data" in inspect.signature(handler.fn).parameters


async def strict_body(connection: ASGIConnection[Any, Any, Any, Any], handler: BaseRouteHandler) -> None:
    """Guard: the body must be exactly what the schema says. Litestar converts bodies leniently (``"true"``
    for a boolean, ``1`` for a string), so a client would learn that wrong types work, and the document
    would lie; msgspec's own JSON decoding is strict."""
    assert isinstance(connection, Request), "only HTTP handlers take a body"
    body_type = handler.parsed_fn_signature.parameters["data"].annotation
    try:
        msgspec.convert(_integral(msgspec.json.decode(await connection.body())), body_type, strict=True)
    except (msgspec.ValidationError, msgspec.DecodeError, RecursionError) as exc:
        raise problem(400, "Bad Request", f"the body is not valid: {exc}") from None


def _integral(value: Any) -> Any:
    """JSON (and JSON Schema's ``integer``) has no integer type of its own: ``60.0`` is the integer 60."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, list):
        return [_integral(v) for v in value]
    if isinstance(value, dict):
        return {k: _integral(v) for k, v in value.items()}
    return value


async def allow_every_method(message: Message, scope: Scope) -> None:
    """``before_send``: Litestar 2's automatic OPTIONS answer lists only the methods of the first handler
    registered on a path (litestar-org/litestar#4169, fixed in 3); list every method the path has."""
    if scope.get("method") != "OPTIONS" or message["type"] != "http.response.start":
        return
    handler = scope.get("route_handler")
    if not isinstance(handler, HTTPRouteHandler) or handler.include_in_schema or message["status"] != 204:
        return
    methods: set[str] = set()
    routes = scope["litestar_app"].route_handler_method_map
    for path in handler.paths:
        methods.update(method for method in routes.get(path, {}) if method not in ("websocket", "asgi"))
    if methods:
        headers = [(k, v) for k, v in message.get("headers", []) if k.lower() != b"allow"]
        headers.append((b"allow", ", ".join(sorted(methods)).encode()))
        message["headers"] = headers
