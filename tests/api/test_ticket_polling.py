"""Polling a ticket: a strong ETag and 304 when unchanged (long polls: tests/e2e/test_live_updates.py,
as the in-process client cannot hold one request while sending another)."""

from __future__ import annotations

from tests.api.conftest import Client
from tests.api.queue_site import driver, harbour, join, open_site


async def test_a_ticket_carries_an_etag_and_an_unchanged_ticket_is_a_304(client: Client) -> None:
    await open_site(client, *harbour())
    ticket = await join(client, "alice")
    path, headers = f"/v1/tickets/{ticket['id']}", driver("alice")
    response = await client.get(path, headers=headers)
    etag = response.headers["etag"]
    assert etag == '"1.1.0"'  # version 1, first in line, nobody ahead
    unchanged = await client.get(path, headers=headers | {"If-None-Match": etag})
    assert (unchanged.status_code, unchanged.content, unchanged.headers["etag"]) == (304, b"", etag)
    for listed in (f'"x", {etag}', f"W/{etag}", "*"):
        assert (await client.get(path, headers=headers | {"If-None-Match": listed})).status_code == 304
    assert (await client.get(path, headers=headers | {"If-None-Match": '"0.0.0"'})).status_code == 200


async def test_the_etag_changes_when_the_place_in_line_does(client: Client) -> None:
    await open_site(client, *harbour())
    first = await join(client, "alice")
    second = await join(client, "bob")
    path, headers = f"/v1/tickets/{second['id']}", driver("bob")
    before = (await client.get(path, headers=headers)).headers["etag"]
    await client.delete(f"/v1/tickets/{first['id']}", headers=driver("alice"))
    after = await client.get(path, headers=headers | {"If-None-Match": before})
    assert (after.status_code, after.json()["position"]) == (200, 1)
    assert after.headers["etag"] != before
