"""The simulated world in simulated time: a heap of happenings over the network's connectors.

Pure and deterministic: each happening is a function of the world's state and its own random stream
(``charging``: cars; ``incidents``: faults, outages, nights) and emits eDRV webhook bodies. The runner
decides when simulated time moves (``advance``) and tells the world what the queue's drivers do
(``offer_seen``, ``head_to``, ``offer_gone``).
"""

from __future__ import annotations

import functools
import hashlib
import heapq
import itertools
import random
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from service.simulate import charging, edrv, incidents
from service.simulate.charging import HOUR, Bay
from service.simulate.network import SimLocation, SimStation, object_id
from service.simulate.personas import DriverPlan, plan_driver

DRIVER_LOAD = 0.9
"""Queue drivers at the busiest hours, as a share of what a location's connectors can serve."""
DEMAND_BY_HOUR = (0.1,) * 6 + (0.4, 0.7, 0.8) + (0.6,) * 7 + (1.0,) * 4 + (0.5, 0.4, 0.3, 0.2)
"""Share of the busiest hours' drivers, hour by hour of the simulated day: the after-work peak."""
LATE_SHARE = 0.01
"""Deliveries held back and sent after newer ones (the service must not roll back to them)."""
REDELIVERED_SHARE = 0.02
"""Deliveries eDRV sends twice (same ``_id``): the log must keep one."""
BUSY_AT_START = 0.6
"""Connectors a car reaches in the first simulated minutes: a run starts on a working network."""


@dataclass(frozen=True)
class Emission:
    at: datetime
    lane: str
    """Deliveries of one lane (a station, a location) go out in order: eDRV's are FIFO per station."""
    type: str
    body: bytes
    late_s: float | None = None
    """Send this many real seconds late, behind newer deliveries."""
    redeliver_s: float | None = None
    """Send the same delivery again this many real seconds after the first."""


