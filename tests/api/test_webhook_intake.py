"""POST /webhooks/edrv through the real app: exact responses, and what lands in the log."""

from __future__ import annotations

import json
import random
import time
from pathlib import Path

import msgspec
import pytest
from litestar.testing import AsyncTestClient

from service.api.webhooks import MAX_WEBHOOK_BODY
from service.app import create_app
from service.edrv.signature import sign, signature_header, signed_payload
from tests.api.conftest import SECRET, Client, settings_for_tests
from tests.conftest import FIXTURES, Db, stored

STARTED = (FIXTURES / "session.started.json").read_bytes()


def signed(body: bytes, *, secret: str = SECRET, at: float | None = None) -> dict[str, str]:
    return {
        "edrv-signature": signature_header(secret, body, int(time.time() if at is None else at)),
        "content-type": "application/json",
    }


async def post(
    client: Client, body: bytes, headers: dict[str, str] | None = None
) -> tuple[int, bytes, dict[str, str]]:
    response = await client.post(
        "/webhooks/edrv", content=body, headers=headers or {"content-type": "application/json"}
    )
    return response.status_code, response.content, dict(response.headers)


def assert_problem(
    status: int, body: bytes, headers: dict[str, str], expected_status: int
) -> dict[str, object]:
    assert status == expected_status, body
    assert headers["content-type"] == "application/problem+json"
    problem: dict[str, object] = json.loads(body)
    assert problem["status"] == expected_status
    assert problem["title"]
    assert problem["detail"]
    return problem


async def test_a_delivery_is_answered_200_with_an_empty_body(client: Client) -> None:
    status, body, headers = await post(client, STARTED)
    assert status == 200
    assert body == b""
    assert headers["content-length"] == "0"


async def test_the_delivery_is_in_the_log_with_its_envelope_as_metadata(client: Client, db: Db) -> None:
    await post(client, STARTED)
    row = await db.fetchrow(
        "SELECT stream_id, version, type, data::text, metadata::text, occurred_at FROM events"
    )
    assert row is not None
    envelope = json.loads(STARTED)
    assert row["stream_id"] == "session-6601bb0000000000000000e1"
    assert row["version"] == 1
    assert row["type"] == "session.started"
    assert json.loads(row["data"]) == envelope["data"]
    metadata = json.loads(row["metadata"])
    assert metadata["source"] == "edrv"
    assert metadata["external_id"] == envelope["_id"]
    assert metadata["object"] == "session"
    assert metadata["signature_verified"] is False
    assert metadata["schema_version"] == 1
    assert metadata["received_at"]
    assert row["occurred_at"].isoformat().startswith(envelope["createdAt"][:19])


async def test_every_fixture_is_accepted_including_unknown_types(client: Client, db: Db) -> None:
    paths = sorted(FIXTURES.glob("*.json"))
    for path in paths:
        status, body, _ = await post(client, path.read_bytes())
        assert (status, body) == (200, b""), path.name
    assert await db.fetchval("SELECT count(*) FROM events") == len(paths)
    assert await db.fetchval("SELECT stream_id FROM events WHERE type = 'payment.created'") == (
        "payment-6601dd0000000000000000b1"
    )


async def test_the_one_day_scenario_leaves_fourteen_events(client: Client, db: Db) -> None:
    lines = (FIXTURES / "scenario.one-location-day.jsonl").read_bytes().splitlines()
    assert len(lines) == 15
    for line in lines:
        status, body, _ = await post(client, line)
        assert (status, body) == (200, b"")
    assert await db.fetchval("SELECT count(*) FROM events") == 14
    assert await db.fetchval("SELECT count(*) FROM inbox_conflicts") == 0


async def test_redelivery_answers_200_and_is_stored_once(client: Client, db: Db) -> None:
    assert (await post(client, STARTED))[:2] == (200, b"")
    assert (await post(client, STARTED))[:2] == (200, b"")
    assert await db.fetchval("SELECT count(*) FROM events") == 1


async def test_same_id_with_another_body_answers_200_and_is_kept_for_operators(
    client: Client, db: Db
) -> None:
    changed = STARTED.replace(b'"Started"', b'"Ended"')
    assert changed != STARTED
    await post(client, STARTED)
    assert (await post(client, changed))[:2] == (200, b"")
    assert await db.fetchval("SELECT count(*) FROM events") == 1
    assert bytes(await db.fetchval("SELECT body FROM inbox_conflicts")) == changed


