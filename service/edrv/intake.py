"""Turn one authenticated eDRV delivery into an append to the event log.

The inbox key (source ``edrv``, the envelope ``_id``, sha256 of the raw body) is written in the same
transaction as the event, so a redelivery is recognised exactly, never stored twice and never lost.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime

import msgspec

from service.edrv.envelope import Envelope, stream_id_for
from service.eventlog.model import AppendResult, InboxKey, NewEvent
from service.eventlog.store import EventStore

SOURCE = "edrv"
SCHEMA_VERSION = 1


class DeliveryMetadata(msgspec.Struct, frozen=True, kw_only=True):
    """What we know about how an event reached us; stored as the event's ``metadata``."""

    source: str
    external_id: str
    object: str | None
    received_at: datetime
    signature_verified: bool
    schema_version: int = SCHEMA_VERSION


_encode = msgspec.json.Encoder().encode


async def record_delivery(
    store: EventStore,
    body: bytes,
    envelope: Envelope,
    resource_id: str | None,
    *,
    signature_verified: bool,
    received_at: datetime | None = None,
) -> AppendResult:
    received_at = received_at or datetime.now(UTC)
    metadata = DeliveryMetadata(
        source=SOURCE,
        external_id=envelope.id,
        object=envelope.object,
        received_at=received_at,
        signature_verified=signature_verified,
    )
    event = NewEvent(
        type=envelope.type,
        data=bytes(envelope.data),
        metadata=_encode(metadata),
        occurred_at=envelope.created_at or received_at,
    )
    inbox = InboxKey(
        source=SOURCE, external_id=envelope.id, payload_sha256=hashlib.sha256(body).digest(), body=body
    )
    return await store.append(stream_id_for(envelope, resource_id), [event], inbox=inbox)
