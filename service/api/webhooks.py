"""``POST /webhooks/edrv``: the hot path. Raw bytes in, 200 with an empty body once committed."""

from __future__ import annotations

import logging
import time
from typing import Any

from litestar import Request, post
from litestar.response.base import ASGIResponse
from prometheus_client import Counter

from service.api.openapi_docs import WebhookOperation
from service.api.problems import problem, problem_responses
from service.edrv.intake import EdrvIntake, NotJson, Quarantined
from service.edrv.signature import SignatureError
from service.eventlog.model import (
    Appended,
    AppendResult,
    ConflictingRedelivery,
    Duplicate,
    StoreUnavailable,
)
from service.metrics import WEBHOOK_SECONDS, WEBHOOKS_RECEIVED

log = logging.getLogger(__name__)

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
    body = await request.body()
    started = time.perf_counter()
    try:
        result = await intake.receive(
            body,
            signature=request.headers.get("edrv-signature"),
            content_type=request.headers.get("content-type"),
        )
    except SignatureError as exc:
        _finish(_BAD_SIGNATURE, started)
        log.info("webhook refused: %s", exc)  # not a warning: anyone on the internet can cause it
        raise problem(401, "Invalid Signature", str(exc)) from None
    except NotJson as exc:
        _finish(_NOT_JSON, started)
        raise problem(400, "Malformed JSON", str(exc)) from None
    except Quarantined as exc:
        _finish(_QUARANTINED, started)
        raise problem(400, "Unusable Delivery", f"{exc} (kept in quarantine)") from None
    except StoreUnavailable:
        _finish(_UNAVAILABLE, started)
        raise
    _finish(_OUTCOMES[type(result)], started)
    # eDRV wants exactly "200 OK, empty body"; a handler returning None would send `null`.
    return ASGIResponse(body=b"", status_code=200, media_type="text/plain")


# Bound once: looking a labelled child up per request costs more than counting.
_OUTCOMES: dict[type[AppendResult], Counter] = {
    Appended: WEBHOOKS_RECEIVED.labels("stored"),
    Duplicate: WEBHOOKS_RECEIVED.labels("duplicate"),
    ConflictingRedelivery: WEBHOOKS_RECEIVED.labels("conflict"),
}
_BAD_SIGNATURE = WEBHOOKS_RECEIVED.labels("bad_signature")
_NOT_JSON = WEBHOOKS_RECEIVED.labels("not_json")
_QUARANTINED = WEBHOOKS_RECEIVED.labels("quarantined")
_UNAVAILABLE = WEBHOOKS_RECEIVED.labels("unavailable")


def _finish(outcome: Counter, started: float) -> None:
    outcome.inc()
    WEBHOOK_SECONDS.observe(time.perf_counter() - started)
