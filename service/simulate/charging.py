"""Cars at connectors: walk-ins, queue drivers and queue jumpers plug in, charge, and leave.

A charge follows the car and the connector: power is the lower of the two, tapering past 80 % on DC;
meter values arrive every 30 s to 1 min; OCPP 1.6 stations report Preparing, Charging, SuspendedEV (a
full car that stays) and Finishing, OCPP 2.0.1 stations just Occupied.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from service.simulate import edrv
from service.simulate.network import SimLocation, SimStation
from service.simulate.personas import DriverPlan

if TYPE_CHECKING:
    from service.simulate.world import World

HOUR = 3600.0
WALK_IN_LOAD = 0.2
"""Cars that plug in without the queue, as a share of what a connector can serve."""
FAILED_START_SHARE = 0.03
"""Walk-ins whose session never starts (card refused, cable not locked): eDRV cancels it."""
SUSPENDED_SHARE = 0.3
"""Full cars on OCPP 1.6 stations that stay plugged in a while (SuspendedEV): the "please move" cue."""


@dataclass
class Charge:
    id: str
    user: str | None
    started: datetime
    battery_kwh: float
    soc: float
    needed_wh: float
    car_kw: float
    energy_wh: float = 0.0

    def power_kw(self, connector_kw: float) -> float:
        soc = self.soc + self.energy_wh / 1000 / self.battery_kwh
        taper = 1.0 if soc < 0.8 else max(0.15, 1 - (soc - 0.8) * 4)  # fast charging slows past 80 %
        return max(1.0, min(connector_kw, self.car_kw) * taper)


@dataclass
class Bay:
    """A connector and whatever is happening at it."""

    location: SimLocation
    station: SimStation
    connector: edrv.Connector
    rng: random.Random
    epoch: int = 0
    """Bumped when the bay's course changes; happenings scheduled in an older epoch are void."""
    car: str | None = None
    """Who is plugged in (an eDRV user id); None: nobody."""
    charge: Charge | None = None
    faulted: bool = False
    held_for: int | None = None
    """The queue driver it was offered to or is held for, as that driver told the world."""

    @property
    def minutes_per_car(self) -> float:
        return 40.0 if self.connector.power > 43 else 100.0

    @property
    def ocpp16(self) -> bool:
        return self.station.station.protocol == "ocpp1.6"


def walk_ins(world: World, bay: Bay) -> None:
    rate = WALK_IN_LOAD * 60 / bay.minutes_per_car
    world.at(world.now_s + bay.rng.expovariate(rate) * HOUR, lambda: _walk_in(world, bay))


def _walk_in(world: World, bay: Bay) -> None:
    walk_ins(world, bay)
    arrive(world, bay)


def arrive(world: World, bay: Bay) -> None:
    """A car without a ticket: it takes the connector if free (the "reserved" sign is respected)."""
    if world.free(bay) and bay.held_for is None:
        world.stats["walk_ins"] += 1
        _plug(world, bay, world.new_id("walk-in"), may_fail=True)


def jump(world: World, bay: Bay) -> None:
    """Someone ignores the queue and takes the connector held for a driver on their way."""
    if world.free(bay):
        world.stats["queue_jumps"] += 1
        _plug(world, bay, world.new_id("walk-in"), may_fail=False)


def driver_arrives(world: World, bay: Bay, plan: DriverPlan) -> None:
    if bay.held_for != plan.n:
        return  # while they drove, their hold moved to another connector or ended
    bay.held_for = None
    if world.free(bay):
        world.stats["driver_plug_ins"] += 1
        _plug(world, bay, plan.edrv_user, may_fail=False)
    else:
        world.stats["drivers_turned_away"] += 1


def _plug(world: World, bay: Bay, user: str, *, may_fail: bool) -> None:
    bay.car, bay.epoch = user, bay.epoch + 1
    world.status(bay, "Preparing" if bay.ocpp16 else "Occupied")
    if may_fail and bay.rng.random() < FAILED_START_SHARE:
        world.later(bay, bay.rng.uniform(60, 120), lambda: _failed_start(world, bay))
    else:
        world.later(bay, bay.rng.uniform(5, 25), lambda: _start(world, bay))


