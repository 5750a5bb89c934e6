"""eDRV webhook bodies for a site the tests control: stations with connectors, and sessions on them.

The shapes are those of ``tests/fixtures/edrv`` (the scenario's stations report their whole connector
list on every status change); each body has a fresh delivery ``_id``.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime

_deliveries = itertools.count(1)


def _iso(moment: datetime) -> str:
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

    def status(self, connector_id: str, status: str, at: datetime | None = None) -> bytes:
        """``chargestation.connector_status.updated`` with this connector's new status."""
        self.connector(connector_id).status = status
        return self._delivery("chargestation.connector_status.updated", at)

    def online_body(self, at: datetime | None = None) -> bytes:
        self.online = True
        return self._delivery("chargestation.online", at)

    def offline_body(self, at: datetime | None = None) -> bytes:
        self.online = False
        return self._delivery("chargestation.offline", at)

    def _delivery(self, type: str, at: datetime | None) -> bytes:
        moment = _iso(at or datetime.now(UTC))
        data = {
            "_id": self.id,
            "location": self.location,
            "protocol": self.protocol,
            "online": self.online,
            "active": True,
            "connectors": [
                {
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
                for c in self.connectors
            ],
            "updatedAt": moment,
        }
        return envelope("chargestation", type, data, moment)


def session_started(
    session_id: str, station: str, connector: str, user: str | None, at: datetime | None = None
) -> bytes:
    moment = _iso(at or datetime.now(UTC))
    data = {
        "_id": session_id,
        "user": user,
        "chargestation": station,
        "connector": connector,
        "status": "started",
        "metrics": {"chargingStart": moment, "energyConsumed": 0},
        "updatedAt": moment,
    }
    return envelope("session", "session.started", data, moment)


def session_ended(
    session_id: str, station: str, connector: str, user: str | None, started: datetime, ended: datetime
) -> bytes:
    data = {
        "_id": session_id,
        "user": user,
        "chargestation": station,
        "connector": connector,
        "status": "ended",
        "metrics": {"chargingStart": _iso(started), "chargingStop": _iso(ended), "energyConsumed": 30_000},
        "updatedAt": _iso(ended),
    }
    return envelope("session", "session.ended", data, _iso(ended))


def location_created(location_id: str, name: str = "Test site") -> bytes:
    moment = _iso(datetime.now(UTC))
    data = {
        "_id": location_id,
        "active": True,
        "name": name,
        "timezone": "Europe/Berlin",
        "updatedAt": moment,
    }
    return envelope("location", "location.created", data, moment)


def envelope(object: str, type: str, data: Mapping[str, object], created_at: str) -> bytes:
    delivery = f"{next(_deliveries):024x}"
    return json.dumps(
        {"_id": delivery, "object": object, "type": type, "data": data, "createdAt": created_at}
    ).encode()
