"""What goes wrong or changes on its own: connector faults, station outages and flapping, nights."""

from __future__ import annotations

import random
from typing import TYPE_CHECKING

from service.simulate.charging import HOUR, Bay, end, leave
from service.simulate.network import SimLocation, SimStation

if TYPE_CHECKING:
    from service.simulate.world import World

FAULTS_PER_HOUR = 0.04
OUTAGES_PER_HOUR = 0.03
FLAP_BURSTS_PER_HOUR = 0.5


def faults(world: World, bay: Bay) -> None:
    world.at(world.now_s + bay.rng.expovariate(FAULTS_PER_HOUR) * HOUR, lambda: _fault(world, bay))


def _fault(world: World, bay: Bay) -> None:
    faults(world, bay)
    if bay.faulted or not bay.station.station.online:
        return
    world.stats["faults"] += 1
    if bay.charge is not None:
        end(world, bay)  # the station stops the session; the car drives off
    bay.faulted, bay.car, bay.epoch = True, None, bay.epoch + 1
    world.status(bay, "Faulted")
    world.later(bay, bay.rng.uniform(300, 2400), lambda: _repaired(world, bay))


def _repaired(world: World, bay: Bay) -> None:
    bay.faulted = False
    leave(world, bay)


def outages(world: World, station: SimStation, rng: random.Random) -> None:
    rate = FLAP_BURSTS_PER_HOUR if station.flaky else OUTAGES_PER_HOUR
    world.at(world.now_s + rng.expovariate(rate) * HOUR, lambda: _outage(world, station, rng))


def _outage(world: World, station: SimStation, rng: random.Random) -> None:
    outages(world, station, rng)
    if not station.station.online:
        return
    if station.flaky:  # a burst: the link drops and returns a few times within seconds
        world.stats["flaps"] += 1
        t = world.now_s
        for _ in range(rng.randint(2, 5)):
            world.at(t, lambda: world.connectivity(station, online=False))
            t += rng.uniform(2, 20)
            world.at(t, lambda: world.connectivity(station, online=True))
            t += rng.uniform(2, 20)
    else:
        world.stats["outages"] += 1
        world.connectivity(station, online=False)
        world.at(world.now_s + rng.uniform(60, 900), lambda: world.connectivity(station, online=True))


def nights(world: World, location: SimLocation) -> None:
    """Sites with opening hours report their free connectors Unavailable at closing, Available at opening."""
    if location.hours is None:
        return
    opens, closes = location.hours
    hour = world.hour()
    wait_h = ((closes if location.is_open(hour) else opens) - hour) % 24 or 24
    world.at(world.now_s + wait_h * HOUR, lambda: _boundary(world, location))


def _boundary(world: World, location: SimLocation) -> None:
    opened = location.is_open(world.hour() + 1e-6)
    world.stats["openings" if opened else "closings"] += 1
    for bay in (world.bays[c.id] for _, c in location.connectors()):
        if bay.car is None and not bay.faulted:  # cars charging at closing time may finish
            world.status(bay, "Available" if opened else "Unavailable")
    nights(world, location)