@dataclass
class World:
    network: list[SimLocation]
    seed: int
    start: datetime
    """The real moment simulated time 0 maps to."""
    speed: float
    """Simulated seconds per real second."""
    start_hour: float = 16.0
    driver_rate: float = 1.0
    run: str = ""
    """Part of every delivery, session and driver id: a second run on the same database is new traffic,
    not a redelivery of the first (the network's own ids come from the seed alone)."""
    now_s: float = 0.0
    stats: Counter[str] = field(default_factory=Counter)
    bays: dict[str, Bay] = field(default_factory=dict)
    _heap: list[tuple[float, int, Callable[[], None]]] = field(default_factory=list)
    _order: itertools.count[int] = field(default_factory=itertools.count)
    _ids: itertools.count[int] = field(default_factory=itertools.count)
    _drivers: itertools.count[int] = field(default_factory=itertools.count)
    _out: list[Emission] = field(default_factory=list)
    _arrivals: list[DriverPlan] = field(default_factory=list)
    _last_at: dict[str, datetime] = field(default_factory=dict)
    _jumped: set[int] = field(default_factory=set)

    def __post_init__(self) -> None:
        for location in self.network:
            delivery = self.new_id("delivery")
            body = edrv.location_created(
                location.id, location.name, timezone=location.timezone, delivery=delivery, at=self.real(0)
            )
            self.emit(location.id, body)
            for station in location.stations:
                self.connectivity(station, online=True)
                incidents.outages(self, station, random.Random(f"{self.seed}/station/{station.id}"))
            for station, connector in location.connectors():
                rng = random.Random(f"{self.seed}/bay/{connector.id}")
                self.bays[connector.id] = bay = Bay(location, station, connector, rng)
                self.status(bay, "Available" if location.is_open(self.hour()) else "Unavailable")
                if rng.random() < BUSY_AT_START * DEMAND_BY_HOUR[int(self.hour())]:
                    self.at(rng.uniform(0, 120), functools.partial(charging.arrive, self, bay))
                charging.walk_ins(self, bay)
                incidents.faults(self, bay)
            incidents.nights(self, location)
            self._arrivals_later(location, random.Random(f"{self.seed}/arrivals/{location.id}"))

    # -- the runner's side --------------------------------------------------------------------------
    def advance(self, until_s: float) -> list[Emission]:
        """Run every happening due by ``until_s`` (simulated seconds); return what they emitted."""
        while self._heap and self._heap[0][0] <= until_s:
            self.now_s, _, happening = heapq.heappop(self._heap)
            happening()
        self.now_s = max(self.now_s, until_s)
        out, self._out = self._out, []
        return out

    def next_due(self) -> float | None:
        return self._heap[0][0] if self._heap else None

    def take_arrivals(self) -> list[DriverPlan]:
        out, self._arrivals = self._arrivals, []
        return out

    def offer_seen(self, plan: DriverPlan, connector_id: str) -> None:
        self.offer_gone(plan)
        if (bay := self.bays.get(connector_id)) is not None:
            bay.held_for = plan.n

    def offer_gone(self, plan: DriverPlan) -> None:
        for bay in self.bays.values():
            if bay.held_for == plan.n:
                bay.held_for = None

    def head_to(self, plan: DriverPlan, connector_id: str) -> None:
        """The driver accepted: they plug in when they get there, unless a queue jumper got there first."""
        bay = self.bays[connector_id]
        self.at(self.now_s + plan.drive_s, lambda: charging.driver_arrives(self, bay, plan))
        if plan.jumped and plan.n not in self._jumped:  # once: the next time, the spot is theirs
            self._jumped.add(plan.n)
            self.at(self.now_s + plan.drive_s * bay.rng.uniform(0.2, 0.6), lambda: charging.jump(self, bay))

    # -- for the happenings -------------------------------------------------------------------------
    def real(self, t: float) -> datetime:
        return self.start + timedelta(seconds=t / self.speed)

    def moment(self, lane: str) -> datetime:
        """The timestamp of the lane's next report: now, but at least 1 ms after its last one, since a
        station never reports two things at the same instant (and freshness is judged by timestamps)."""
        at = self.real(self.now_s)
        last = self._last_at.get(lane)
        if last is not None and at <= last:
            at = last + timedelta(milliseconds=1)
        self._last_at[lane] = at
        return at

    def hour(self) -> float:
        return (self.start_hour + self.now_s / HOUR) % 24

    def free(self, bay: Bay) -> bool:
        online = bay.station.station.online
        return bay.car is None and not bay.faulted and online and bay.location.is_open(self.hour())

    def at(self, t: float, happening: Callable[[], None]) -> None:
        heapq.heappush(self._heap, (t, next(self._order), happening))

    def later(self, bay: Bay, delay_s: float, happening: Callable[[], None]) -> None:
        """Schedule ``happening`` for ``bay``; void if the bay's course changes before it is due."""
        epoch = bay.epoch
        self.at(self.now_s + delay_s, lambda: happening() if bay.epoch == epoch else None)

    def new_id(self, kind: str) -> str:
        return object_id(self.seed, f"{self.run}/{kind}", next(self._ids))

    def status(self, bay: Bay, status: str) -> None:
        at, delivery = self.moment(bay.station.id), self.new_id("delivery")
        self.emit(bay.station.id, bay.station.station.status(bay.connector.id, status, at, delivery=delivery))

    def connectivity(self, station: SimStation, *, online: bool) -> None:
        at, delivery, s = self.moment(station.id), self.new_id("delivery"), station.station
        self.emit(
            station.id,
            s.online_body(at, delivery=delivery) if online else s.offline_body(at, delivery=delivery),
        )

    def emit(self, lane: str, body: bytes) -> None:
        # Lateness and redelivery are drawn from the delivery's own bytes, not a shared random stream,
        # so they do not shift when the drivers' timing adds a delivery elsewhere.
        draw = int.from_bytes(hashlib.sha256(body).digest()[:8]) / 2**64
        late = draw / LATE_SHARE * 8 if draw < LATE_SHARE else None  # up to 8 s late
        again = draw - LATE_SHARE
        redeliver = again / REDELIVERED_SHARE * 20 if 0 <= again < REDELIVERED_SHARE else None  # within 20 s
        kind = body.split(b'"type": "', 1)[1].split(b'"', 1)[0].decode()
        self._out.append(Emission(self.real(self.now_s), lane, kind, body, late, redeliver))

    # -- queue drivers ------------------------------------------------------------------------------
    def _arrivals_later(self, location: SimLocation, rng: random.Random) -> None:
        capacity = sum(60 / self.bays[c.id].minutes_per_car for _, c in location.connectors())
        rate = self.driver_rate * DRIVER_LOAD * capacity  # at the peak; thinned by the hour below
        self.at(self.now_s + rng.expovariate(rate) * HOUR, lambda: self._arrival(location, rng))

    def _arrival(self, location: SimLocation, rng: random.Random) -> None:
        self._arrivals_later(location, rng)
        if rng.random() < DEMAND_BY_HOUR[int(self.hour())] and location.is_open(self.hour()):
            self._arrivals.append(plan_driver(self.seed, self.run, next(self._drivers), location))
