"""The simulated eDRV network (``service/simulate``), without a service: its traffic is deterministic,
shaped as eDRV's, and the service's own folds end where the world ends, late deliveries and all."""

from __future__ import annotations

import itertools
import json
from collections import Counter, defaultdict
from datetime import UTC, datetime, timedelta
from typing import Any

import msgspec

from service.edrv.envelope import decode_envelope
from service.eventlog.model import RecordedEvent
from service.projections.availability import evolve_station
from service.queue.model import SiteConnector, requirements_of
from service.simulate.charging import Bay
from service.simulate.network import build_network
from service.simulate.personas import DriverPlan, plan_driver
from service.simulate.world import Emission, World
from tests.unit.folds import fold, recorded

START = datetime(2026, 6, 1, 12, tzinfo=UTC)
HOURS = 3600.0


def world(seed: int = 7, *, locations: int = 4, run: str = "r", start_hour: float = 16.0) -> World:
    return World(build_network(seed, locations, 3), seed, START, 60.0, start_hour=start_hour, run=run)


def run_for(w: World, hours: float) -> list[Emission]:
    out: list[Emission] = []
    step = 0.0
    while step < hours * HOURS:
        step += 60
        out.extend(w.advance(step))
    return out


def bodies(emissions: list[Emission]) -> list[dict[str, Any]]:
    return [json.loads(e.body) for e in emissions]


def test_the_same_seed_and_run_give_the_same_traffic_byte_for_byte_and_another_seed_does_not() -> None:
    first = [e.body for e in run_for(world(7), 3)]
    assert first == [e.body for e in run_for(world(7), 3)]
    assert first != [e.body for e in run_for(world(8), 3)]


def test_another_run_keeps_the_network_but_makes_every_delivery_and_session_new() -> None:
    one, two = bodies(run_for(world(run="a"), 2)), bodies(run_for(world(run="b"), 2))
    locations = {b["data"]["_id"] for b in one if b["object"] == "location"}
    assert locations == {b["data"]["_id"] for b in two if b["object"] == "location"}
    assert not {b["_id"] for b in one} & {b["_id"] for b in two}
    sessions = {b["data"]["_id"] for b in one if b["object"] == "session"}
    assert sessions
    assert not sessions & {b["data"]["_id"] for b in two if b["object"] == "session"}


def test_every_delivery_is_an_envelope_the_intake_accepts_with_a_unique_id() -> None:
    emissions = run_for(world(), 6)
    types: Counter[str] = Counter()
    for emission in emissions:
        envelope, resource_id = decode_envelope(emission.body)
        assert resource_id is not None
        assert envelope.type == emission.type
        types[emission.type] += 1
    assert len({decode_envelope(e.body)[0].id for e in emissions}) == len(emissions)
    for kind in (
        "location.created", "chargestation.online", "chargestation.offline",
        "chargestation.connector_status.updated", "session.started", "session.updated", "session.ended",
    ):  # fmt: skip
        assert types[kind] > 0, kind
    assert types["session.updated"] > types["session.started"] * 5  # meter values through each charge


