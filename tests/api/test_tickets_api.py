"""Drivers' ticket endpoints through the app: authentication, ownership, every error, idempotency."""

from __future__ import annotations

import base64
import json
import time
import warnings
from pathlib import Path

import jwt
import pytest
from litestar.testing import AsyncTestClient

from service.api.drivers import mint_token
from service.app import create_app
from service.simulate.edrv import location_created
from tests.api.conftest import JWT_SECRET, Client, settings_for_tests
from tests.api.queue_site import (
    LOCATION,
    driver,
    harbour,
    join,
    open_site,
    post,
    status_is,
    ticket_until,
    until,
)


def _unsigned(claims: dict[str, object]) -> str:
    def part(value: dict[str, object]) -> str:
        return base64.urlsafe_b64encode(json.dumps(value).encode()).rstrip(b"=").decode()

    return f"{part({'alg': 'none', 'typ': 'JWT'})}.{part(claims)}."


def _same_key_other_alg() -> str:
    with warnings.catch_warnings():  # the test key is short for HS384, and that is beside the point
        warnings.simplefilter("ignore", jwt.warnings.InsecureKeyLengthWarning)
        return jwt.encode({"sub": "alice"}, JWT_SECRET, algorithm="HS384")


def _resigned_as_none(token: str) -> str:
    """A genuine token's claims under an ``alg: none`` header, signature dropped."""
    claims = jwt.decode(token, options={"verify_signature": False})
    return _unsigned(claims)


@pytest.mark.parametrize(
    ("authorization", "why"),
    [
        (None, "required"),
        ("Basic abc", "required"),
        ("Bearer not-a-jwt", "not valid"),
        (
            f"Bearer {jwt.encode({'sub': 'alice'}, 'another-secret-of-32-bytes-or-more', algorithm='HS256')}",
            "Signature",
        ),
        (f"Bearer {jwt.encode({'sub': 'alice', 'exp': int(time.time()) - 60}, JWT_SECRET)}", "expired"),
        (f"Bearer {_unsigned({'sub': 'alice'})}", "not valid"),
        (f"Bearer {jwt.encode({'exp': int(time.time()) + 60}, JWT_SECRET)}", "sub"),
        (f"Bearer {jwt.encode({'sub': 'alice'}, JWT_SECRET * 2, algorithm='HS512')}", "not valid"),
        (f"Bearer {_same_key_other_alg()}", "alg value is not allowed"),
        (f"Bearer {jwt.encode({'sub': 'alice', 'nbf': int(time.time()) + 600}, JWT_SECRET)}", "not yet"),
        (f"Bearer {jwt.encode({'sub': ''}, JWT_SECRET)}", "sub"),
        (f"Bearer {jwt.encode({'sub': 42}, JWT_SECRET)}", "not valid"),
        (f"Bearer {jwt.encode({'sub': 'a' * 201}, JWT_SECRET)}", "sub"),
        (f"Bearer {jwt.encode({'sub': 'alice', 'edrv_user': 7}, JWT_SECRET)}", "edrv_user"),
        (f"Bearer {jwt.encode({'sub': 'alice', 'exp': 'tomorrow'}, JWT_SECRET)}", "not valid"),
        (f"Bearer {_unsigned({'sub': 'alice'}).replace('none', 'None')}", "not valid"),
        (f"Bearer {_resigned_as_none(mint_token(JWT_SECRET, 'alice'))}", "not valid"),
        ("Bearer", "required"),
        ("Bearer  ", "required"),
        (f"Token {mint_token(JWT_SECRET, 'alice')}", "required"),
    ],
    ids=[
        "missing",
        "other-scheme",
        "garbage",
        "forged",
        "expired",
        "alg-none",
        "no-subject",
        "other-alg",
        "hs384-same-key",
        "future-nbf",
        "empty-subject",
        "numeric-subject",
        "long-subject",
        "numeric-edrv-user",
        "unreadable-exp",
        "alg-None",
        "valid-token-stripped-of-signature",
        "bearer-without-token",
        "bearer-blank",
        "valid-token-other-scheme",
    ],
)
async def test_driver_endpoints_refuse_missing_forged_expired_and_unsigned_tokens(
    client: Client, authorization: str | None, why: str
) -> None:
    headers = {"Authorization": authorization} if authorization else {}
    for method, path in (
        ("POST", f"/v1/locations/{LOCATION}/tickets"),
        ("GET", "/v1/tickets/t1"),
        ("POST", "/v1/tickets/t1/accept"),
        ("POST", "/v1/tickets/t1/snooze"),
        ("DELETE", "/v1/tickets/t1"),
        ("GET", "/v1/tickets/t1/events"),
    ):
        response = await client.request(method, path, headers=headers, json={} if method == "POST" else None)
        assert response.status_code == 401, (method, path, response.text)
        assert response.headers["content-type"] == "application/problem+json"
        assert response.headers["www-authenticate"].startswith("Bearer")
        assert why in response.json()["detail"]


