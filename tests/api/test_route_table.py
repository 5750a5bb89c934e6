"""Guarantees that hold for every route, checked by walking the app's route table and OpenAPI document, so a
route added later is covered without anyone remembering to: the admin API refuses everything but the admin
token, every request body and every parameter is bounded."""

from __future__ import annotations

import base64
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from litestar import Litestar
from litestar.handlers import HTTPRouteHandler
from litestar.testing import AsyncTestClient

from service.api.auth import require_admin
from service.api.hardening import MAX_JSON_BODY, takes_body
from service.api.webhooks import MAX_WEBHOOK_BODY
from service.app import create_app
from tests.api.conftest import ADMIN_TOKEN, Client, settings_for_tests
from tests.api.queue_site import ADMIN, driver


def routes(app: Litestar) -> Iterator[tuple[str, str, HTTPRouteHandler]]:
    """(method, path with every parameter filled in, handler) of every HTTP route we wrote."""
    for path, handlers in app.route_handler_method_map.items():
        for method, handler in handlers.items():
            if isinstance(handler, HTTPRouteHandler) and handler.include_in_schema and method != "HEAD":
                yield method, re.sub(r"\{[^}]+\}", "x", path), handler


def guarded_by_admin(handler: HTTPRouteHandler) -> bool:
    """``require_admin`` among its guards, or its router's or the app's."""
    return any(require_admin in (layer.guards or []) for layer in handler.ownership_layers)


def admin_routes(app: Litestar) -> list[tuple[str, str, HTTPRouteHandler]]:
    found = [route for route in routes(app) if guarded_by_admin(route[2])]
    # A route under /v1/admin, or documented as needing the admin token, that forgot the guard fails here.
    for method, path, handler in routes(app):
        documented = {name for requirement in handler.resolve_security() for name in requirement}
        if path.startswith("/v1/admin") or "adminToken" in documented:
            assert guarded_by_admin(handler), (method, path)
    return found


def _basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


REFUSED = {
    "no token": None,
    "wrong token": "Bearer not-the-admin-token",
    "admin token with a suffix": f"Bearer {ADMIN_TOKEN}x",
    "admin token's prefix": f"Bearer {ADMIN_TOKEN[:-1]}",
    "empty bearer": "Bearer ",
    "basic with the admin token": _basic("admin", ADMIN_TOKEN),
    "other scheme with the admin token": f"Token {ADMIN_TOKEN}",
    "admin token without a scheme": ADMIN_TOKEN,
    "a driver's token": driver("alice")["Authorization"],
    "a driver's token named like the admin": driver(ADMIN_TOKEN)["Authorization"],
}


async def test_every_admin_route_refuses_anything_but_the_admin_token(client: Client) -> None:
    found = admin_routes(client.app)
    assert len(found) >= 15  # subscriptions, events, projections, queues, sessions, the log's stream
    for method, path, _ in found:
        body: dict[str, Any] | None = {} if method in ("POST", "PUT", "PATCH") else None
        for case, authorization in REFUSED.items():
            headers = {"Authorization": authorization} if authorization is not None else {}
            response = await client.request(method, path, headers=headers, json=body)
            assert response.status_code == 401, (method, path, case, response.text)
            assert response.headers["content-type"] == "application/problem+json"
            assert response.headers["www-authenticate"].startswith("Bearer")
        # Nor in the query string.
        response = await client.request(method, f"{path}?token={ADMIN_TOKEN}", json=body)
        assert response.status_code == 401, (method, path)
        if not path.endswith("/stream"):  # the right token gets past the guard (a stream would not end)
            response = await client.request(method, path, headers=ADMIN, json=body)
            assert response.status_code != 401, (method, path, response.text)


async def test_with_no_admin_token_configured_the_admin_api_refuses_everyone(
    database_url: str, tmp_path: Path
) -> None:
    app = create_app(settings_for_tests(tmp_path, admin_token=None), database_url=database_url)
    async with AsyncTestClient(app=app) as client:
        for method, path, _ in admin_routes(app):
            for authorization in ("Bearer ", "Bearer None", "Bearer null", f"Bearer {ADMIN_TOKEN}"):
                response = await client.request(method, path, headers={"Authorization": authorization})
                assert response.status_code == 401, (method, path, authorization)


