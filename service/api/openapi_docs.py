"""OpenAPI details Litestar cannot infer: the eDRV handler reads raw bytes, not a typed body; the webhooks
Chargeline sends are not routes at all."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import msgspec
from litestar._openapi.schema_generation.plugins.struct import StructSchemaPlugin
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
from litestar.typing import FieldDefinition

from service.outbound.payload import TicketMessage

if TYPE_CHECKING:
    from litestar._openapi.schema_generation import SchemaCreator

_ENVELOPE = Schema(
    type=OpenAPIType.OBJECT,
    description="An eDRV webhook envelope; `data` is the whole affected resource, stored as sent.",
    required=["_id", "type", "data"],
    properties={
        "_id": Schema(type=OpenAPIType.STRING, min_length=1, description="Delivery id (dedupe key)"),
        "object": Schema(
            type=[OpenAPIType.STRING, OpenAPIType.NULL],
            description="Resource kind, e.g. session, chargestation",
        ),
        "type": Schema(type=OpenAPIType.STRING, min_length=1, description="e.g. session.started"),
        # Read leniently: a delivery is never turned away over its timestamp (an unreadable one is kept in
        # the event's metadata and the receipt time used).
        "createdAt": Schema(
            type=[OpenAPIType.STRING, OpenAPIType.NUMBER, OpenAPIType.NULL],
            description="When it happened: ISO 8601 (e.g. date-time) or epoch seconds or milliseconds",
        ),
        "data": Schema(type=OpenAPIType.OBJECT, description="The resource; `_id` names its stream"),
    },
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


_PROBLEM = OpenAPIMediaType(schema=Reference(ref="#/components/schemas/ProblemDetails"))


@dataclass
class ApiOperation(Operation):
    """Every operation's error responses as the app sends them: RFC 9457 ``application/problem+json``.

    Litestar documents the 400 it adds for handlers with parameters as plain JSON of its own shape; the
    problem details plugin answers it as a problem document. Operations with a body also document the 413
    that the request body limit answers."""

    def __post_init__(self) -> None:
        responses = self.responses if self.responses is not None else {}
        for code, response in responses.items():
            if (
                code[:1] in "45"
                and isinstance(response, OpenAPIResponse)
                and response.content is not None
                and "application/problem+json" not in response.content
            ):
                response.content = {"application/problem+json": _PROBLEM}
        if self.request_body is not None and "413" not in responses:
            responses["413"] = OpenAPIResponse(
                description="The body is larger than this operation accepts",
                content={"application/problem+json": _PROBLEM},
            )
        self.responses = responses


@dataclass
class WebhookOperation(ApiOperation):
    def __post_init__(self) -> None:
        self.request_body = RequestBody(
            content={"application/json": OpenAPIMediaType(schema=_ENVELOPE)},
            required=True,
            description="The raw delivery, at most 1 MiB; signed with `edrv-signature` when a secret is set.",
        )
        super().__post_init__()


class StrictStructSchemaPlugin(StructSchemaPlugin):
    """Request and response structs documented as msgspec validates them.

    Litestar's own struct schemas drop constraints that are zero (``ge=0``) or sit on list items
    (``list[Annotated[str, Meta(min_length=1)]]``), and never say ``additionalProperties: false`` for
    ``forbid_unknown_fields``: fuzzers then send what the document allows and the server refuses. msgspec
    writes the schema it validates with; a property that refers to another struct keeps Litestar's schema
    (Litestar tracks those references)."""

    def to_openapi_schema(self, field_definition: FieldDefinition, schema_creator: SchemaCreator) -> Schema:
        schema = super().to_openapi_schema(field_definition, schema_creator)
        struct = field_definition.type_
        _, definitions = msgspec.json.schema_components([struct], ref_template="#/components/schemas/{name}")
        own = next((d for d in definitions.values() if d.get("title") == struct.__name__), None)
        if own is None:
            return schema
        properties = dict(schema.properties or {})
        for name, node in own.get("properties", {}).items():
            if name in properties and "$ref" not in msgspec.json.encode(node).decode():
                properties[name] = _schema_of(node)
        schema.properties = properties
        if own.get("additionalProperties") is False:
            schema.additional_properties = False
        return schema


_KEYWORDS = {
    "minLength": "min_length",
    "maxLength": "max_length",
    "minItems": "min_items",
    "maxItems": "max_items",
    "minimum": "minimum",
    "maximum": "maximum",
    "exclusiveMinimum": "exclusive_minimum",
    "exclusiveMaximum": "exclusive_maximum",
    "enum": "enum",
    "const": "const",
    "default": "default",
    "description": "description",
    "title": "title",
    "examples": "examples",
    "required": "required",
    "pattern": "pattern",
}


def _schema_of(node: dict[str, Any]) -> Schema:
    """A JSON Schema node without references (as msgspec writes them) as Litestar's OpenAPI object."""
    fields: dict[str, Any] = {attr: node[key] for key, attr in _KEYWORDS.items() if key in node}
    if "type" in node:
        kind = node["type"]
        fields["type"] = [OpenAPIType(k) for k in kind] if isinstance(kind, list) else OpenAPIType(kind)
    if "format" in node:
        fields["format"] = OpenAPIFormat(node["format"])
    if "anyOf" in node:
        fields["any_of"] = [_schema_of(n) for n in node["anyOf"]]
    if "items" in node:
        fields["items"] = _schema_of(node["items"])
    if "properties" in node:
        fields["properties"] = {k: _schema_of(v) for k, v in node["properties"].items()}
    if "additionalProperties" in node:
        extra = node["additionalProperties"]
        fields["additional_properties"] = extra if isinstance(extra, bool) else _schema_of(extra)
    return Schema(**fields)
