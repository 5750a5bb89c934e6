"""The driver queue end to end through the app: webhooks move connectors, the dispatcher offers them."""

from __future__ import annotations

from service.simulate.edrv import session_started
from tests.api.conftest import Client
from tests.api.queue_site import driver, harbour, join, open_site, post, status_is, ticket_until


async def test_a_freed_connector_is_offered_to_the_waiting_driver_who_accepts_and_plugs_in(
    client: Client,
) -> None:
    fast, ac = harbour()
    await open_site(client, fast, ac)
    ticket = await join(client, "alice", "edrv-alice", connector_types=["ccs2"])
    assert (ticket["status"], ticket["position"], ticket["ahead"]) == ("waiting", 1, 0)

    await post(client, fast.status("ccs", "Available"))
    offered = await ticket_until(client, ticket, "alice", status_is("offered"))
    assert (offered["offer"]["chargestation_id"], offered["offer"]["connector_id"]) == ("st-fast", "ccs")

    accepted = await client.post(f"/v1/tickets/{ticket['id']}/accept", headers=driver("alice"))
    assert accepted.status_code == 200, accepted.text
    assert accepted.json()["status"] == "held"
    assert accepted.json()["offer"]["hold_until"] is not None

    await post(client, fast.status("ccs", "Preparing"))
    await post(client, session_started("sess-1", "st-fast", "ccs", "edrv-alice"))
    done = await ticket_until(client, ticket, "alice", status_is("fulfilled"))
    assert done["session_id"] == "sess-1"
