"""OpenAPI details Litestar cannot infer: the webhook handler reads raw bytes, not a typed body."""

from __future__ import annotations

from dataclasses import dataclass

from litestar.openapi.spec import OpenAPIMediaType, OpenAPIType, Operation, RequestBody, Schema

_ENVELOPE = Schema(
    type=OpenAPIType.OBJECT,
    description="An eDRV webhook envelope; `data` is the whole affected resource, stored as sent.",
    required=["_id", "type", "data"],
    properties={
        "_id": Schema(type=OpenAPIType.STRING, min_length=1, description="Delivery id (dedupe key)"),
        "object": Schema(type=OpenAPIType.STRING, description="Resource kind, e.g. session, chargestation"),
        "type": Schema(type=OpenAPIType.STRING, min_length=1, description="e.g. session.started"),
        "createdAt": Schema(type=OpenAPIType.STRING, format="date-time"),  # type: ignore[arg-type]
        "data": Schema(type=OpenAPIType.OBJECT, description="The resource; `_id` names its stream"),
    },
)


@dataclass
class WebhookOperation(Operation):
    def __post_init__(self) -> None:
        self.request_body = RequestBody(
            content={"application/json": OpenAPIMediaType(schema=_ENVELOPE)},
            required=True,
            description="The raw delivery, at most 1 MiB; signed with `edrv-signature` when a secret is set.",
        )
