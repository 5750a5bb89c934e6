"""Connector availability: each chargestation with its connectors, and who can be offered what.

One ``StationView`` per ``chargestation-<id>`` stream. ``chargestation.connector_status.updated`` carries
the whole station, so each connector in it is compared with what we know. Deliveries arrive out of
order, so every report is placed in the resource's own time (the connector's ``updatedAt``, else the
station's, else the delivery's ``createdAt``) and an older report never overwrites a newer one.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import TypeVar

import msgspec

from service.eventlog.model import RecordedEvent
from service.projections.resources import ChargestationPayload, ConnectorPayload, decode, time_of

T = TypeVar("T")

STATION_EVENTS = (
    "chargestation.online",
    "chargestation.offline",
    "chargestation.connector_status.updated",
    "chargestation.created",
    "chargestation.updated",
)


class ConnectorView(msgspec.Struct, frozen=True, gc=False, kw_only=True):
    id: str
    chargestation_id: str
    status: str
    """Normalised, lower case: available, preparing, charging, suspended_ev, ..., occupied, unknown."""
    raw_status: str | None
    type: str | None
    format: str | None
    power_type: str | None
    power_kw: float | None
    active: bool
    status_changed_at: datetime | None
    reported_at: datetime
    """Resource time of the last report applied; older reports are ignored."""


class StationView(msgspec.Struct, frozen=True, gc=False, kw_only=True):
    id: str
    location_id: str | None
    protocol: str | None
    online: bool
    active: bool
    reported_at: datetime
    connectors: dict[str, ConnectorView]

    def offerable(self, connector: ConnectorView) -> bool:
        """Free for the next driver: Available, on an online station, connector and station active.
        A connector of an offline station is not offerable, whatever its last status."""
        return connector.status == "available" and self.online and self.active and connector.active


def evolve_station(station: StationView | None, event: RecordedEvent) -> StationView | None:
    if event.type not in STATION_EVENTS:
        return station
    payload = decode(ChargestationPayload, event.data)
    station_time = time_of(payload.updated_at, event.occurred_at)
    online = {"chargestation.online": True, "chargestation.offline": False}.get(event.type, payload.online)
    if station is None:
        station = StationView(
            id=payload.id,
            location_id=payload.location,
            protocol=payload.protocol,
            online=bool(online),
            active=payload.active is not False,
            reported_at=station_time,
            connectors={},
        )
    elif station_time >= station.reported_at:
        station = msgspec.structs.replace(
            station,
            location_id=payload.location or station.location_id,
            protocol=payload.protocol or station.protocol,
            online=station.online if online is None else online,
            active=station.active if payload.active is None else payload.active,
            reported_at=station_time,
        )
    connectors = dict(station.connectors)
    for reported in payload.connectors or ():
        when = time_of(reported.updated_at, station_time)
        known = connectors.get(reported.id)
        if known is None or when >= known.reported_at:
            connectors[reported.id] = _evolve_connector(known, reported, station.id, when)
    return msgspec.structs.replace(station, connectors=connectors)


def _evolve_connector(
    known: ConnectorView | None, reported: ConnectorPayload, station_id: str, when: datetime
) -> ConnectorView:
    """A report fills in what it carries; what it leaves out keeps its last known value."""
    raw_status = _pick(reported.status, known.raw_status if known else None)
    status = normalise_status(raw_status)
    return ConnectorView(
        id=reported.id,
        chargestation_id=station_id,
        status=status,
        raw_status=raw_status,
        type=_pick(reported.type, known.type if known else None),
        format=_pick(reported.format and normalise_format(reported.format), known.format if known else None),
        power_type=_pick(
            reported.power_type and normalise_power_type(reported.power_type),
            known.power_type if known else None,
        ),
        power_kw=_pick(reported.power, known.power_kw if known else None),
        active=_pick(reported.active, known.active if known else True),
        status_changed_at=when if known is None or known.status != status else known.status_changed_at,
        reported_at=when,
    )


def _pick(reported: T | None, known: T) -> T:
    return known if reported is None else reported


def normalise_status(raw: str | None) -> str:
    """OCPP 1.6 / 2.0.1 statuses in any casing → snake_case: ``SuspendedEV`` → ``suspended_ev``."""
    if not raw:
        return "unknown"
    return re.sub(r"(?<=[a-z])(?=[A-Z])", "_", raw.strip()).replace(" ", "_").replace("-", "_").lower()


def normalise_format(raw: str) -> str:
    """``CABLE`` / ``Cable`` / ``cable`` → ``CABLE``."""
    return raw.strip().upper()


_POWER_TYPES = {
    "AC_1_PHASE": "AC_1_PHASE",
    "AC_SINGLE_PHASE": "AC_1_PHASE",
    "AC SINGLE PHASE": "AC_1_PHASE",
    "AC_3_PHASE": "AC_3_PHASE",
    "AC_THREE_PHASE": "AC_3_PHASE",
    "AC THREE PHASE": "AC_3_PHASE",
    "DC": "DC",
}


def normalise_power_type(raw: str) -> str:
    """The spellings of eDRV's doc versions → ``AC_1_PHASE`` / ``AC_3_PHASE`` / ``DC`` (else as sent)."""
    return _POWER_TYPES.get(raw.strip().upper(), raw)