def credentials_for(handler: HTTPRouteHandler) -> dict[str, str]:
    schemes = {name for requirement in handler.resolve_security() for name in requirement}
    if "adminToken" in schemes:
        return {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    if "driverToken" in schemes:
        return driver("alice")
    return {}


async def test_every_route_bounds_its_request_body(client: Client) -> None:
    bodies = 0
    for method, path, handler in routes(client.app):
        limit = handler.resolve_request_max_body_size()
        expected = MAX_WEBHOOK_BODY if path == "/webhooks/edrv" else MAX_JSON_BODY
        assert limit == expected, (method, path, limit)
        if not takes_body(handler):
            continue
        bodies += 1
        oversized = b'{"description": "' + b"x" * MAX_JSON_BODY + b'"}'
        response = await client.request(
            method,
            path,
            content=oversized,
            headers=credentials_for(handler) | {"content-type": "application/json"},
        )
        assert response.status_code == 413, (method, path, response.text)
        assert response.headers["content-type"] == "application/problem+json"
    assert bodies >= 6


def _variants(schema: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """A schema and the alternatives it unions (Litestar writes constraints beside a ``oneOf``)."""
    alternatives = schema.get("oneOf") or schema.get("anyOf")
    if not alternatives:
        yield schema
        return
    outer = {k: v for k, v in schema.items() if k not in ("oneOf", "anyOf")}
    for alternative in alternatives:
        yield from _variants(outer | alternative)


def _unbounded(schema: dict[str, Any], components: dict[str, Any], where: str) -> Iterator[str]:
    """Where a schema lets a client send something unbounded: a number without a maximum, a string
    without a maximum length, a list without a maximum count, an object open to any field."""
    if "$ref" in schema:
        name = schema["$ref"].rsplit("/", 1)[-1]
        yield from _unbounded(components[name], components, f"{where}:{name}")
        return
    for variant in _variants(schema):
        kind = variant.get("type")
        if kind in ("integer", "number") and "maximum" not in variant:
            yield f"{where}: {kind} without a maximum"
        if kind == "string" and not {"maxLength", "enum", "format"} & variant.keys():
            yield f"{where}: string without a maxLength"
        if kind == "array":
            if "maxItems" not in variant:
                yield f"{where}: array without maxItems"
            yield from _unbounded(variant.get("items", {}), components, f"{where}[]")
        if kind == "object":
            if variant.get("additionalProperties") is not False:
                yield f"{where}: object open to any field"
            for name, prop in variant.get("properties", {}).items():
                yield from _unbounded(prop, components, f"{where}.{name}")


def test_every_parameter_and_request_body_is_bounded_in_the_document(tmp_path: Path) -> None:
    document = create_app(settings_for_tests(tmp_path)).openapi_schema.to_schema()
    components = document["components"]["schemas"]
    problems: list[str] = []
    checked = 0
    for path, item in document["paths"].items():
        for method, operation in item.items():
            for parameter in operation.get("parameters", []):
                checked += 1
                where = f"{method.upper()} {path} {parameter['in']} {parameter['name']}"
                problems.extend(_unbounded(parameter["schema"], components, where))
            if path == "/webhooks/edrv":
                continue  # eDRV's envelope, stored as sent: bounded by its 1 MiB body limit
            for media in operation.get("requestBody", {}).get("content", {}).values():
                checked += 1
                problems.extend(_unbounded(media["schema"], components, f"{method.upper()} {path} body"))
    assert checked >= 40
    assert problems == []


# For every route that takes a body, a body of the right shape with a value of the wrong JSON type, one that
# lenient decoding would coerce where it can ("true" for a boolean, a number for a date-time).
WRONG_TYPES: dict[tuple[str, str], dict[str, Any]] = {
    ("POST", "/v1/locations/x/tickets"): {"min_power_kw": "50"},
    ("PUT", "/v1/admin/locations/x/queue-policy"): {"paused": "true", "max_snoozes": "3"},
    ("POST", "/v1/admin/tickets/x/remove"): {"reason": 5},
    ("POST", "/v1/admin/subscriptions"): {"url": "https://app.example.com/hooks", "description": 7},
    ("PATCH", "/v1/admin/subscriptions/x"): {"enabled": "true"},
    ("POST", "/v1/admin/subscriptions/x/replay"): {"since": 1_700_000_000, "until": 1_700_003_600},
}


async def test_every_request_body_is_decoded_strictly(client: Client) -> None:
    with_bodies = {(method, path): h for method, path, h in routes(client.app) if takes_body(h)}
    assert set(with_bodies) == set(WRONG_TYPES)  # a new route with a body needs its case here
    for (method, path), body in WRONG_TYPES.items():
        headers = credentials_for(with_bodies[method, path])
        response = await client.request(method, path, json=body, headers=headers)
        assert response.status_code == 400, (method, path, response.text)
        assert "the body is not valid" in response.json()["detail"]
    # Integral numbers are integers in JSON: 60.0 is a valid number of seconds.
    response = await client.put(
        "/v1/admin/locations/x/queue-policy", json={"respond_within_s": 60.0}, headers=ADMIN
    )
    assert response.status_code == 404, response.text  # past validation: there is no location x
