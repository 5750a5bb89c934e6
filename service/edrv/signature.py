"""Verification of the ``edrv-signature`` header.

eDRV's docs show ``t=<timestamp>,v1=<hex>`` without the exact signed string. Until a real delivery
confirms it we follow the Stripe / Standard Webhooks convention: HMAC-SHA256 of ``"<t>.<raw body>"``,
``t`` in seconds or milliseconds, rejected outside a tolerance window. The older documented form
``sha256=<hex>`` (HMAC-SHA256 of the raw body, no timestamp) is accepted as well.
"""

from __future__ import annotations

import hashlib
import hmac
import time

from service.edrv.timestamps import epoch_seconds


class SignatureError(Exception):
    """Why a delivery is not trusted; safe to show to the sender."""


def signed_payload(timestamp: str, body: bytes) -> bytes:
    """The exact bytes the ``v1`` signature covers. The only place that knows the construction."""
    return timestamp.encode("ascii") + b"." + body


def sign(secret: str, payload: bytes) -> str:
    return hmac.new(secret.encode(), payload, hashlib.sha256).hexdigest()


def signature_header(secret: str, body: bytes, timestamp: int) -> str:
    """Build a header the way eDRV does (used by tests, the simulator and the benchmarks)."""
    return f"t={timestamp},v1={sign(secret, signed_payload(str(timestamp), body))}"


def verify_signature(
    header: str | None,
    body: bytes,
    *,
    secret: str,
    tolerance_s: int,
    now: float | None = None,
) -> None:
    """Return if ``header`` proves ``body`` was signed with ``secret`` recently; else ``SignatureError``."""
    if not header:
        raise SignatureError("missing edrv-signature header")
    header = header.strip()
    if header.lower().startswith("sha256="):
        _require_match(sign(secret, body), [header[len("sha256=") :]])
        return
    fields: dict[str, list[str]] = {}
    for part in header.split(","):
        name, sep, value = part.strip().partition("=")
        if not sep or not value:
            raise SignatureError("malformed edrv-signature header: expected t=<timestamp>,v1=<hex>")
        fields.setdefault(name, []).append(value)
    timestamps, candidates = fields.get("t", []), fields.get("v1", [])
    if len(timestamps) != 1 or not (timestamps[0].isascii() and timestamps[0].isdigit()):
        raise SignatureError("malformed edrv-signature header: expected one numeric t=<timestamp>")
    if not candidates:
        raise SignatureError("edrv-signature header has no v1 signature")
    timestamp = timestamps[0]
    age = (time.time() if now is None else now) - epoch_seconds(int(timestamp))
    if abs(age) > tolerance_s:
        raise SignatureError(f"signature timestamp is {int(age)} s away from now (tolerance {tolerance_s} s)")
    _require_match(sign(secret, signed_payload(timestamp, body)), candidates)


def _require_match(expected_hex: str, candidates: list[str]) -> None:
    expected = expected_hex.encode()
    # Every candidate is compared in constant time (several v1 values appear during secret rotation).
    matched = False
    for candidate in candidates:
        matched |= hmac.compare_digest(expected, candidate.strip().lower().encode("ascii", "replace"))
    if not matched:
        raise SignatureError("signature does not match the payload")
