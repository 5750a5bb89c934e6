"""The simulated charging network: locations, stations and connectors, the same for the same seed.

Station models follow what operators run: DC fast chargers with CCS2 and CHAdeMO cables on OCPP 1.6,
high-power CCS2 on OCPP 2.0.1, and AC wallboxes with Type2 sockets on either protocol. A few stations
sit on a weak cellular link and flap; some locations close at night, when eDRV reports their stations
Unavailable.
"""

from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass

from service.simulate.edrv import Connector, Station

# (model, protocol, connectors (type, kW), weight)
MODELS: tuple[tuple[str, str, tuple[tuple[str, float], ...], int], ...] = (
    ("dc-dual", "ocpp1.6", (("CCS2", 150.0), ("CHADEMO", 50.0)), 3),
    ("dc-hpc", "ocpp2.0.1", (("CCS2", 300.0),), 2),
    ("ac-twin", "ocpp2.0.1", (("Type2", 22.0), ("Type2", 22.0)), 2),
    ("ac-single", "ocpp1.6", (("Type2", 11.0),), 1),
)
SITE_NAMES = (
    "Hafen", "Marktplatz", "Bahnhof Süd", "Rastplatz A7", "Messe", "Altstadt", "Kaufpark", "Uni Campus",
    "Flughafen P3", "Stadtwerke", "Seeblick", "Gewerbepark", "Rathaus", "Autohof Nord", "Klinikum",
)  # fmt: skip
TIMEZONES = ("Europe/Berlin", "Europe/Vienna", "Europe/Zurich")
FLAKY_SHARE = 0.15
"""Stations on a weak link: their connection drops and comes back in bursts."""
NIGHT_CLOSED_SHARE = 0.25
"""Locations open 06:00-22:00 of the simulated day; the rest are open around the clock."""
OPENING_HOURS = (6.0, 22.0)


def object_id(seed: int, kind: str, n: int) -> str:
    """A 24-hex id like eDRV's ObjectIds, derived from the seed so runs can be compared id by id."""
    return hashlib.sha256(f"{seed}/{kind}/{n}".encode()).hexdigest()[:24]


@dataclass
class SimStation:
    station: Station
    model: str
    flaky: bool

    @property
    def id(self) -> str:
        return self.station.id


@dataclass
class SimLocation:
    id: str
    name: str
    timezone: str
    hours: tuple[float, float] | None
    """Opening and closing hour of the simulated day; None: open around the clock."""
    stations: list[SimStation]

    def is_open(self, hour: float) -> bool:
        return self.hours is None or self.hours[0] <= hour < self.hours[1]

    def connectors(self) -> list[tuple[SimStation, Connector]]:
        return [(s, c) for s in self.stations for c in s.station.connectors]


def build_network(seed: int, locations: int, stations_per_location: int) -> list[SimLocation]:
    rng = random.Random(f"{seed}/network")
    built = []
    station_n = connector_n = 0
    for n in range(locations):
        location_id = object_id(seed, "location", n)
        stations = []
        for _ in range(stations_per_location):
            model, protocol, cables, _weight = rng.choices(MODELS, weights=[m[3] for m in MODELS])[0]
            station_id = object_id(seed, "station", station_n)
            station_n += 1
            connectors = []
            for kind, power in cables:
                connectors.append(Connector(object_id(seed, "connector", connector_n), kind, power))
                connector_n += 1
            station = Station(station_id, location_id, connectors, protocol=protocol)
            stations.append(SimStation(station, model, flaky=rng.random() < FLAKY_SHARE))
        round_ = n // len(SITE_NAMES)  # past the list, names repeat with a number: "Hafen 2"
        name = SITE_NAMES[n % len(SITE_NAMES)] + (f" {round_ + 1}" if round_ else "")
        hours = OPENING_HOURS if rng.random() < NIGHT_CLOSED_SHARE else None
        built.append(SimLocation(location_id, name, rng.choice(TIMEZONES), hours, stations))
    return built