async def test_joining_an_unknown_location_is_a_404(client: Client) -> None:
    response = await client.post("/v1/locations/nowhere/tickets", json={}, headers=driver("alice"))
    assert response.status_code == 404
    assert "nowhere" in response.json()["detail"]


async def test_joining_with_requirements_no_connector_there_could_meet_is_a_422_listing_the_connectors(
    client: Client,
) -> None:
    await open_site(client, *harbour())
    for body in ({"connector_types": ["GB/T"]}, {"min_power_kw": 350}, {"chargestation_ids": ["elsewhere"]}):
        response = await client.post(f"/v1/locations/{LOCATION}/tickets", json=body, headers=driver("alice"))
        assert response.status_code == 422, body
        problem = response.json()
        assert "could ever meet" in problem["detail"]
        assert {c["type"] for c in problem["connectors"]} == {"CCS2", "CHADEMO", "Type2"}


async def test_a_location_without_any_connector_yet_accepts_no_one(client: Client) -> None:
    await post(client, location_created(LOCATION))
    await until(client, f"/v1/locations/{LOCATION}", lambda body: body["id"] == LOCATION)
    response = await client.post(f"/v1/locations/{LOCATION}/tickets", json={}, headers=driver("alice"))
    assert response.status_code == 422


@pytest.mark.parametrize(
    "body",
    [
        {"connector_types": "CCS2"},
        {"connector_types": [""]},
        {"min_power_kw": -1},
        {"min_power_kw": "fast"},
        {"chargestation_ids": [1]},
        {"colour": "red"},
        {"connector_types": ["x"] * 21},
    ],
)
async def test_a_malformed_join_is_a_400_and_creates_nothing(client: Client, body: object) -> None:
    await open_site(client, *harbour())
    response = await client.post(f"/v1/locations/{LOCATION}/tickets", json=body, headers=driver("alice"))
    assert response.status_code == 400, response.text
    assert response.headers["content-type"] == "application/problem+json"
    board = (await client.get(f"/v1/locations/{LOCATION}/queue")).json()
    assert board["counts"]["waiting"] == 0


async def test_a_new_ticket_waits_in_line_with_its_place_and_normalised_requirements(client: Client) -> None:
    await open_site(client, *harbour())
    first = await join(client, "alice", connector_types=["ccs2"])
    second = await join(client, "bob", connector_types=["Type 2"], min_power_kw=11)
    third = await join(client, "carol", connector_types=["CCS2", "chademo"])
    assert first["requirements"] == {
        "connector_types": ["CCS2"],
        "min_power_kw": None,
        "chargestation_ids": [],
    }
    assert second["requirements"]["connector_types"] == ["TYPE2"]
    assert [(t["status"], t["position"]) for t in (first, second, third)] == [
        ("waiting", 1),
        ("waiting", 2),
        ("waiting", 3),
    ]
    # Ahead: only those who compete for a connector this driver can use (bob wants Type2 only).
    assert (second["ahead"], third["ahead"]) == (0, 1)
    assert third["offer"] is None
    assert third["version"] == 1
    fetched = await client.get(f"/v1/tickets/{third['id']}", headers=driver("carol"))
    assert fetched.status_code == 200
    assert fetched.json() == third | {"eta": fetched.json()["eta"]}