async def test_a_body_that_is_not_json_gets_400_and_nothing_is_stored(client: Client, db: Db) -> None:
    status, body, headers = await post(client, b"this is not json")
    problem = assert_problem(status, body, headers, 400)
    assert "not JSON" in str(problem["detail"])
    assert await db.fetchval("SELECT count(*) FROM events") == 0
    assert await db.fetchval("SELECT count(*) FROM quarantine") == 0


async def test_json_that_is_not_an_envelope_gets_400_and_is_quarantined_raw(client: Client, db: Db) -> None:
    for bad in (b'{"type": "session.started", "data": {}}', b'{"_id": "x", "type": "t", "data": [1]}'):
        status, body, headers = await post(client, bad)
        assert_problem(status, body, headers, 400)
    rows = await db.fetch("SELECT source, reason, content_type, body FROM quarantine ORDER BY id")
    assert [bytes(row["body"]) for row in rows] == [
        b'{"type": "session.started", "data": {}}',
        b'{"_id": "x", "type": "t", "data": [1]}',
    ]
    assert rows[0]["source"] == "edrv"
    assert "_id" in rows[0]["reason"]
    assert rows[0]["content_type"] == "application/json"
    assert await db.fetchval("SELECT count(*) FROM events") == 0


async def test_json_postgres_cannot_hold_gets_400_and_is_quarantined(client: Client, db: Db) -> None:
    body = b'{"_id": "65b0000000000000000000aa", "type": "session.updated", "data": {"note": "\\u0000"}}'
    status, response, headers = await post(client, body)
    assert_problem(status, response, headers, 400)
    assert bytes(await db.fetchval("SELECT body FROM quarantine")) == body
    assert await db.fetchval("SELECT count(*) FROM events") == 0


async def test_a_body_over_one_mebibyte_gets_413(client: Client, db: Db) -> None:
    envelope = json.loads(STARTED)
    envelope["data"]["padding"] = "x" * MAX_WEBHOOK_BODY
    status, body, headers = await post(client, json.dumps(envelope).encode())
    assert_problem(status, body, headers, 413)
    assert await db.fetchval("SELECT count(*) FROM events") == 0


async def test_a_body_of_exactly_one_mebibyte_is_accepted(client: Client, db: Db) -> None:
    envelope = json.loads(STARTED)
    envelope["data"]["padding"] = ""
    size = len(json.dumps(envelope).encode())
    envelope["data"]["padding"] = "x" * (MAX_WEBHOOK_BODY - size)
    body = json.dumps(envelope).encode()
    assert len(body) == MAX_WEBHOOK_BODY
    assert (await post(client, body))[:2] == (200, b"")


async def test_signed_delivery_is_accepted_and_marked_verified(signed_client: Client, db: Db) -> None:
    status, body, _ = await post(signed_client, STARTED, signed(STARTED))
    assert (status, body) == (200, b"")
    metadata = json.loads(await db.fetchval("SELECT metadata::text FROM events"))
    assert metadata["signature_verified"] is True


async def test_legacy_sha256_signature_is_accepted(signed_client: Client) -> None:
    headers = {"edrv-signature": f"sha256={sign(SECRET, STARTED)}"}
    assert (await post(signed_client, STARTED, headers))[:2] == (200, b"")


async def test_unsigned_wrong_stale_or_malformed_signatures_get_401_and_store_nothing(
    signed_client: Client, db: Db
) -> None:
    cases = {
        "missing": {"content-type": "application/json"},
        "wrong secret": signed(STARTED, secret="not-the-secret"),
        "stale": signed(STARTED, at=time.time() - 3600),
        "malformed": {"edrv-signature": "v1=deadbeef"},
        "other body": signed(STARTED + b" "),
    }
    for case, headers in cases.items():
        status, body, response_headers = await post(signed_client, STARTED, headers)
        assert_problem(status, body, response_headers, 401), case
    # Junk is refused before it is even parsed: not stored, not quarantined.
    status, body, response_headers = await post(signed_client, b'{"not": "an envelope"}')
    assert_problem(status, body, response_headers, 401)
    assert await db.fetchval("SELECT count(*) FROM events") == 0
    assert await db.fetchval("SELECT count(*) FROM quarantine") == 0


