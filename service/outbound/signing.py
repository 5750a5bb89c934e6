"""Standard Webhooks signatures (https://www.standardwebhooks.com), made by the reference library.

``webhook-signature: v1,<base64 HMAC-SHA256 of "<webhook-id>.<webhook-timestamp>.<body>">``; while a
secret is being rotated both the new and the previous secret sign, space-separated, so a receiver that
still has the old secret keeps verifying.
"""

from __future__ import annotations

import base64
import secrets
from collections.abc import Sequence
from datetime import UTC, datetime

from standardwebhooks import Webhook

SECRET_PREFIX = "whsec_"


def new_secret() -> str:
    """A fresh signing secret in the Standard Webhooks form: ``whsec_`` + base64 of 32 random bytes."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(32)).decode()


def signing_keys(
    secret: str, previous_secret: str | None, previous_expires_at: datetime | None, now: datetime
) -> list[str]:
    """The secrets that sign now: the current one, and the previous one until its rotation overlap ends."""
    if previous_secret and previous_expires_at and now < previous_expires_at:
        return [secret, previous_secret]
    return [secret]


def signature_header(keys: Sequence[str], message_id: str, timestamp: datetime, body: bytes) -> str:
    """The ``webhook-signature`` value: one ``v1,<signature>`` per key, space-separated."""
    text = body.decode()
    return " ".join(Webhook(key).sign(message_id, timestamp, text) for key in keys)


def headers(keys: Sequence[str], message_id: str, timestamp: datetime, body: bytes) -> dict[str, str]:
    """Everything a delivery sends besides its body; the timestamp is the attempt's, in whole seconds."""
    moment = timestamp.astimezone(UTC).replace(microsecond=0)  # the library reads the time as UTC
    return {
        "content-type": "application/json",
        "user-agent": "Chargeline-Webhooks/1",
        "webhook-id": message_id,
        "webhook-timestamp": str(int(moment.timestamp())),
        "webhook-signature": signature_header(keys, message_id, moment, body),
    }