async def test_a_driver_cannot_see_or_touch_anyone_elses_ticket(database_url: str, tmp_path: Path) -> None:
    # Streams end after a second here: a stream wrongly opened to another driver ends and fails the test.
    settings = settings_for_tests(tmp_path, sse_lifetime_s=1, sse_keepalive_s=0.5)
    async with AsyncTestClient(app=create_app(settings, database_url=database_url)) as client:
        await _cannot_see_or_touch(client)


async def _cannot_see_or_touch(client: Client) -> None:
    await open_site(client, *harbour())
    ticket = await join(client, "alice")
    # Every driver endpoint on a ticket, found from the route table so that a new one is covered too.
    ticket_routes = [
        (method, path.replace("{ticket_id:str}", ticket["id"]))
        for path, handlers in client.app.route_handler_method_map.items()
        if path.startswith("/v1/tickets/{ticket_id:str}")
        for method in handlers
        if method not in ("OPTIONS", "HEAD")
    ]
    assert len(ticket_routes) >= 5
    poll = {"If-None-Match": '"1.1.0"'}
    for method, path in [*ticket_routes, ("GET", f"/v1/tickets/{ticket['id']}?wait=1")]:
        response = await client.request(method, path, headers=driver("mallory") | poll)
        assert response.status_code == 404, (method, path, response.text)
        assert response.headers["content-type"] == "application/problem+json"
        # The same driver id under another eDRV user is the same driver: still not mallory's ticket.
        response = await client.request(method, path, headers=driver("mallory", "edrv-alice"))
        assert response.status_code == 404, (method, path)
    assert (await client.get("/v1/tickets/no-such-ticket", headers=driver("alice"))).status_code == 404
    assert (await client.get(f"/v1/tickets/{ticket['id']}", headers=driver("alice"))).json()[
        "status"
    ] == "waiting"


async def test_a_second_live_ticket_at_the_same_location_is_refused_pointing_at_the_first(
    client: Client,
) -> None:
    await open_site(client, *harbour())
    first = await join(client, "alice")
    response = await client.post(f"/v1/locations/{LOCATION}/tickets", json={}, headers=driver("alice"))
    assert response.status_code == 409
    problem = response.json()
    assert (problem["code"], problem["ticket_id"], problem["ticket_url"]) == (
        "already-queued",
        first["id"],
        f"/v1/tickets/{first['id']}",
    )
    # Once the first has ended, the driver may join again.
    assert (await client.delete(f"/v1/tickets/{first['id']}", headers=driver("alice"))).status_code == 200
    assert (await join(client, "alice"))["id"] != first["id"]


async def test_a_retried_join_with_the_same_idempotency_key_returns_the_same_ticket(client: Client) -> None:
    await open_site(client, *harbour())
    headers = driver("alice") | {"Idempotency-Key": "join-42"}
    path = f"/v1/locations/{LOCATION}/tickets"
    first = await client.post(path, json={"connector_types": ["CCS2"]}, headers=headers)
    again = await client.post(path, json={"connector_types": ["CCS2"]}, headers=headers)
    assert (first.status_code, again.status_code) == (201, 201)
    assert again.json()["id"] == first.json()["id"]
    assert again.headers["idempotent-replayed"] == "true"
    # Even after the ticket ended, the key still names it; a different request under it is refused.
    await client.delete(f"/v1/tickets/{first.json()['id']}", headers=driver("alice"))
    later = await client.post(path, json={"connector_types": ["CCS2"]}, headers=headers)
    assert (later.status_code, later.json()["id"], later.json()["status"]) == (
        201,
        first.json()["id"],
        "cancelled",
    )
    different = await client.post(path, json={"connector_types": ["Type2"]}, headers=headers)
    assert different.status_code == 422
    assert "different request" in different.json()["detail"]


