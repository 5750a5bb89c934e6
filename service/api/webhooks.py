"""``POST /webhooks/edrv``: the hot path. Raw bytes in, 200 with an empty body once committed."""

from __future__ import annotations

from typing import Any

import msgspec
from litestar import Request, Response, post
from litestar.di import NamedDependency

from service.api.openapi_docs import WebhookOperation
from service.api.problems import problem, problem_responses
from service.edrv.envelope import InvalidEnvelope, decode_envelope
from service.edrv.intake import SOURCE, record_delivery
from service.edrv.signature import SignatureError, verify_signature
from service.eventlog.model import UnstorableEvent
from service.eventlog.store import EventStore
from service.settings import Settings

MAX_WEBHOOK_BODY = 1024 * 1024


@post(
    "/webhooks/edrv",
    status_code=200,
    request_max_body_size=MAX_WEBHOOK_BODY,
    summary="Receive an eDRV webhook delivery",
    description=(
        "Stores the delivery in the event log (any event type, known or not) and answers 200 with an "
        "empty body once it is committed. A redelivery of the same `_id` and body answers 200 again "
        "without storing it twice. With `CHARGELINE_WEBHOOK_SECRET` set, the `edrv-signature` header "
        '(`t=<unix time>,v1=<hex HMAC-SHA256 of "<t>.<body>">` or `sha256=<hex HMAC of body>`) is required.'
    ),
    tags=["eDRV"],
    media_type="text/plain",
    response_description="Stored (or already stored): an empty body",
    responses=problem_responses(
        e400="Not JSON, or not an eDRV envelope (then kept raw in quarantine)",
        e401="Missing, malformed, wrong or stale signature; nothing stored",
        e413="Body over 1 MiB",
        e503="Database unavailable; nothing stored, retry later",
    ),
    operation_class=WebhookOperation,
)
async def receive_edrv_webhook(
    request: Request[Any, Any, Any], store: NamedDependency[EventStore], settings: NamedDependency[Settings]
) -> Response[bytes]:
    body = await request.body()
    signature_verified = False
    if settings.webhook_secret:
        try:
            verify_signature(
                request.headers.get("edrv-signature"),
                body,
                secret=settings.webhook_secret,
                tolerance_s=settings.webhook_tolerance_s,
            )
        except SignatureError as exc:
            raise problem(401, "Invalid Signature", str(exc)) from None
        signature_verified = True
    try:
        envelope, resource_id = decode_envelope(body)
    except InvalidEnvelope as exc:
        await _quarantine(store, request, body, f"not an eDRV envelope: {exc}")
        raise problem(400, "Invalid Envelope", f"not an eDRV webhook envelope: {exc}") from None
    except msgspec.DecodeError as exc:
        raise problem(400, "Malformed JSON", f"the body is not JSON: {exc}") from None
    try:
        await record_delivery(store, body, envelope, resource_id, signature_verified=signature_verified)
    except UnstorableEvent as exc:
        await _quarantine(store, request, body, str(exc))
        raise problem(400, "Unstorable Event", str(exc)) from None
    # eDRV wants exactly "200 OK, empty body"; a handler returning None would send `null`.
    return Response(b"", status_code=200, media_type="text/plain")


async def _quarantine(store: EventStore, request: Request[Any, Any, Any], body: bytes, reason: str) -> None:
    await store.quarantine(
        source=SOURCE, reason=reason, content_type=request.headers.get("content-type"), body=body
    )