def test_sessions_report_meter_values_every_30_to_60_simulated_seconds_with_rising_energy() -> None:
    w = world()
    updates: dict[str, list[tuple[datetime, float]]] = defaultdict(list)
    for body in bodies(run_for(w, 4)):
        if body["type"] == "session.updated":
            data = body["data"]
            updates[data["_id"]].append(
                (datetime.fromisoformat(data["updatedAt"]), data["metrics"]["energyConsumed"])
            )
    assert len(updates) > 5
    gaps = [
        (b[0] - a[0]).total_seconds() * w.speed
        for series in updates.values()
        for a, b in itertools.pairwise(series)
    ]
    assert min(gaps) >= 29.9
    assert sorted(gaps)[len(gaps) * 9 // 10] <= 60.1  # longer only while the station was offline
    for series in updates.values():
        energies = [energy for _, energy in series]
        assert energies == sorted(energies)


def test_ocpp16_connectors_go_preparing_charging_finishing_available_and_ocpp201_ones_occupied() -> None:
    w = world(locations=6)
    emissions = run_for(w, 6)
    sequences: dict[tuple[str, str], list[str]] = defaultdict(list)
    for body in bodies(emissions):
        if body["type"] == "chargestation.connector_status.updated":
            data = body["data"]
            changed = {c["_id"]: c["status"] for c in data["connectors"]}
            for connector_id, status in changed.items():
                seq = sequences[(data["protocol"], connector_id)]
                if not seq or seq[-1] != status:
                    seq.append(status)
    seen16 = {status for (protocol, _), seq in sequences.items() if protocol == "ocpp1.6" for status in seq}
    seen201 = {
        status for (protocol, _), seq in sequences.items() if protocol == "ocpp2.0.1" for status in seq
    }
    assert {"Available", "Preparing", "Charging", "Finishing"} <= seen16
    assert {"Available", "Occupied"} <= seen201
    assert not seen201 & {"Preparing", "Charging", "Finishing"}
    for (protocol, _), seq in sequences.items():
        for before, after in itertools.pairwise(seq):
            if protocol == "ocpp1.6" and after == "Charging":
                assert before in {"Preparing"}, seq
            if after == "Finishing":
                assert before in {"Charging", "SuspendedEV"}, seq


def test_the_service_folds_end_where_the_world_ends_with_late_and_repeated_deliveries() -> None:
    w = world(locations=6)
    emissions = run_for(w, 8)
    late = [e for e in emissions if e.late_s is not None]
    again = [e for e in emissions if e.redeliver_s is not None]
    assert late
    assert again
    # The order the runner delivers in: on time as they happen, late ones some seconds behind, copies too.
    deliveries = sorted(
        [(e.at + timedelta(seconds=e.late_s or 0), e.body) for e in emissions]
        + [(e.at + timedelta(seconds=e.redeliver_s), e.body) for e in again if e.redeliver_s is not None]
    )
    seen: set[str] = set()
    log: list[RecordedEvent] = []
    for _, body in deliveries:
        delivery = decode_envelope(body)[0].id
        if delivery not in seen:  # the log keeps a redelivered `_id` once
            seen.add(delivery)
            log.append(recorded(body, position=len(log) + 1))
    stations = fold(evolve_station, log)
    for bay in w.bays.values():
        station = stations[f"chargestation-{bay.station.id}"]
        assert station.online == bay.station.station.online
        assert station.connectors[bay.connector.id].raw_status == bay.connector.status


def test_flaky_stations_flap_and_night_closed_sites_turn_unavailable_and_back() -> None:
    w = world(locations=12, start_hour=20.0)
    emissions = run_for(w, 12)
    assert w.stats["flaps"] > 0
    assert w.stats["closings"] > 0
    assert w.stats["openings"] > 0
    closed = next(location for location in w.network if location.hours is not None)
    statuses = [
        (datetime.fromisoformat(b["data"]["updatedAt"]), c["status"])
        for b in bodies(emissions)
        if b["type"] == "chargestation.connector_status.updated" and b["data"]["location"] == closed.id
        for c in b["data"]["connectors"]
    ]
    assert any(status == "Unavailable" for _, status in statuses)
    assert statuses[-1][1] != "Unavailable" or w.hour() >= 22 or w.hour() < 6


def test_every_driver_asks_for_something_a_connector_at_their_location_can_give() -> None:
    for location in build_network(3, 10, 3):
        connectors = [
            SiteConnector(
                chargestation_id=s.id, connector_id=c.id, type=c.type, power_kw=c.power, state="offerable"
            )
            for s, c in location.connectors()
        ]
        for n in range(40):
            plan = plan_driver(3, "r", n, location)
            wants = requirements_of(plan.connector_types, plan.min_power_kw, plan.chargestation_ids)
            assert any(wants.accepts(c) for c in connectors), plan
    personas = Counter(plan_driver(3, "r", n, location).persona for n in range(2000))
    assert set(personas) == {"prompt", "snoozer", "silent", "no_show", "leaver"}


def heading_to_a_free_connector(w: World, *, jumped: bool) -> tuple[DriverPlan, Bay, list[dict[str, Any]]]:
    """A driver accepts a free connector and drives there; the sessions started on it meanwhile."""
    run_for(w, 0.1)
    bay = next(b for b in w.bays.values() if w.free(b))
    plan = msgspec.structs.replace(plan_driver(7, "r", 999, bay.location), jumped=jumped)
    w.offer_seen(plan, bay.connector.id)
    w.head_to(plan, bay.connector.id)
    after = bodies(w.advance(w.now_s + plan.drive_s + 30))
    started = [
        b for b in after if b["type"] == "session.started" and b["data"]["connector"] == bay.connector.id
    ]
    return plan, bay, started


def test_a_driver_who_accepts_plugs_in_on_the_offered_connector_in_their_own_name() -> None:
    w = world()
    plan, _, started = heading_to_a_free_connector(w, jumped=False)
    assert started
    assert started[0]["data"]["user"] == plan.edrv_user
    assert w.stats["driver_plug_ins"] == 1


def test_a_queue_jumper_takes_the_held_connector_and_the_driver_is_turned_away() -> None:
    w = world()
    plan, bay, started = heading_to_a_free_connector(w, jumped=True)
    assert started
    assert started[0]["data"]["user"] != plan.edrv_user
    assert (w.stats["queue_jumps"], w.stats["drivers_turned_away"]) == (1, 1)
    # Offered another connector, they get it: a driver meets a queue jumper once.
    other = next(b for b in w.bays.values() if w.free(b))
    w.offer_seen(plan, other.connector.id)
    w.head_to(plan, other.connector.id)
    w.advance(w.now_s + plan.drive_s + 30)
    assert (w.stats["queue_jumps"], w.stats["driver_plug_ins"]) == (1, 1)
    assert bay.car is not None
    assert bay.car != plan.edrv_user
