"""Operators' webhook subscriptions through the app: create (secret once), read, change, rotate, replay,
deliveries; SSRF targets refused; and a driver's ticket changes reaching a real receiver, signed."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from litestar.testing import AsyncTestClient

from service.app import create_app
from service.simulate.edrv import session_started
from tests.api.conftest import Client, settings_for_tests
from tests.api.queue_site import ADMIN, driver, harbour, join, open_site, post, until
from tests.webhook_receiver import Receiver, running

BASE = "/v1/admin/subscriptions"
PUBLIC = "https://hooks.example.com/chargeline"  # never called: these tests' apps refuse private targets


async def create(client: Client, **body: Any) -> dict[str, Any]:
    response = await client.post(BASE, json={"url": PUBLIC} | body, headers=ADMIN)
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    async with running(Receiver()) as receiver:
        yield receiver


@pytest.fixture
async def open_client(database_url: str, tmp_path: Path) -> AsyncIterator[Client]:
    """The app allowed to post to private addresses, so it can reach the test's local receiver."""
    settings = settings_for_tests(tmp_path, allow_private_webhook_targets=True)
    async with AsyncTestClient(app=create_app(settings, database_url=database_url)) as client:
        yield client


async def test_every_subscription_endpoint_requires_the_admin_token(client: Client) -> None:
    calls = [
        ("POST", BASE),
        ("GET", BASE),
        ("GET", f"{BASE}/x"),
        ("PATCH", f"{BASE}/x"),
        ("DELETE", f"{BASE}/x"),
        ("POST", f"{BASE}/x/rotate-secret"),
        ("POST", f"{BASE}/x/replay"),
        ("GET", f"{BASE}/x/deliveries"),
    ]
    for method, path in calls:
        for headers in ({}, {"Authorization": "Bearer wrong"}):
            response = await client.request(method, path, headers=headers, json={})
            assert response.status_code == 401, (method, path, response.text)
            assert response.headers["content-type"].startswith("application/problem+json")


async def test_a_new_subscription_shows_its_secret_once(client: Client) -> None:
    created = await create(client, description="app backend")
    assert created["secret"].startswith("whsec_")
    assert created["event_types"] == ["ticket."]
    assert (created["enabled"], created["health"], created["pending_deliveries"]) == (True, "healthy", 0)
    shown = (await client.get(f"{BASE}/{created['id']}", headers=ADMIN)).json()
    assert "secret" not in shown
    assert shown["description"] == "app backend"
    listed = (await client.get(BASE, headers=ADMIN)).json()
    assert [s["id"] for s in listed] == [created["id"]]
    assert "secret" not in listed[0]


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("ftp://hooks.example.com/x", "http"),
        ("http://10.1.2.3/hooks", "private"),
        ("http://127.0.0.1:9000/hooks", "loopback"),
        ("http://localhost/hooks", "localhost"),
        ("http://169.254.169.254/latest/meta-data", "link-local"),
        ("http://[::1]/hooks", "loopback"),
        ("http://user:pass@hooks.example.com/x", "credentials"),
    ],
)
async def test_private_loopback_link_local_and_non_http_targets_are_refused(
    client: Client, url: str, says: str
) -> None:
    response = await client.post(BASE, json={"url": url}, headers=ADMIN)
    assert response.status_code == 422, response.text
    assert says in response.json()["detail"]
    assert (await client.get(BASE, headers=ADMIN)).json() == []


async def test_event_types_must_match_delivered_events(client: Client) -> None:
    unknown = await client.post(BASE, json={"url": PUBLIC, "event_types": ["station."]}, headers=ADMIN)
    assert unknown.status_code == 422
    assert "ticket.offered" in unknown.json()["detail"]  # lists what can be subscribed to
    empty = await client.post(BASE, json={"url": PUBLIC, "event_types": []}, headers=ADMIN)
    assert empty.status_code == 400
    extra = await client.post(BASE, json={"url": PUBLIC, "colour": "red"}, headers=ADMIN)
    assert extra.status_code == 400


async def test_changing_a_subscription_checks_the_new_values_and_keeps_the_rest(client: Client) -> None:
    created = await create(client, description="first")
    path = f"{BASE}/{created['id']}"
    changed = await client.patch(path, json={"event_types": ["ticket.offered"]}, headers=ADMIN)
    assert changed.status_code == 200, changed.text
    assert (changed.json()["event_types"], changed.json()["description"]) == (["ticket.offered"], "first")
    refused = await client.patch(path, json={"url": "http://192.168.0.10/"}, headers=ADMIN)
    assert refused.status_code == 422
    assert (await client.get(path, headers=ADMIN)).json()["url"] == PUBLIC
    disabled = (await client.patch(path, json={"enabled": False}, headers=ADMIN)).json()
    assert (disabled["enabled"], disabled["health"], disabled["disabled_reason"]) == (
        False,
        "disabled",
        "disabled by an operator",
    )
    enabled = (await client.patch(path, json={"enabled": True}, headers=ADMIN)).json()
    assert (enabled["enabled"], enabled["health"], enabled["disabled_reason"]) == (True, "healthy", None)
    missing = await client.patch(f"{BASE}/nope", json={"enabled": True}, headers=ADMIN)
    assert missing.status_code == 404


async def test_a_deleted_subscription_is_gone(client: Client) -> None:
    created = await create(client)
    assert (await client.delete(f"{BASE}/{created['id']}", headers=ADMIN)).status_code == 204
    assert (await client.get(f"{BASE}/{created['id']}", headers=ADMIN)).status_code == 404
    assert (await client.delete(f"{BASE}/{created['id']}", headers=ADMIN)).status_code == 404


