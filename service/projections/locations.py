"""Locations (sites), one ``LocationView`` per ``location-<id>`` stream."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import msgspec

from service.eventlog.model import RecordedEvent
from service.projections.resources import LocationPayload, decode, time_of

LOCATION_EVENTS = ("location.created", "location.updated")


class LocationView(msgspec.Struct, frozen=True, gc=False, kw_only=True):
    id: str
    name: str | None
    address: dict[str, Any] | None
    timezone: str | None
    opening_hours: dict[str, Any] | None
    """eDRV's shape: ``{"0".."6" (Sunday..Saturday): [{"startTime": "HH:mm", "endTime": "HH:mm"}]}``."""
    active: bool
    updated_at: datetime


def evolve_location(location: LocationView | None, event: RecordedEvent) -> LocationView | None:
    if event.type not in LOCATION_EVENTS:
        return location
    payload = decode(LocationPayload, event.data)
    updated_at = time_of(payload.updated_at, event.occurred_at)
    if location is not None and updated_at < location.updated_at:
        return location
    return LocationView(
        id=payload.id,
        name=payload.name or payload.operator_name or (location.name if location else None),
        address=payload.address if payload.address is not None else (location.address if location else None),
        timezone=payload.timezone or (location.timezone if location else None),
        opening_hours=(
            payload.opening_hours
            if payload.opening_hours is not None
            else (location.opening_hours if location else None)
        ),
        active=payload.active if payload.active is not None else (location.active if location else True),
        updated_at=updated_at,
    )