def _failed_start(world: World, bay: Bay) -> None:
    world.stats["failed_starts"] += 1
    at = world.moment(bay.station.id)
    session = world.new_id("session")
    world.emit(
        bay.station.id,
        edrv.session_cancelled(
            session, bay.station.id, bay.connector.id, bay.car, at, delivery=world.new_id("delivery")
        ),
    )
    leave(world, bay)


def _start(world: World, bay: Bay) -> None:
    rng, dc = bay.rng, bay.connector.power > 43
    battery, soc = rng.uniform(40, 100), rng.uniform(0.1, 0.5)
    target = rng.uniform(0.8, 1.0) if dc else 1.0
    car_kw = rng.uniform(50, 250) if dc else rng.choice((7.4, 11.0, 11.0, 22.0))
    started = world.moment(bay.station.id)
    charge = Charge(
        world.new_id("session"), bay.car, started, battery, soc, battery * (target - soc) * 1000, car_kw
    )
    bay.charge = charge
    world.stats["sessions"] += 1
    body = edrv.session_started(
        charge.id, bay.station.id, bay.connector.id, charge.user, started, delivery=world.new_id("delivery")
    )
    world.emit(bay.station.id, body)
    if bay.ocpp16:
        world.status(bay, "Charging")
    world.later(bay, rng.uniform(30, 60), lambda: _meter(world, bay, 0.0))


def _meter(world: World, bay: Bay, suspended_s: float) -> None:
    charge, rng = bay.charge, bay.rng
    assert charge is not None
    step = rng.uniform(30, 60)  # eDRV relays meter values every 30 s to 1 min
    if charge.energy_wh < charge.needed_wh:
        kw = charge.power_kw(bay.connector.power)
        charge.energy_wh = min(charge.needed_wh, charge.energy_wh + kw * step / HOUR * 1000)
    elif suspended_s == 0 and bay.ocpp16 and rng.random() < SUSPENDED_SHARE:
        kw, suspended_s = 0.0, rng.uniform(120, 600)
        world.status(bay, "SuspendedEV")
    elif suspended_s > step:
        kw, suspended_s = 0.0, suspended_s - step
    else:
        end(world, bay)
        return
    soc = round(100 * min(1.0, charge.soc + charge.energy_wh / 1000 / charge.battery_kwh))
    if bay.station.station.online:  # an offline station's meter values never reach eDRV
        at = world.moment(bay.station.id)
        body = edrv.session_updated(
            charge.id, bay.station.id, bay.connector.id, charge.user, charge.started, at,
            energy_wh=charge.energy_wh, power_kw=kw, soc=soc, delivery=world.new_id("delivery"),
        )  # fmt: skip
        world.emit(bay.station.id, body)
    world.later(bay, step, lambda: _meter(world, bay, suspended_s))


def end(world: World, bay: Bay) -> None:
    """The session stops; the car stays a few minutes (Finishing), then leaves."""
    charge, bay.charge = bay.charge, None
    assert charge is not None
    at = world.moment(bay.station.id)
    body = edrv.session_ended(
        charge.id, bay.station.id, bay.connector.id, charge.user, charge.started, at,
        energy_wh=charge.energy_wh, delivery=world.new_id("delivery"),
    )  # fmt: skip
    world.emit(bay.station.id, body)
    if bay.ocpp16:
        world.status(bay, "Finishing")
    bay.epoch += 1
    world.later(bay, bay.rng.uniform(60, 300), lambda: leave(world, bay))


def leave(world: World, bay: Bay) -> None:
    bay.car, bay.epoch = None, bay.epoch + 1
    if not bay.faulted:
        world.status(bay, "Available" if bay.location.is_open(world.hour()) else "Unavailable")