async def test_rotating_gives_a_new_secret_while_the_old_one_signs_for_24_hours(client: Client) -> None:
    created = await create(client)
    response = await client.post(f"{BASE}/{created['id']}/rotate-secret", headers=ADMIN)
    assert response.status_code == 200, response.text
    rotated = response.json()
    assert rotated["secret"].startswith("whsec_")
    assert rotated["secret"] != created["secret"]
    overlap_ends = datetime.fromisoformat(rotated["previous_secret_expires_at"])
    assert abs(overlap_ends - (datetime.now(UTC) + timedelta(hours=24))) < timedelta(minutes=1)
    shown = (await client.get(f"{BASE}/{created['id']}", headers=ADMIN)).json()
    assert shown["previous_secret_expires_at"] == rotated["previous_secret_expires_at"]


async def test_replay_needs_an_ordered_bounded_range_with_time_zones(client: Client) -> None:
    created = await create(client)
    path = f"{BASE}/{created['id']}/replay"
    now = datetime.now(UTC)
    backwards = {"since": now.isoformat(), "until": (now - timedelta(hours=1)).isoformat()}
    assert (await client.post(path, json=backwards, headers=ADMIN)).status_code == 422
    too_long = {"since": (now - timedelta(days=40)).isoformat(), "until": now.isoformat()}
    assert (await client.post(path, json=too_long, headers=ADMIN)).status_code == 422
    naive = {"since": "2026-11-28T10:00:00", "until": "2026-11-28T11:00:00"}
    assert (await client.post(path, json=naive, headers=ADMIN)).status_code == 400
    day = {"since": (now - timedelta(days=1)).isoformat(), "until": now.isoformat()}
    # Also while disabled: the replayed messages then wait for it to be enabled.
    await client.patch(f"{BASE}/{created['id']}", json={"enabled": False}, headers=ADMIN)
    replayed = await client.post(path, json=day, headers=ADMIN)
    assert (replayed.status_code, replayed.json()) == (202, {"enqueued": 0})
    assert (await client.post(f"{BASE}/nope/replay", json=day, headers=ADMIN)).status_code == 404


async def test_a_drivers_ticket_changes_reach_the_app_backend_signed_and_are_listed_as_deliveries(
    open_client: Client, receiver: Receiver
) -> None:
    client = open_client
    created = await create(client, url=receiver.url)
    receiver.secrets = [created["secret"]]
    fast, ac = harbour()
    await open_site(client, fast, ac)
    ticket = await join(client, "alice", "edrv-alice", connector_types=["ccs2"])
    await post(client, fast.status("ccs", "Available"))
    await receiver.wait_for(2)
    accepted = await client.post(f"/v1/tickets/{ticket['id']}/accept", headers=driver("alice"))
    assert accepted.status_code == 200
    await post(client, session_started("sess-1", "st-fast", "ccs", "edrv-alice"))
    got = await receiver.wait_for(4)
    assert [(r.type, r.ticket["status"]) for r in got] == [
        ("ticket.joined", "waiting"),
        ("ticket.offered", "offered"),
        ("ticket.accepted", "held"),
        ("ticket.fulfilled", "fulfilled"),
    ]
    assert all(r.verified for r in got)
    assert {r.ticket["id"] for r in got} == {ticket["id"]}
    assert got[0].ticket["driver_id"] == "alice"
    assert got[0].ticket["edrv_user_id"] == "edrv-alice"

    path = f"{BASE}/{created['id']}/deliveries"
    page = await until(client, path, lambda b: all(d["status"] == "delivered" for d in b["deliveries"]))
    deliveries = page["deliveries"]
    assert [d["event_type"] for d in deliveries] == [
        "ticket.fulfilled",
        "ticket.accepted",
        "ticket.offered",
        "ticket.joined",
    ]
    assert [d["message_id"] for d in reversed(deliveries)] == [r.id for r in got]
    attempt = deliveries[0]["attempts"][0]
    assert (attempt["attempt"], attempt["status_code"], attempt["error"]) == (1, 204, None)
    assert attempt["latency_ms"] > 0
    beyond = await client.get(path, params={"before_id": 2**63}, headers=ADMIN)  # was a 500
    assert beyond.status_code == 400
    first_page = (await client.get(path, params={"limit": 3}, headers=ADMIN)).json()
    assert len(first_page["deliveries"]) == 3
    rest = await client.get(path, params={"before_id": first_page["next_before_id"]}, headers=ADMIN)
    assert [d["event_type"] for d in rest.json()["deliveries"]] == ["ticket.joined"]
    assert rest.json()["next_before_id"] is None

    # Replay the whole morning: the same four messages again, same ids, in order.
    now = datetime.now(UTC)
    replayed = await client.post(
        f"{BASE}/{created['id']}/replay",
        json={
            "since": (now - timedelta(hours=1)).isoformat(),
            "until": (now + timedelta(minutes=1)).isoformat(),
        },
        headers=ADMIN,
    )
    assert replayed.status_code == 202, replayed.text
    assert replayed.json() == {"enqueued": 4}
    again = await receiver.wait_for(8)
    assert [r.id for r in again[4:]] == [r.id for r in got]
    listed = await until(client, path, lambda b: [d["status"] for d in b["deliveries"]] == ["delivered"] * 8)
    assert [d["replay"] for d in listed["deliveries"]] == [True] * 4 + [False] * 4
    shown = (await client.get(f"{BASE}/{created['id']}", headers=ADMIN)).json()
    assert (shown["health"], shown["pending_deliveries"]) == ("healthy", 0)
    assert shown["last_success_at"] is not None
    metrics = (await client.get("/metrics")).text
    assert 'chargeline_webhook_attempts_total{outcome="delivered"}' in metrics
    assert "chargeline_webhook_attempt_seconds_count" in metrics
