"""The eDRV webhook envelope, decoded straight from the raw body, and the stream each delivery belongs to."""

from __future__ import annotations

import contextlib
from datetime import datetime

import msgspec

from service.edrv.timestamps import parse_timestamp


class Envelope(msgspec.Struct, frozen=True):
    """``{_id, object, type, data, createdAt}``. ``data`` stays raw: it is stored as eDRV sent it.

    Only ``_id``, ``type`` and ``data`` must be right; ``createdAt`` is read leniently (see
    ``occurred_at``) because a delivery must not be turned away over a timestamp format.
    """

    id: str = msgspec.field(name="_id")
    type: str
    data: msgspec.Raw
    object: str | None = None
    created_at: str | int | float | None = msgspec.field(default=None, name="createdAt")

    def occurred_at(self) -> datetime | None:
        """``createdAt`` as an aware datetime: ISO 8601 (no offset means UTC) or epoch s / ms."""
        return parse_timestamp(self.created_at)


class _ResourceRef(msgspec.Struct):
    """Just enough of ``data`` to route it; decoding into it also proves ``data`` is a JSON object."""

    id: msgspec.Raw = msgspec.field(default=msgspec.Raw(b""), name="_id")


_envelope_decoder = msgspec.json.Decoder(Envelope)
_resource_decoder = msgspec.json.Decoder(_ResourceRef)


class InvalidEnvelope(ValueError):
    """JSON, but not an eDRV envelope; the message says what is wrong."""


def decode_envelope(body: bytes) -> tuple[Envelope, str | None]:
    """Decode a delivery; return the envelope and the id of the resource in ``data`` (if it has one).

    Raises ``msgspec.DecodeError`` if the body is not JSON at all, ``InvalidEnvelope`` if it is JSON of
    the wrong shape.
    """
    try:
        envelope = _envelope_decoder.decode(body)
    except msgspec.ValidationError as exc:
        _require_json(body)  # typed decoding stops at the first wrong value: garbage after it is not JSON
        raise InvalidEnvelope(str(exc)) from exc
    except RecursionError:  # JSON nested deeper than any resource is: authentic junk, kept for operators
        raise InvalidEnvelope("the body is nested too deeply") from None
    if not envelope.id:
        raise InvalidEnvelope("`_id` must not be empty")
    if not envelope.type:
        raise InvalidEnvelope("`type` must not be empty")
    try:
        resource = _resource_decoder.decode(envelope.data)
    except msgspec.ValidationError:
        raise InvalidEnvelope("`data` must be an object") from None
    except RecursionError:
        raise InvalidEnvelope("`data` is nested too deeply") from None
    return envelope, _resource_id(resource.id)


def _require_json(body: bytes) -> None:
    """Raises ``msgspec.DecodeError`` unless ``body`` is JSON (quarantine keeps JSON, never garbage)."""
    with contextlib.suppress(RecursionError):  # too deep to check: refused as an envelope all the same
        msgspec.json.decode(body)


def _resource_id(raw: msgspec.Raw) -> str | None:
    """A string or number ``_id`` names the resource; anything else (absent, null, object) does not."""
    value = msgspec.json.decode(raw) if raw else None
    if isinstance(value, str) and value:
        return value
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    return None


# eDRV names resource kinds in the singular ("session"); the seed page's demo uses plural and legacy v1.0
# collection names. Both route to the same stream; the original string stays in the event's metadata.
_KINDS = {
    "chargestations": "chargestation",
    "sessions": "session",
    "locations": "location",
    "actions": "action",
    "connectors": "connector",
    "users": "user",
    "drivers": "user",
    "transactions": "session",
    "commands": "action",
    "organizations": "organization",
    "payments": "payment",
    "tokens": "token",
    "rates": "rate",
}


def resource_kind(envelope: Envelope) -> str:
    """The kind of resource a delivery is about: its ``object``, else the first part of its ``type``."""
    kind = (envelope.object or envelope.type.split(".", 1)[0]).strip().lower()
    return _KINDS.get(kind, kind) or "unknown"


def stream_id_for(envelope: Envelope, resource_id: str | None) -> str:
    """``chargestation-<id>``, ``session-<id>``, ``location-<id>``, ``action-<id>``, else ``<object>-<id>``.

    A resource without an ``_id`` of its own gets a stream named after the delivery id. Kinds that name
    Chargeline's own streams are prefixed, so a delivery can never write into a queue's stream.
    """
    kind = resource_kind(envelope)
    if kind in OWN_KINDS:
        kind = f"edrv_{kind}"
    return f"{kind}-{resource_id or envelope.id}"


OWN_KINDS = frozenset({"queue", "ticket"})
"""Stream kinds Chargeline writes itself (``queue-<location_id>``)."""
