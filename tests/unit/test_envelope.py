"""Envelope decoding and stream routing, over every eDRV fixture as it is."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import msgspec
import pytest

from service.edrv.envelope import InvalidEnvelope, decode_envelope, resource_kind, stream_id_for
from tests.conftest import FIXTURES


def fixture_bodies() -> list[tuple[str, bytes]]:
    bodies = [(path.name, path.read_bytes()) for path in sorted(FIXTURES.glob("*.json"))]
    scenario = FIXTURES / "scenario.one-location-day.jsonl"
    for number, line in enumerate(scenario.read_bytes().splitlines(), start=1):
        bodies.append((f"{scenario.name}:{number}", line))
    return bodies


@pytest.mark.parametrize(("name", "body"), fixture_bodies(), ids=[name for name, _ in fixture_bodies()])
def test_every_fixture_decodes_with_its_data_kept_byte_for_byte(name: str, body: bytes) -> None:
    envelope, resource_id = decode_envelope(body)
    parsed = json.loads(body)
    assert envelope.id == parsed["_id"]
    assert envelope.type == parsed["type"]
    assert envelope.object == parsed.get("object")
    assert json.loads(bytes(envelope.data)) == parsed["data"]
    assert resource_id == parsed["data"].get("_id")
    occurred_at = envelope.occurred_at()
    assert occurred_at is not None
    assert occurred_at.isoformat(timespec="milliseconds").replace("+00:00", "Z") == parsed["createdAt"]


@pytest.mark.parametrize(
    ("fixture", "stream_id"),
    [
        ("chargestation.online.json", "chargestation-6601aa0000000000000000c1"),
        ("chargestation.connector_status.updated.faulted.json", "chargestation-6601aa0000000000000000c1"),
        ("session.started.json", "session-6601bb0000000000000000e1"),
        ("location.updated.json", "location-6601aa00000000000000001a"),
        ("action.set_charging_profile.accepted.json", None),
        ("unknown.payment.created.json", "payment-6601dd0000000000000000b1"),
    ],
)
def test_each_resource_gets_a_stream_of_its_own(fixture: str, stream_id: str | None) -> None:
    body = (FIXTURES / fixture).read_bytes()
    envelope, resource_id = decode_envelope(body)
    expected = stream_id or f"action-{json.loads(body)['data']['_id']}"
    assert stream_id_for(envelope, resource_id) == expected


def envelope_of(**fields: object) -> bytes:
    base: dict[str, object] = {
        "_id": "65b0000000000000000000ff",
        "type": "session.updated",
        "data": {"_id": "abc"},
        "createdAt": "2024-05-02T09:14:07.120Z",
    }
    base.update(fields)
    return json.dumps({k: v for k, v in base.items() if v is not ...}).encode()


@pytest.mark.parametrize(
    ("object_", "kind"),
    [("session", "session"), ("sessions", "session"), ("chargestations", "chargestation"), ("Users", "user")],
)
def test_plural_and_legacy_object_names_route_to_the_singular_stream(object_: str, kind: str) -> None:
    envelope, resource_id = decode_envelope(envelope_of(object=object_))
    assert resource_kind(envelope) == kind
    assert stream_id_for(envelope, resource_id) == f"{kind}-abc"


def test_missing_object_falls_back_to_the_type_prefix() -> None:
    envelope, resource_id = decode_envelope(envelope_of(type="rate.updated"))
    assert stream_id_for(envelope, resource_id) == "rate-abc"


@pytest.mark.parametrize(("object_", "type_"), [("queue", "queue.paused"), (None, "ticket.offered")])
def test_a_delivery_can_never_write_into_a_stream_of_chargelines_own(object_: str | None, type_: str) -> None:
    body = {"_id": "d1", "type": type_, "data": {"_id": "loc-1"}} | ({"object": object_} if object_ else {})
    envelope, resource_id = decode_envelope(json.dumps(body).encode())
    assert not stream_id_for(envelope, resource_id).startswith(("queue-", "ticket-"))


def test_resource_without_an_id_gets_a_stream_named_after_the_delivery() -> None:
    envelope, resource_id = decode_envelope(envelope_of(object="payment", data={"amount": 1}))
    assert resource_id is None
    assert stream_id_for(envelope, resource_id) == "payment-65b0000000000000000000ff"


@pytest.mark.parametrize(
    ("created_at", "occurred_at"),
    [
        ("2024-05-02T09:14:07.120Z", datetime(2024, 5, 2, 9, 14, 7, 120000, tzinfo=UTC)),
        ("2024-05-02T11:14:07+02:00", datetime(2024, 5, 2, 9, 14, 7, tzinfo=UTC)),
        ("2024-05-02T09:14:07", datetime(2024, 5, 2, 9, 14, 7, tzinfo=UTC)),  # no offset: UTC, not local
        (1714641247, datetime(2024, 5, 2, 9, 14, 7, tzinfo=UTC)),
        (1714641247120, datetime(2024, 5, 2, 9, 14, 7, 120000, tzinfo=UTC)),
        ("yesterday", None),
        (..., None),
    ],
)
def test_created_at_is_read_leniently_as_an_aware_time(
    created_at: object, occurred_at: datetime | None
) -> None:
    envelope, _ = decode_envelope(envelope_of(createdAt=created_at))
    assert envelope.occurred_at() == occurred_at


@pytest.mark.parametrize("resource_id", [{"$oid": "abc"}, None, True, ""])
def test_a_resource_id_that_is_not_a_string_or_number_routes_by_delivery(resource_id: object) -> None:
    envelope, found = decode_envelope(envelope_of(object="session", data={"_id": resource_id}))
    assert found is None
    assert stream_id_for(envelope, found) == "session-65b0000000000000000000ff"


def test_numeric_resource_id_is_kept_as_text() -> None:
    assert decode_envelope(envelope_of(data={"_id": 42}))[1] == "42"
    assert decode_envelope(envelope_of(data={"_id": 4.5}))[1] == "4.5"


@pytest.mark.parametrize(
    ("fields", "reason"),
    [
        ({"_id": ...}, "_id"),
        ({"_id": ""}, "_id"),
        ({"_id": 12}, "_id"),
        ({"type": ...}, "type"),
        ({"type": ""}, "type"),
        ({"data": ...}, "data"),
        ({"data": "a string"}, "data"),
        ({"data": [1, 2]}, "data"),
        ({"data": None}, "data"),
        ({"createdAt": {"when": "now"}}, "createdAt"),
    ],
)
def test_json_that_is_not_an_envelope_is_refused_with_the_reason(
    fields: dict[str, object], reason: str
) -> None:
    with pytest.raises(InvalidEnvelope, match=reason):
        decode_envelope(envelope_of(**fields))


@pytest.mark.parametrize("body", [b"[1, 2]", b'"text"', b"42", b"null"])
def test_json_of_the_wrong_kind_is_an_invalid_envelope(body: bytes) -> None:
    with pytest.raises(InvalidEnvelope):
        decode_envelope(body)


@pytest.mark.parametrize("body", [b"", b"not json", b'{"_id": "x"', b"\xff\xfe", b'{"_id": "x",}'])
def test_bytes_that_are_not_json_raise_a_decode_error(body: bytes) -> None:
    with pytest.raises(msgspec.DecodeError):
        decode_envelope(body)


def test_fixture_directory_is_complete() -> None:
    assert len(list(Path(FIXTURES).glob("*.json"))) == 15


SHARED = Path(__file__).parents[3] / "shared" / "fixtures" / "edrv"


@pytest.mark.skipif(not SHARED.is_dir(), reason="no ../shared checkout beside this repository")
def test_the_vendored_fixtures_are_the_shared_ones_unchanged() -> None:
    # The suite carries its own copy so a clean clone runs anywhere; it must not drift from the source.
    names = sorted(path.name for path in SHARED.iterdir())
    assert sorted(path.name for path in FIXTURES.iterdir()) == names
    for name in names:
        assert (FIXTURES / name).read_bytes() == (SHARED / name).read_bytes(), name
