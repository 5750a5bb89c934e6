"""OpenAPI details Litestar cannot infer: the eDRV handler reads raw bytes, not a typed body; the webhooks
Chargeline sends are not routes at all."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import msgspec
from litestar.enums import ParamType
from litestar.openapi.spec import (
    OpenAPIFormat,
    OpenAPIMediaType,
    OpenAPIResponse,
    OpenAPIType,
    Operation,
    Parameter,
    PathItem,
    Reference,
    RequestBody,
    Schema,
)

from service.outbound.payload import TicketMessage

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


def outbound_webhooks() -> dict[str, PathItem | Reference]:
    """What app backends receive (OpenAPI 3.1 ``webhooks``), from the payload's own msgspec types, so the
    document cannot drift from what is sent. Litestar replaces the components with those its routes use,
    so the message's own types are written inline; ``RequirementsOut`` and ``OfferOut`` are the API's."""
    _, definitions = msgspec.json.schema_components(
        [TicketMessage], ref_template="#/components/schemas/{name}"
    )
    inline = {name: definitions[name] for name in ("TicketMessage", "TicketData")}
    header = Schema(type=OpenAPIType.STRING)
    operation = Operation(
        summary="Every change of a ticket, to each subscribed app backend",
        description=(
            "Signed as a Standard Webhook (`webhook-signature: v1,<base64 HMAC-SHA256 of "
            '"<webhook-id>.<webhook-timestamp>.<body>">`), retried for 24 h until a 2xx, in order per '
            "ticket, with the same `webhook-id` on every attempt. See docs/webhooks.md."
        ),
        tags=["Webhooks"],
        parameters=[
            Parameter(name=name, param_in=ParamType.HEADER, required=True, schema=header, description=text)
            for name, text in (
                ("webhook-id", "The message id (`msg_<log position>`): the same on retries and replays"),
                ("webhook-timestamp", "Seconds since the epoch, when this attempt was signed"),
                ("webhook-signature", "Space-separated `v1,<signature>`; two during a secret rotation"),
            )
        ],
        request_body=RequestBody(
            content={
                "application/json": OpenAPIMediaType(schema=_converted(inline["TicketMessage"], inline))
            },
            required=True,
        ),
        responses={"2XX": OpenAPIResponse(description="Received; any other answer is retried or final")},
    )
    return {"ticketChanged": PathItem(post=operation)}


def _converted(node: dict[str, Any], inline: dict[str, dict[str, Any]]) -> Schema | Reference:
    """A JSON Schema node (as msgspec writes them) as Litestar's OpenAPI objects."""
    if "$ref" in node:
        name = node["$ref"].rsplit("/", 1)[-1]
        return _converted(inline[name], inline) if name in inline else Reference(ref=node["$ref"])
    return Schema(
        title=node.get("title"),
        description=node.get("description"),
        type=OpenAPIType(node["type"]) if "type" in node else None,
        format=OpenAPIFormat(node["format"]) if "format" in node else None,
        enum=node.get("enum"),
        required=node.get("required"),
        properties={k: _converted(v, inline) for k, v in node["properties"].items()}
        if "properties" in node
        else None,
        items=_converted(node["items"], inline) if "items" in node else None,
        any_of=[_converted(n, inline) for n in node["anyOf"]] if "anyOf" in node else None,
    )
