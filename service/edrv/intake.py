"""Take one eDRV delivery from raw bytes to a committed event in the log.

Order matters: the signature is checked before anything is parsed or stored, so an unauthenticated body
costs nothing and leaves nothing behind. The inbox key (source ``edrv``, the envelope ``_id``, sha256 of
the raw body) is written in the same transaction as the event, so a redelivery is recognised exactly,
never stored twice and never lost.
"""

from __future__ import annotations

import hashlib
import logging
from datetime import UTC, datetime
from typing import NoReturn

import msgspec

from service.edrv.envelope import InvalidEnvelope, decode_envelope, stream_id_for
from service.edrv.signature import verify_signature
from service.eventlog.model import (
    Appended,
    AppendResult,
    Duplicate,
    InboxKey,
    NewEvent,
    UnstorableEvent,
)
from service.eventlog.store import EventStore

log = logging.getLogger(__name__)

SOURCE = "edrv"
SCHEMA_VERSION = 1


class DeliveryMetadata(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """What we know about how an event reached us; stored as the event's ``metadata``."""

    source: str
    external_id: str
    object: str | None
    received_at: datetime
    signature_verified: bool
    schema_version: int
    created_at: str | int | float | None = None
    """eDRV's ``createdAt`` as sent, kept only when it could not be read as a time."""


class NotJson(ValueError):
    """The body is not JSON at all; nothing was kept."""


class Quarantined(ValueError):
    """Authentic but unusable (not an envelope, or JSON PostgreSQL cannot hold): kept raw for operators."""


_encode = msgspec.json.Encoder().encode


class EdrvIntake:
    def __init__(
        self, store: EventStore, *, secret: str | None, tolerance_s: int, log_deliveries: bool = False
    ) -> None:
        self._store = store
        self._secret = secret
        self._tolerance_s = tolerance_s
        self._log_deliveries = log_deliveries
        """A line per stored delivery: off by default, since it costs ~13 % of ingest (``bench ingest``)."""

    async def receive(self, body: bytes, *, signature: str | None, content_type: str | None) -> AppendResult:
        """Store ``body``; return once committed (or recognised as already stored).

        Raises ``SignatureError`` (nothing stored), ``NotJson`` (nothing stored), ``Quarantined`` (kept
        raw in quarantine) or ``StoreUnavailable`` (nothing stored; the sender should retry).
        """
        if self._secret is not None:
            verify_signature(signature, body, secret=self._secret, tolerance_s=self._tolerance_s)
        try:
            envelope, resource_id = decode_envelope(body)
        except InvalidEnvelope as exc:
            await self._quarantine(body, content_type, f"not an eDRV webhook envelope: {exc}")
        except msgspec.DecodeError as exc:
            raise NotJson(f"the body is not JSON: {exc}") from None
        received_at = datetime.now(UTC)
        occurred_at = envelope.occurred_at()
        metadata = DeliveryMetadata(
            source=SOURCE,
            external_id=envelope.id,
            object=envelope.object,
            received_at=received_at,
            signature_verified=self._secret is not None,
            schema_version=SCHEMA_VERSION,
            created_at=envelope.created_at if occurred_at is None else None,
        )
        event = NewEvent(
            type=envelope.type,
            data=bytes(envelope.data),
            metadata=_encode(metadata),
            occurred_at=occurred_at or received_at,
        )
        inbox = InboxKey(
            source=SOURCE, external_id=envelope.id, payload_sha256=hashlib.sha256(body).digest(), body=body
        )
        stream_id = stream_id_for(envelope, resource_id)
        try:
            result = await self._store.append(stream_id, [event], inbox=inbox)
        except UnstorableEvent as exc:
            await self._quarantine(body, content_type, str(exc), webhook_id=envelope.id)
        if self._log_deliveries and log.isEnabledFor(logging.INFO):
            outcome, position = _outcome(result)
            log.info(
                "webhook %s",
                outcome,
                extra={
                    "webhook_id": envelope.id,
                    "event_type": envelope.type,
                    "stream_id": stream_id,
                    "position": position,
                },
            )
        return result

    async def _quarantine(
        self, body: bytes, content_type: str | None, reason: str, *, webhook_id: str | None = None
    ) -> NoReturn:
        row = await self._store.quarantine(source=SOURCE, reason=reason, content_type=content_type, body=body)
        log.warning("webhook quarantined: %s", reason, extra={"webhook_id": webhook_id, "quarantine_id": row})
        raise Quarantined(reason)


def _outcome(result: AppendResult) -> tuple[str, int]:
    """What became of a delivery, and the log position that holds it."""
    if isinstance(result, Appended):
        return "stored", result.positions[0]
    if isinstance(result, Duplicate):
        return "duplicate", result.position
    return "conflict", result.original_position
