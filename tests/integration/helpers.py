from __future__ import annotations

import hashlib
from datetime import UTC, datetime

import msgspec

from service.eventlog.model import InboxKey, NewEvent

T0 = datetime(2024, 5, 2, 9, 0, tzinfo=UTC)


def event(type: str = "thing.happened", **data: object) -> NewEvent:
    return NewEvent(type=type, data=msgspec.json.encode(data), metadata=b'{"source": "test"}', occurred_at=T0)


def delivery(external_id: str, body: bytes = b"{}") -> InboxKey:
    return InboxKey(
        source="test", external_id=external_id, payload_sha256=hashlib.sha256(body).digest(), body=body
    )