async def test_the_tokens_edrv_user_is_used_and_a_different_one_in_the_body_is_refused(
    client: Client,
) -> None:
    await open_site(client, *harbour())
    path = f"/v1/locations/{LOCATION}/tickets"
    response = await client.post(
        path, json={"edrv_user_id": "someone-else"}, headers=driver("alice", "edrv-a")
    )
    assert response.status_code == 422
    assert (await client.post(path, json={}, headers=driver("alice", "edrv-a"))).status_code == 201


async def test_accepting_or_snoozing_a_waiting_ticket_is_a_409_that_says_why(client: Client) -> None:
    await open_site(client, *harbour())
    ticket = await join(client, "alice")
    for action in ("accept", "snooze"):
        response = await client.post(f"/v1/tickets/{ticket['id']}/{action}", headers=driver("alice"))
        assert response.status_code == 409
        assert response.json()["code"] == "not-offered"
        assert "waiting" in response.json()["detail"]


async def test_leaving_is_idempotent_and_acting_on_a_left_ticket_is_a_409(client: Client) -> None:
    await open_site(client, *harbour())
    ticket = await join(client, "alice")
    first = await client.delete(f"/v1/tickets/{ticket['id']}", headers=driver("alice"))
    again = await client.delete(f"/v1/tickets/{ticket['id']}", headers=driver("alice"))
    assert (first.status_code, again.status_code) == (200, 200)
    assert first.json()["status"] == again.json()["status"] == "cancelled"
    assert again.json()["version"] == first.json()["version"] == 2
    accept = await client.post(f"/v1/tickets/{ticket['id']}/accept", headers=driver("alice"))
    assert (accept.status_code, accept.json()["code"]) == (409, "ticket-ended")


async def test_snoozing_passes_the_connector_to_the_next_driver_and_keeps_the_place(client: Client) -> None:
    fast, ac = harbour()
    await open_site(client, fast, ac)
    alice = await join(client, "alice", connector_types=["CCS2"])
    bob = await join(client, "bob", connector_types=["CCS2"])
    await post(client, fast.status("ccs", "Available"))
    await ticket_until(client, alice, "alice", status_is("offered"))
    snoozed = await client.post(f"/v1/tickets/{alice['id']}/snooze", headers=driver("alice"))
    assert snoozed.status_code == 200
    body = snoozed.json()
    assert (body["status"], body["snoozes_used"], body["snoozes_left"], body["position"]) == (
        "waiting",
        1,
        1,
        1,
    )
    assert body["snoozed_until"] is not None
    offered = await ticket_until(client, bob, "bob", status_is("offered"))
    assert offered["offer"]["connector_id"] == "ccs"


async def test_driver_endpoints_are_rate_limited_per_driver_however_many_tokens_they_hold(
    database_url: str, tmp_path: Path
) -> None:
    app = create_app(settings_for_tests(tmp_path, driver_rate_limit=5), database_url=database_url)
    tokens = [
        {"Authorization": f"Bearer {mint_token(JWT_SECRET, 'alice', ttl_s=3600 + n)}"} for n in range(3)
    ]
    assert len({t["Authorization"] for t in tokens}) == 3
    async with AsyncTestClient(app=app) as client:
        statuses = [(await client.get("/v1/tickets/x", headers=tokens[n % 3])).status_code for n in range(6)]
        assert statuses == [404] * 5 + [429]
        limited = await client.get("/v1/tickets/x", headers=tokens[2])
        assert limited.status_code == 429
        assert limited.headers["content-type"] == "application/problem+json"
        assert (await client.get("/v1/tickets/x", headers=driver("bob"))).status_code == 404  # own budget


async def test_invalid_tokens_share_their_client_address_budget(database_url: str, tmp_path: Path) -> None:
    app = create_app(settings_for_tests(tmp_path, driver_rate_limit=3), database_url=database_url)
    async with AsyncTestClient(app=app) as client:
        statuses = [
            (await client.get("/v1/tickets/x", headers={"Authorization": f"Bearer junk-{n}"})).status_code
            for n in range(4)
        ]
        assert statuses == [401, 401, 401, 429]
        assert (await client.get("/v1/tickets/x", headers=driver("bob"))).status_code == 404