async def test_database_unreachable_gets_503_never_200(tmp_path: Path) -> None:
    app = create_app(settings_for_tests(tmp_path), database_url="postgresql://nobody@127.0.0.1:1/none")
    async with AsyncTestClient(app=app) as client:
        status, body, headers = await post(client, STARTED)
        problem = assert_problem(status, body, headers, 503)
        assert headers["retry-after"]
        assert "please retry" in str(problem["detail"])
        status, body, headers = await post(client, b'{"_id": "x"}')  # quarantine needs the database too
        assert_problem(status, body, headers, 503)


async def test_exact_bytes_of_data_survive_as_json(client: Client, db: Db) -> None:
    loose = (FIXTURES / "session.updated.loose-types.json").read_bytes()
    await post(client, loose)
    stored = msgspec.json.decode((await db.fetchval("SELECT data::text FROM events")).encode())
    assert stored == json.loads(loose)["data"]


async def test_error_bodies_are_exact_problem_documents(signed_client: Client, tmp_path: Path) -> None:
    status, body, headers = await post(signed_client, STARTED, {"content-type": "application/json"})
    assert (status, headers["content-type"]) == (401, "application/problem+json")
    assert json.loads(body) == {
        "status": 401,
        "title": "Invalid Signature",
        "detail": "missing edrv-signature header",
    }
    oversized = b"{" + b" " * MAX_WEBHOOK_BODY + b"}"
    status, body, headers = await post(signed_client, oversized, signed(oversized))
    assert (status, headers["content-type"]) == (413, "application/problem+json")
    assert json.loads(body) == {
        "status": 413,
        "title": "Request Entity Too Large",
        "detail": "Request Entity Too Large",
    }
    status, body, headers = await post(signed_client, b"{oops", signed(b"{oops"))
    assert (status, headers["content-type"]) == (400, "application/problem+json")
    assert json.loads(body) == {
        "status": 400,
        "title": "Malformed JSON",
        "detail": "the body is not JSON: JSON is malformed: object keys must be strings (byte 1)",
    }
    app = create_app(settings_for_tests(tmp_path), database_url="postgresql://nobody@127.0.0.1:1/none")
    async with AsyncTestClient(app=app) as unreachable:
        status, body, headers = await post(unreachable, STARTED)
    assert (status, headers["content-type"], headers["retry-after"]) == (503, "application/problem+json", "5")
    assert json.loads(body) == {
        "status": 503,
        "title": "Service Unavailable",
        "detail": "the database is unavailable; please retry (a retried webhook is stored exactly once)",
    }


async def test_an_unreadable_created_at_is_kept_in_metadata_not_refused(client: Client, db: Db) -> None:
    envelope = json.loads(STARTED)
    envelope["createdAt"] = "yesterday at noon"
    status, body, _ = await post(client, json.dumps(envelope).encode())
    assert (status, body) == (200, b"")
    row = await db.fetchrow("SELECT metadata::text, occurred_at, recorded_at FROM events")
    assert row is not None
    assert json.loads(row["metadata"])["created_at"] == "yesterday at noon"
    assert abs((row["occurred_at"] - row["recorded_at"]).total_seconds()) < 60  # fell back to receipt time


async def test_random_bytes_get_400_and_only_what_is_json_is_kept_in_quarantine(
    client: Client, db: Db
) -> None:
    generator = random.Random(20261129)
    bodies = [generator.randbytes(generator.randint(1, 4096)) for _ in range(40)]
    bodies += [b"\x00", b"\xff\xfe{", b"{}" * 1000, b"null", b"12", b'"_id"', b"[]", b"\xef\xbb\xbf{}"]
    for body in bodies:
        status, response, headers = await post(client, body)
        assert_problem(status, response, headers, 400)
    assert await db.fetchval("SELECT count(*) FROM events") == 0
    for (kept,) in await db.fetch("SELECT body FROM quarantine"):
        msgspec.json.decode(bytes(kept))  # quarantine holds authentic JSON only, never garbage


async def test_every_truncation_of_a_delivery_gets_400_and_stores_nothing(client: Client, db: Db) -> None:
    for cut in range(1, len(STARTED) - 1, 7):
        status, response, headers = await post(client, STARTED[:cut])
        assert_problem(status, response, headers, 400)
    assert await stored(db) == (0, 0, 0)
    assert (await post(client, STARTED))[:2] == (200, b"")  # the whole delivery is still taken after all that


