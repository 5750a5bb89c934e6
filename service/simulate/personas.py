"""Simulated drivers: who arrives at which location, what they need, and how they behave.

Every choice is drawn when the driver is created, from the driver's own random stream, so the same seed
gives the same drivers with the same habits however the service's answers interleave.
"""

from __future__ import annotations

import random
from typing import Literal

import msgspec

from service.simulate.network import SimLocation, object_id

Persona = Literal["prompt", "snoozer", "silent", "no_show", "leaver"]
PERSONAS: tuple[tuple[Persona, float], ...] = (
    ("prompt", 0.70),  # accepts the first offer within a minute or so, drives there, plugs in
    ("snoozer", 0.08),  # lets the first offer pass (keeping the place), accepts the next
    ("silent", 0.07),  # never answers: the offer passes on when its time runs out
    ("no_show", 0.07),  # accepts, then never arrives: the hold runs out
    ("leaver", 0.08),  # gives up and leaves the queue after a while without an offer
)
JUMPED_SHARE = 0.05
"""Drivers who find their held connector taken by someone who ignored the queue."""


class DriverPlan(msgspec.Struct, frozen=True, kw_only=True):
    n: int
    driver_id: str
    edrv_user: str
    location_id: str
    connector_types: list[str] | None
    min_power_kw: float | None
    chargestation_ids: list[str] | None
    persona: Persona
    answer_after_s: float
    """Simulated seconds between seeing an offer and answering it."""
    drive_s: float
    """Simulated seconds from accepting to plugging in."""
    patience_s: float
    """A leaver leaves the queue after waiting this long without an offer."""
    jumped: bool

    def join_body(self) -> dict[str, object]:
        body: dict[str, object] = {}
        if self.connector_types:
            body["connector_types"] = self.connector_types
        if self.min_power_kw is not None:
            body["min_power_kw"] = self.min_power_kw
        if self.chargestation_ids:
            body["chargestation_ids"] = self.chargestation_ids
        return body


def plan_driver(seed: int, run: str, n: int, location: SimLocation) -> DriverPlan:
    """Driver ``n`` of this run: requirements some connector of ``location`` meets, and their habits
    (drawn from the seed alone; ``run`` only makes their ids new)."""
    rng = random.Random(f"{seed}/driver/{n}")
    station, connector = rng.choice(location.connectors())
    types: list[str] | None = None
    min_power: float | None = None
    stations: list[str] | None = None
    need = rng.random()
    if need < 0.45:
        types = [connector.type]
    elif need < 0.55:
        types = sorted({connector.type, "CCS2" if connector.type != "CCS2" else "CHADEMO"})
    elif need < 0.65:
        min_power = float(rng.choice([p for p in (11, 22, 50, 150) if p <= connector.power] or [3]))
    elif need < 0.72:
        stations = [station.id]
    personas, weights = zip(*PERSONAS, strict=True)
    return DriverPlan(
        n=n,
        driver_id=f"sim-{seed}-{run}-driver-{n}" if run else f"sim-{seed}-driver-{n}",
        edrv_user=object_id(seed, f"{run}/user", n),
        location_id=location.id,
        connector_types=types,
        min_power_kw=min_power,
        chargestation_ids=stations,
        persona=rng.choices(personas, weights=weights)[0],
        answer_after_s=rng.uniform(10, 90),
        drive_s=rng.uniform(90, 420),
        patience_s=rng.uniform(300, 1800),
        jumped=rng.random() < JUMPED_SHARE,
    )
