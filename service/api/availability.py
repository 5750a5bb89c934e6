"""Public availability (locations, chargestations, connectors) and operators' view of sessions.

Every response carries ``as_of_position``: the log position its read models reflect, so a client that
knows the position of its own write can wait for it (read-your-writes).
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

import msgspec
from litestar import get
from litestar.di import NamedDependency
from litestar.params import PathParameter, QueryParameter

from service.api.auth import ADMIN_SECURITY, require_admin
from service.api.problems import MINIMUM_ZERO, problem, problem_responses
from service.eventlog.store import EventStore
from service.projections import queries

AVAILABILITY = ("locations", "connector_availability")
ResourceId = Annotated[str, PathParameter(min_length=1, max_length=100, description="An eDRV id")]


class ConnectorOut(msgspec.Struct, frozen=True):
    id: str
    chargestation_id: str
    status: str
    """Normalised, lower case: available, preparing, charging, suspended_ev, finishing, occupied, ..."""
    raw_status: str | None
    type: str | None
    format: str | None
    power_type: str | None
    power_kw: float | None
    active: bool
    offerable: bool
    """Free for the next driver: available, on an online and active station, connector active."""
    status_changed_at: datetime | None


class ChargestationOut(msgspec.Struct, frozen=True):
    id: str
    location_id: str | None
    protocol: str | None
    online: bool
    active: bool
    connectors: list[ConnectorOut]


class ChargestationDetail(ChargestationOut, frozen=True, kw_only=True):
    as_of_position: int


class LocationOut(msgspec.Struct, frozen=True):
    id: str
    name: str | None
    address: dict[str, Any] | None
    timezone: str | None
    opening_hours: dict[str, Any] | None
    chargestations: list[ChargestationOut]


class LocationDetail(LocationOut, frozen=True, kw_only=True):
    as_of_position: int


class LocationList(msgspec.Struct, frozen=True):
    as_of_position: int
    locations: list[LocationOut]


class ConnectorList(msgspec.Struct, frozen=True):
    as_of_position: int
    connectors: list[ConnectorOut]


class CostOut(msgspec.Struct, frozen=True):
    amount: float | None
    currency: str | None


class SessionDetail(msgspec.Struct, frozen=True):
    id: str
    user_id: str | None
    chargestation_id: str | None
    connector_id: str | None
    status: str
    started_at: datetime | None
    ended_at: datetime | None
    energy_kwh: float | None
    power_kw: float | None
    soc_percent: float | None
    cost: CostOut | None
    updated_at: datetime
    as_of_position: int


@get("/v1/locations", tags=["Availability"], summary="Every location with its chargestations and connectors")
async def list_locations(store: NamedDependency[EventStore]) -> LocationList:
    async with queries.snapshot(store, *AVAILABILITY) as (connection, as_of):
        found = await queries.locations(connection)
    return msgspec.convert({"as_of_position": as_of, "locations": found}, LocationList)


@get(
    "/v1/locations/{location_id:str}",
    tags=["Availability"],
    summary="One location with its chargestations and connectors",
    responses=problem_responses(e404="No such location"),
)
async def get_location(store: NamedDependency[EventStore], location_id: ResourceId) -> LocationDetail:
    async with queries.snapshot(store, *AVAILABILITY) as (connection, as_of):
        found = await queries.locations(connection, location_id)
    if not found:
        raise problem(404, "Not Found", f"no location {location_id!r}")
    return msgspec.convert({**found[0], "as_of_position": as_of}, LocationDetail)


@get(
    "/v1/chargestations/{chargestation_id:str}",
    tags=["Availability"],
    summary="One chargestation with its connectors",
    responses=problem_responses(e404="No such chargestation"),
)
async def get_chargestation(
    store: NamedDependency[EventStore], chargestation_id: ResourceId
) -> ChargestationDetail:
    async with queries.snapshot(store, "connector_availability") as (connection, as_of):
        found = await queries.chargestations(connection, station_id=chargestation_id)
    if not found:
        raise problem(404, "Not Found", f"no chargestation {chargestation_id!r}")
    return msgspec.convert({**found[0], "as_of_position": as_of}, ChargestationDetail)


@get(
    "/v1/connectors",
    tags=["Availability"],
    summary="Connectors, filtered (at most 1000)",
    responses=problem_responses(e400="A parameter is malformed"),
)
async def list_connectors(
    store: NamedDependency[EventStore],
    location_id: Annotated[str | None, QueryParameter(max_length=200)] = None,
    offerable: Annotated[bool | None, QueryParameter(description="Only (not) offerable ones")] = None,
    connector_type: Annotated[
        str | None, QueryParameter(name="type", max_length=50, description="e.g. CCS2 (any casing)")
    ] = None,
    min_power_kw: Annotated[float | None, QueryParameter(ge=0, le=10_000, schema_extra=MINIMUM_ZERO)] = None,
) -> ConnectorList:
    async with queries.snapshot(store, "connector_availability") as (connection, as_of):
        found = await queries.connectors(
            connection,
            location_id=location_id,
            offerable=offerable,
            type=connector_type,
            min_power_kw=min_power_kw,
        )
    return msgspec.convert({"as_of_position": as_of, "connectors": found}, ConnectorList)


@get(
    "/v1/sessions/{session_id:str}",
    guards=[require_admin],
    security=ADMIN_SECURITY,
    tags=["Admin"],
    summary="One charging session",
    responses=problem_responses(e401="Missing or wrong admin token", e404="No such session"),
)
async def get_session(store: NamedDependency[EventStore], session_id: ResourceId) -> SessionDetail:
    async with queries.snapshot(store, "sessions") as (connection, as_of):
        found = await queries.session(connection, session_id)
    if found is None:
        raise problem(404, "Not Found", f"no session {session_id!r}")
    return msgspec.convert({**msgspec.to_builtins(found), "as_of_position": as_of}, SessionDetail)


ROUTES = [list_locations, get_location, get_chargestation, list_connectors, get_session]