@pytest.mark.parametrize("where", ["body", "data", "field"])
async def test_json_nested_a_hundred_thousand_deep_gets_400_and_is_quarantined_not_a_crash(
    client: Client, db: Db, where: str
) -> None:
    deep = b"[" * 100_000 + b"]" * 100_000
    body = {
        "body": deep,
        "data": b'{"_id": "deep-1", "type": "session.updated", "data": ' + deep + b"}",
        "field": b'{"_id": "deep-2", "type": "session.updated", "data": {"_id": "s", "x": ' + deep + b"}}",
    }[where]
    status, response, headers = await post(client, body)
    assert_problem(status, response, headers, 400)
    assert await stored(db) == (0, 0, 1)
    assert bytes(await db.fetchval("SELECT body FROM quarantine")) == body


@pytest.mark.parametrize(
    "content_type",
    [None, "text/plain", "application/x-www-form-urlencoded", "application/xml", "multipart/form-data; b=x"],
)
async def test_a_delivery_is_judged_by_its_bytes_not_its_content_type(
    client: Client, db: Db, content_type: str | None
) -> None:
    headers = {"content-type": content_type} if content_type else {}
    response = await client.post("/webhooks/edrv", content=STARTED, headers=headers)
    assert (response.status_code, response.content) == (200, b"")
    response = await client.post("/webhooks/edrv", content=b"a=1&b=2", headers=headers)
    assert_problem(response.status_code, response.content, dict(response.headers), 400)
    assert await stored(db) == (1, 1, 0)


@pytest.mark.parametrize(
    ("header", "why"),
    [
        ("", "missing"),
        ("t=,v1=", "malformed"),
        ("t=abc,v1=00", "numeric"),
        ("t=1,t=2,v1=00", "numeric"),
        ("v1=" + "0" * 64, "numeric"),
        ("t=NOW", "no v1"),
        ("t=NOW,v1=" + "0" * 64, "does not match"),
        ("t=NOW,v1=zz\u00e9", "does not match"),
        ("t=NOW,v1=" + "a" * 10_000, "does not match"),
        ("sha256=" + "0" * 64, "does not match"),
        ("sha256=", "does not match"),
        ("t=FUTURE,v1=SIGNED", "away from now"),
        ("t=STALE,v1=SIGNED", "away from now"),
        ("t=STALE_MS,v1=SIGNED", "away from now"),
        ("t=NOW,v1=OTHER_SECRET", "does not match"),
    ],
)
async def test_missing_malformed_wrong_and_stale_signatures_get_401_and_store_nothing(
    signed_client: Client, db: Db, header: str, why: str
) -> None:
    now = int(time.time())
    stamps = {"NOW": now, "FUTURE": now + 3600, "STALE": now - 3600, "STALE_MS": (now - 3600) * 1000}
    for name in sorted(stamps, key=len, reverse=True):
        if f"t={name}," in header or header == f"t={name}":
            stamp = str(stamps[name])
            header = header.replace(f"t={name}", f"t={stamp}")
            header = header.replace("v1=SIGNED", f"v1={sign(SECRET, signed_payload(stamp, STARTED))}")
            header = header.replace("v1=OTHER_SECRET", f"v1={sign('other', signed_payload(stamp, STARTED))}")
    response = await signed_client.post(
        "/webhooks/edrv",
        content=STARTED,
        headers={b"edrv-signature": header.encode(), b"content-type": b"application/json"},
    )
    problem = assert_problem(response.status_code, response.content, dict(response.headers), 401)
    assert why in str(problem["detail"]), problem
    assert await stored(db) == (0, 0, 0)


async def test_a_replayed_signed_delivery_within_the_tolerance_is_stored_once(
    signed_client: Client, db: Db
) -> None:
    captured = signed(STARTED)
    for _ in range(3):
        assert (await post(signed_client, STARTED, captured))[:2] == (200, b"")
    assert await stored(db) == (1, 1, 0)


async def test_a_replayed_signed_delivery_past_the_tolerance_gets_401_and_stores_nothing(
    signed_client: Client, db: Db
) -> None:
    captured = signed(STARTED, at=time.time() - 301)  # signed just over the 300 s tolerance ago
    status, body, headers = await post(signed_client, STARTED, captured)
    assert_problem(status, body, headers, 401)
    assert await stored(db) == (0, 0, 0)
