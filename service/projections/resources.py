"""The parts of eDRV resources the folds read, decoded leniently from an event's ``data``.

eDRV's types are loose (numbers as strings, Wh or kWh, ISO or epoch times, status casing), so payloads
are decoded in msgspec's lax mode and every field is optional: a fold takes what is there.

Payloads and views are ``gc=False`` structs: they never form reference cycles, and untracked they cost
the garbage collector nothing while a rebuild folds millions of them.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, TypeVar

import msgspec

from service.edrv.timestamps import parse_timestamp

Time = str | float  # ISO 8601 or epoch s / ms; read with ``time_of``


class ConnectorPayload(msgspec.Struct, frozen=True, gc=False):
    id: str = msgspec.field(name="_id")
    status: str | None = None
    type: str | None = None
    format: str | None = None
    power_type: str | None = None
    power: float | None = None
    active: bool | None = None
    updated_at: Time | None = msgspec.field(default=None, name="updatedAt")


class ChargestationPayload(msgspec.Struct, frozen=True, gc=False):
    id: str = msgspec.field(name="_id")
    location: str | None = None
    protocol: str | None = None
    online: bool | None = None
    active: bool | None = None
    connectors: list[ConnectorPayload] | None = None
    updated_at: Time | None = msgspec.field(default=None, name="updatedAt")


class Measured(msgspec.Struct, frozen=True, gc=False):
    value: float | None = None
    unit: str | None = None


class EnergyReport(msgspec.Struct, frozen=True, gc=False):
    power: Measured | None = None
    state_of_charge: Measured | None = None
    energy_meter: Measured | None = None


class Metrics(msgspec.Struct, frozen=True, gc=False):
    charging_start: Time | None = msgspec.field(default=None, name="chargingStart")
    charging_stop: Time | None = msgspec.field(default=None, name="chargingStop")
    meter_start: float | None = msgspec.field(default=None, name="meterStart")
    energy_consumed: float | None = msgspec.field(default=None, name="energyConsumed")


class Cost(msgspec.Struct, frozen=True, gc=False):
    amount: float | None = None
    currency: str | None = None


class SessionPayload(msgspec.Struct, frozen=True, gc=False):
    id: str = msgspec.field(name="_id")
    user: str | None = None
    chargestation: str | None = None
    connector: str | None = None
    status: str | None = None
    metrics: Metrics | None = None
    energy_report: EnergyReport | None = None
    cost: Cost | None = None
    updated_at: Time | None = msgspec.field(default=None, name="updatedAt")


class LocationPayload(msgspec.Struct, frozen=True, gc=False):
    id: str = msgspec.field(name="_id")
    name: str | None = None
    operator_name: str | None = msgspec.field(default=None, name="operatorName")
    address: dict[str, Any] | None = None
    timezone: str | None = None
    opening_hours: dict[str, Any] | None = msgspec.field(default=None, name="openingHours")
    active: bool | None = None
    updated_at: Time | None = msgspec.field(default=None, name="updatedAt")


Payload = TypeVar("Payload", ChargestationPayload, SessionPayload, LocationPayload)

_decoders: dict[type[Any], msgspec.json.Decoder[Any]] = {
    kind: msgspec.json.Decoder(kind, strict=False)
    for kind in (ChargestationPayload, SessionPayload, LocationPayload)
}


def decode(kind: type[Payload], data: bytes | msgspec.Raw) -> Payload:
    """Raises ``msgspec.ValidationError`` for data a fold cannot read (a poison event)."""
    payload: Payload = _decoders[kind].decode(data)
    return payload


def time_of(value: Time | None, fallback: datetime) -> datetime:
    """The resource's own time for ordering reports, else the delivery's (``fallback``)."""
    return parse_timestamp(value) or fallback
