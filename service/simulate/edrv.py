"""eDRV webhook bodies: stations with their connectors, charging sessions, locations.

The shapes are those of the eDRV fixtures (``../shared/fixtures/edrv``): a station reports its whole
connector list on every status change, OCPP 2.0.1 connectors carry ``evseId`` and the raw
StatusNotification, sessions carry ``metrics`` and an ``energy_report``. Each body has a fresh delivery
``_id`` unless the caller names one (the simulator does, so a seed gives the same ids).
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime

_deliveries = itertools.count(1)


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass
class Connector:
    id: str
    type: str
    power: float
    status: str = "Available"


@dataclass
class Station:
    id: str
    location: str
    connectors: list[Connector]
    online: bool = True
    protocol: str = "ocpp1.6"
    clock: list[datetime] = field(default_factory=list)

    def connector(self, connector_id: str) -> Connector:
        return next(c for c in self.connectors if c.id == connector_id)

    def status(
        self, connector_id: str, status: str, at: datetime | None = None, *, delivery: str | None = None
    ) -> bytes:
        """``chargestation.connector_status.updated`` with this connector's new status."""
        self.connector(connector_id).status = status
        return self._delivery("chargestation.connector_status.updated", at, delivery)

    def online_body(self, at: datetime | None = None, *, delivery: str | None = None) -> bytes:
        self.online = True
        return self._delivery("chargestation.online", at, delivery)

    def offline_body(self, at: datetime | None = None, *, delivery: str | None = None) -> bytes:
        self.online = False
        return self._delivery("chargestation.offline", at, delivery)

    def _delivery(self, type: str, at: datetime | None, delivery: str | None) -> bytes:
        moment = iso(at or datetime.now(UTC))
        data = {
            "_id": self.id,
            "location": self.location,
            "protocol": self.protocol,
            "online": self.online,
            "active": True,
            "connectors": [self._connector(n, c, moment) for n, c in enumerate(self.connectors, 1)],
            "updatedAt": moment,
        }
        return envelope("chargestation", type, data, moment, delivery)

    def _connector(self, number: int, c: Connector, moment: str) -> dict[str, object]:
        body: dict[str, object] = {
            "_id": c.id,
            "active": True,
            "status": c.status,
            "type": c.type,
            "format": "CABLE",
            "power_type": "DC" if c.power > 43 else "AC_3_PHASE",
            "power": c.power,
            "chargestation": self.id,
            "updatedAt": moment,
        }
        if self.protocol == "ocpp2.0.1":  # one connector per EVSE, as most 2.0.1 stations are wired
            notification = {
                "timestamp": moment,
                "connectorStatus": c.status,
                "evseId": number,
                "connectorId": 1,
            }
            body.update(evseId=number, raw_message=[2, f"msg-{number}", "StatusNotification", notification])
        return body


def session_started(
    session_id: str,
    station: str,
    connector: str,
    user: str | None,
    at: datetime | None = None,
    *,
    delivery: str | None = None,
) -> bytes:
    moment = at or datetime.now(UTC)
    metrics = {"chargingStart": iso(moment), "energyConsumed": 0}
    return _session(
        "session.started", "started", session_id, station, connector, user, metrics, moment, delivery
    )


def session_updated(
    session_id: str,
    station: str,
    connector: str,
    user: str | None,
    started: datetime,
    at: datetime,
    *,
    energy_wh: float,
    power_kw: float,
    soc: int,
    delivery: str | None = None,
) -> bytes:
    """The periodic meter report of a running session (every 30-60 s on real stations)."""
    metrics = {
        "chargingStart": iso(started),
        "energyPeriod": round((at - started).total_seconds(), 1),
        "energyConsumed": round(energy_wh),
    }
    report = {
        "timestamp": iso(at),
        "power": {"value": round(power_kw, 1), "unit": "kW"},
        "state_of_charge": {"value": soc, "unit": "Percent"},
    }
    return _session(
        "session.updated", "started", session_id, station, connector, user, metrics, at, delivery,
        energy_report=report,
    )  # fmt: skip


def session_ended(
    session_id: str,
    station: str,
    connector: str,
    user: str | None,
    started: datetime,
    ended: datetime,
    *,
    energy_wh: float = 30_000,
    delivery: str | None = None,
) -> bytes:
    metrics = {"chargingStart": iso(started), "chargingStop": iso(ended), "energyConsumed": round(energy_wh)}
    return _session("session.ended", "ended", session_id, station, connector, user, metrics, ended, delivery)


def session_cancelled(
    session_id: str,
    station: str,
    connector: str,
    user: str | None,
    at: datetime,
    *,
    delivery: str | None = None,
) -> bytes:
    """A session the app started that the station never confirmed (eDRV gives up after 120 s)."""
    metrics = {"energyPeriod": 0, "energyConsumed": 0}
    return _session(
        "session.cancelled", "cancelled", session_id, station, connector, user, metrics, at, delivery
    )


def _session(
    type: str,
    status: str,
    session_id: str,
    station: str,
    connector: str,
    user: str | None,
    metrics: Mapping[str, object],
    at: datetime,
    delivery: str | None,
    **more: object,
) -> bytes:
    data = {
        "_id": session_id,
        "user": user,
        "chargestation": station,
        "connector": connector,
        "status": status,
        "metrics": metrics,
        **more,
        "updatedAt": iso(at),
    }
    return envelope("session", type, data, iso(at), delivery)


def location_created(
    location_id: str,
    name: str = "Test site",
    *,
    timezone: str = "Europe/Berlin",
    at: datetime | None = None,
    delivery: str | None = None,
) -> bytes:
    moment = iso(at or datetime.now(UTC))
    data = {"_id": location_id, "active": True, "name": name, "timezone": timezone, "updatedAt": moment}
    return envelope("location", "location.created", data, moment, delivery)


def envelope(
    object: str, type: str, data: Mapping[str, object], created_at: str, delivery: str | None = None
) -> bytes:
    delivery = delivery or f"{next(_deliveries):024x}"
    return json.dumps(
        {"_id": delivery, "object": object, "type": type, "data": data, "createdAt": created_at}
    ).encode()
