"""``POST /webhooks/edrv``: the hot path. Raw bytes in, 200 with an empty body once committed."""

from __future__ import annotations

from typing import Any

from litestar import Request, post
from litestar.response.base import ASGIResponse

from service.api.openapi_docs import WebhookOperation
from service.api.problems import problem, problem_responses
from service.edrv.intake import EdrvIntake, NotJson, Quarantined
from service.edrv.signature import SignatureError

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
async def receive_edrv_webhook(request: Request[Any, Any, Any]) -> ASGIResponse:
    # The hot path skips Litestar's dependency injection and response building: resolving and
    # validating an injected dependency per request cost more (profiled) than all our own work.
    intake: EdrvIntake = request.app.state.intake
    try:
        await intake.receive(
            await request.body(),
            signature=request.headers.get("edrv-signature"),
            content_type=request.headers.get("content-type"),
        )
    except SignatureError as exc:
        raise problem(401, "Invalid Signature", str(exc)) from None
    except NotJson as exc:
        raise problem(400, "Malformed JSON", str(exc)) from None
    except Quarantined as exc:
        raise problem(400, "Unusable Delivery", f"{exc} (kept in quarantine)") from None
    # eDRV wants exactly "200 OK, empty body"; a handler returning None would send `null`.
    return ASGIResponse(body=b"", status_code=200, media_type="text/plain")
