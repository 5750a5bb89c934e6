"""The queue moves by itself: deadlines, faults, queue jumpers, pauses and operators, seen over HTTP."""

from __future__ import annotations

from typing import Any

from service.simulate.edrv import session_ended, session_started
from tests.api.conftest import Client
from tests.api.queue_site import (
    ADMIN,
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

POLICY = f"/v1/admin/locations/{LOCATION}/queue-policy"


async def short_windows(client: Client, **policy: Any) -> dict[str, Any]:
    response = await client.put(
        POLICY, json={"respond_within_s": 1, "plug_in_within_s": 1} | policy, headers=ADMIN
    )
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def test_an_unanswered_offer_is_snoozed_then_passed_on_and_the_ticket_removed_past_max_snoozes(
    client: Client,
) -> None:
    fast, ac = harbour()
    await open_site(client, fast, ac)
    await short_windows(client, max_snoozes=1)
    alice = await join(client, "alice", connector_types=["CCS2"])
    bob = await join(client, "bob", connector_types=["CCS2"])
    await post(client, fast.status("ccs", "Available"))
    snoozed = await ticket_until(client, alice, "alice", lambda t: t["snoozes_used"] == 1)
    assert snoozed["status"] in ("waiting", "offered")
    await ticket_until(client, bob, "bob", lambda t: t["snoozes_used"] >= 1 or t["status"] == "offered")
    removed = await ticket_until(client, alice, "alice", status_is("removed"))
    assert removed["reason"] == "no_answer_too_often"


async def test_a_driver_who_accepts_but_never_plugs_in_is_a_no_show_and_the_next_driver_is_offered(
    client: Client,
) -> None:
    fast, ac = harbour()
    await open_site(client, fast, ac)
    await short_windows(client, respond_within_s=60)
    alice = await join(client, "alice", connector_types=["CCS2"])
    bob = await join(client, "bob", connector_types=["CCS2"])
    await post(client, fast.status("ccs", "Available"))
    await ticket_until(client, alice, "alice", status_is("offered"))
    assert (
        await client.post(f"/v1/tickets/{alice['id']}/accept", headers=driver("alice"))
    ).status_code == 200
    gone = await ticket_until(client, alice, "alice", status_is("no_show"))
    assert (gone["reason"], gone["position"]) == ("no_show", None)
    offered = await ticket_until(client, bob, "bob", status_is("offered"))
    assert offered["offer"]["connector_id"] == "ccs"


async def test_a_fault_on_the_offered_connector_puts_the_driver_back_at_the_head_and_offers_the_next_free_one(
    client: Client,
) -> None:
    fast, ac = harbour()
    await open_site(client, fast, ac)
    alice = await join(client, "alice", connector_types=["CCS2", "CHADEMO"])
    bob = await join(client, "bob", connector_types=["CCS2", "CHADEMO"])
    await post(client, fast.status("ccs", "Available"))
    await ticket_until(client, alice, "alice", status_is("offered"))
    await post(client, fast.status("ccs", "Faulted"))
    back = await ticket_until(client, alice, "alice", status_is("waiting"))
    assert (back["reason"], back["position"]) == ("connector_faulted", 1)
    await post(client, fast.status("chademo", "Available"))
    offered = await ticket_until(client, alice, "alice", status_is("offered"))  # alice first, not bob
    assert offered["offer"]["connector_id"] == "chademo"
    assert (await client.get(f"/v1/tickets/{bob['id']}", headers=driver("bob"))).json()["status"] == "waiting"


async def test_a_station_going_offline_takes_back_its_offers(client: Client) -> None:
    fast, ac = harbour()
    await open_site(client, fast, ac)
    alice = await join(client, "alice", connector_types=["Type2"])
    await post(client, ac.status("t2", "Available"))
    await ticket_until(client, alice, "alice", status_is("offered"))
    await post(client, ac.offline_body())
    back = await ticket_until(client, alice, "alice", status_is("waiting"))
    assert back["reason"] == "station_offline"


async def test_a_queue_jumper_takes_the_offered_connector_and_the_driver_keeps_the_head_of_the_line(
    client: Client,
) -> None:
    fast, ac = harbour()
    await open_site(client, fast, ac)
    alice = await join(client, "alice", "edrv-alice", connector_types=["CCS2"])
    await join(client, "bob", "edrv-bob", connector_types=["CCS2"])
    await post(client, fast.status("ccs", "Available"))
    await ticket_until(client, alice, "alice", status_is("offered"))
    await post(client, fast.status("ccs", "Preparing"))  # someone plugs in: maybe alice, maybe not
    assert (await client.get(f"/v1/tickets/{alice['id']}", headers=driver("alice"))).json()[
        "status"
    ] == "offered"
    await post(client, session_started("jump-1", "st-fast", "ccs", "edrv-stranger"))
    back = await ticket_until(client, alice, "alice", status_is("waiting"))
    assert (back["reason"], back["position"]) == ("queue_jumper", 1)


async def test_a_driver_in_line_who_finds_a_free_connector_themselves_is_fulfilled(client: Client) -> None:
    fast, ac = harbour()
    await open_site(client, fast, ac)
    await client.post(f"/v1/admin/locations/{LOCATION}/queue/pause", headers=ADMIN)
    alice = await join(client, "alice", "edrv-alice")
    await post(client, session_started("own-1", "st-ac", "t2", "edrv-alice"))
    done = await ticket_until(client, alice, "alice", status_is("fulfilled"))
    assert done["session_id"] == "own-1"


async def test_a_paused_queue_offers_nothing_until_resumed(client: Client) -> None:
    fast, ac = harbour()
    await open_site(client, fast, ac)
    paused = await client.post(f"/v1/admin/locations/{LOCATION}/queue/pause", headers=ADMIN)
    assert (paused.status_code, paused.json()["paused"]) == (200, True)
    alice = await join(client, "alice", connector_types=["CCS2"])
    await post(client, fast.status("ccs", "Available"))
    board = await until(
        client, f"/v1/locations/{LOCATION}/queue", lambda b: len(b["offerable_connectors"]) == 1
    )
    assert board["paused"] is True
    assert (await client.get(f"/v1/tickets/{alice['id']}", headers=driver("alice"))).json()[
        "status"
    ] == "waiting"
    resumed = await client.post(f"/v1/admin/locations/{LOCATION}/queue/resume", headers=ADMIN)
    assert resumed.json()["paused"] is False
    await ticket_until(client, alice, "alice", status_is("offered"))


async def test_an_operator_removes_a_ticket_with_a_reason_the_driver_sees(client: Client) -> None:
    await open_site(client, *harbour())
    alice = await join(client, "alice")
    path = f"/v1/admin/tickets/{alice['id']}/remove"
    assert (await client.post(path, json={"reason": "blocked the bay"})).status_code == 401
    assert (await client.post(path, json={}, headers=ADMIN)).status_code == 400
    removed = await client.post(path, json={"reason": "blocked the bay"}, headers=ADMIN)
    assert (removed.status_code, removed.json()["status"], removed.json()["reason"]) == (
        200,
        "removed",
        "blocked the bay",
    )
    again = await client.post(path, json={"reason": "again"}, headers=ADMIN)
    assert (again.status_code, again.json()["code"]) == (409, "ticket-ended")
    assert (
        await client.post("/v1/admin/tickets/nope/remove", json={"reason": "x"}, headers=ADMIN)
    ).status_code == 404
    mine = await client.get(f"/v1/tickets/{alice['id']}", headers=driver("alice"))
    assert (mine.json()["status"], mine.json()["reason"]) == ("removed", "blocked the bay")


async def test_queue_policy_is_read_and_changed_field_by_field_and_validated(client: Client) -> None:
    await open_site(client, *harbour())
    assert (await client.get(POLICY)).status_code == 401
    assert (await client.get(POLICY, headers=ADMIN)).json() == {
        "location_id": LOCATION,
        "respond_within_s": 180,
        "plug_in_within_s": 600,
        "max_snoozes": 2,
        "max_queue_length": 200,
        "paused": False,
    }
    changed = await client.put(POLICY, json={"plug_in_within_s": 900, "max_snoozes": 0}, headers=ADMIN)
    assert changed.json() | {} == {
        "location_id": LOCATION,
        "respond_within_s": 180,
        "plug_in_within_s": 900,
        "max_snoozes": 0,
        "max_queue_length": 200,
        "paused": False,
    }
    for bad in ({"respond_within_s": 0}, {"max_queue_length": 0}, {"respond_within_s": "soon"}, {"other": 1}):
        response = await client.put(POLICY, json=bad, headers=ADMIN)
        assert response.status_code == 400, bad
    unknown = "/v1/admin/locations/nowhere/queue-policy"
    assert (await client.put(unknown, json={"max_snoozes": 1}, headers=ADMIN)).status_code == 404


async def test_a_full_queue_refuses_new_drivers(client: Client) -> None:
    await open_site(client, *harbour())
    await client.put(POLICY, json={"max_queue_length": 2}, headers=ADMIN)
    await join(client, "alice")
    await join(client, "bob")
    response = await client.post(f"/v1/locations/{LOCATION}/tickets", json={}, headers=driver("carol"))
    assert (response.status_code, response.json()["code"]) == (409, "queue-full")


async def test_the_public_board_shows_counts_the_anonymised_line_and_free_connectors(client: Client) -> None:
    fast, ac = harbour()
    await open_site(client, fast, ac)
    alice = await join(client, "alice", connector_types=["CCS2"])
    await join(client, "bob", connector_types=["Type2"])
    carol = await join(client, "carol")
    await client.delete(f"/v1/tickets/{carol['id']}", headers=driver("carol"))
    await post(client, fast.status("ccs", "Available"))
    await ticket_until(client, alice, "alice", status_is("offered"))
    await post(client, fast.status("chademo", "Available"))
    board = await until(
        client, f"/v1/locations/{LOCATION}/queue", lambda b: len(b["offerable_connectors"]) == 1, headers={}
    )
    assert board["counts"] == {
        "waiting": 1,
        "offered": 1,
        "held": 0,
        "fulfilled": 0,
        "no_show": 0,
        "cancelled": 1,
        "removed": 0,
    }
    assert [(e["place"], e["status"], e["requirements"]["connector_types"]) for e in board["line"]] == [
        (1, "offered", ["CCS2"]),
        (2, "waiting", ["TYPE2"]),
    ]
    assert board["line"][0]["offer"]["connector_id"] == "ccs"
    assert "id" not in board["line"][0]
    assert "driver_id" not in board["line"][0]
    assert board["offerable_connectors"] == [
        {"chargestation_id": "st-fast", "connector_id": "chademo", "type": "CHADEMO", "power_kw": 50.0}
    ]
    assert (await client.get("/v1/locations/nowhere/queue")).status_code == 404


async def test_a_waiting_ticket_gets_an_eta_range_from_the_sites_history(client: Client) -> None:
    from datetime import UTC, datetime, timedelta

    fast, ac = harbour()
    await open_site(client, fast, ac)
    now = datetime.now(UTC)
    for n in range(6):  # a history of 40-minute sessions with 2-minute hand-overs
        start = now - timedelta(hours=8) + timedelta(minutes=42 * n)
        await post(
            client, session_ended(f"old-{n}", "st-fast", "ccs", None, start, start + timedelta(minutes=40))
        )
    await post(client, session_started("now-1", "st-fast", "ccs", "edrv-x", now - timedelta(minutes=10)))
    await post(client, session_started("now-2", "st-fast", "chademo", "edrv-y", now - timedelta(minutes=30)))
    alice = await join(client, "alice", connector_types=["CCS2"])
    ticket = await ticket_until(client, alice, "alice", lambda t: t["eta"] is not None)
    assert 0 <= ticket["eta"]["low_s"] < ticket["eta"]["high_s"] <= 3 * 3600
