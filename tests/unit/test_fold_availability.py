"""Connector availability folded from eDRV station events, without a database."""

from __future__ import annotations

import json
from datetime import timedelta

import msgspec
import pytest

from service.eventlog.model import RecordedEvent
from service.projections.availability import (
    StationView,
    evolve_station,
    normalise_format,
    normalise_power_type,
    normalise_status,
)
from tests.unit.folds import fixture, fold, scenario, with_data

C1, C2 = "chargestation-6601aa0000000000000000c1", "chargestation-6601aa0000000000000000c2"
D1, D2, D3 = "6601aa0000000000000000d1", "6601aa0000000000000000d2", "6601aa0000000000000000d3"


def stations_after(*events: RecordedEvent) -> dict[str, StationView]:
    return fold(evolve_station, events)


def test_the_one_day_scenario_ends_in_the_documented_state() -> None:
    stations = stations_after(*scenario())
    c1, c2 = stations[C1], stations[C2]
    d1, d2, d3 = c1.connectors[D1], c1.connectors[D2], c2.connectors[D3]
    assert (d1.status, d1.type, c1.offerable(d1)) == ("available", "CCS2", True)
    assert (d2.status, d2.type, c1.offerable(d2)) == ("charging", "CHADEMO", False)  # not rolled back
    assert (d3.status, d3.type, c2.offerable(d3)) == ("occupied", "Type2", False)
    assert c2.online is False
    assert c1.location_id == c2.location_id == "6601aa00000000000000001a"


def test_a_late_older_report_does_not_roll_a_connector_back() -> None:
    events = scenario()
    late = next(e for e in events if e.occurred_at.isoformat().startswith("2024-05-02T09:21:40"))
    before_late = stations_after(*events[: events.index(late)])
    after_late = stations_after(*events[: events.index(late) + 1])
    assert before_late[C1].connectors[D2].status == "charging"
    assert after_late[C1].connectors[D2] == before_late[C1].connectors[D2]


def test_every_connector_of_a_whole_station_payload_is_taken_in() -> None:
    station = stations_after(fixture("chargestation.connector_status.updated.available.json"))[C1]
    assert set(station.connectors) == {D1, D2}
    d1 = station.connectors[D1]
    assert (d1.raw_status, d1.format, d1.power_type, d1.power_kw, d1.active) == (
        "Available",
        "CABLE",
        "DC",
        150,
        True,
    )
    assert station.connectors[D2].format == "CABLE"  # sent as "Cable"


def test_an_offline_station_offers_nothing_whatever_its_connectors_say() -> None:
    online = fixture("chargestation.online.json")
    offline = with_data(fixture("chargestation.offline.json"), updatedAt="2024-05-02T10:00:00.000Z")
    station = stations_after(online, offline)[C1]
    assert station.online is False
    assert [station.offerable(c) for c in station.connectors.values()] == [False, False]
    back = with_data(online, updatedAt="2024-05-02T11:00:00.000Z")
    station = stations_after(online, offline, back)[C1]
    assert station.online is True


def test_inactive_station_or_connector_is_not_offerable() -> None:
    event = fixture("chargestation.connector_status.updated.available.json")
    station = stations_after(with_data(event, active=False))[C1]
    assert not station.offerable(station.connectors[D1])
    data = json.loads(bytes(event.data))
    data["connectors"][0]["active"] = False
    disabled = msgspec.structs.replace(event, data=msgspec.Raw(json.dumps(data).encode()))
    station = stations_after(disabled)[C1]
    assert not station.offerable(station.connectors[D1])
    assert station.offerable(station.connectors[D2]) is False  # D2 is charging anyway


@pytest.mark.parametrize(
    "name",
    [
        "chargestation.connector_status.updated.faulted.json",
        "chargestation.connector_status.updated.finishing.json",
        "chargestation.connector_status.updated.ocpp201-occupied.json",
    ],
)
def test_only_available_connectors_are_offerable(name: str) -> None:
    for station in stations_after(fixture(name)).values():
        for connector in station.connectors.values():
            assert station.offerable(connector) == (connector.status == "available")


def test_status_changed_at_moves_only_when_the_status_changes() -> None:
    first = fixture("chargestation.connector_status.updated.available.json")
    data = json.loads(bytes(first.data))
    for connector in data["connectors"]:
        del connector["updatedAt"]  # the report is placed at the station's time, 18 min 48 s later
    same_later = with_data(first, connectors=data["connectors"], updatedAt="2024-05-02T10:00:00.000Z")
    before = stations_after(first)[C1].connectors[D1]
    after = stations_after(first, same_later)[C1].connectors[D1]
    assert after.status == before.status
    assert after.status_changed_at == before.status_changed_at
    assert after.reported_at == before.reported_at + timedelta(minutes=18, seconds=48)


def test_events_of_other_kinds_leave_the_view_alone() -> None:
    station = stations_after(fixture("chargestation.online.json"))[C1]
    assert evolve_station(station, fixture("action.set_charging_profile.accepted.json")) is station
    assert evolve_station(None, fixture("session.started.json")) is None


def test_data_a_fold_cannot_read_raises_so_the_runner_can_record_it() -> None:
    poison = with_data(fixture("chargestation.online.json"), connectors="not a list")
    with pytest.raises(msgspec.ValidationError):
        evolve_station(None, poison)


@pytest.mark.parametrize(
    ("raw", "status"),
    [
        ("Available", "available"),
        ("AVAILABLE", "available"),
        ("SuspendedEV", "suspended_ev"),
        ("SuspendedEVSE", "suspended_evse"),
        ("Occupied", "occupied"),
        ("Faulted", "faulted"),
        ("", "unknown"),
        (None, "unknown"),
    ],
)
def test_statuses_normalise_to_lower_snake_case(raw: str | None, status: str) -> None:
    assert normalise_status(raw) == status


def test_formats_and_power_types_normalise_across_doc_versions() -> None:
    assert {normalise_format(f) for f in ("CABLE", "Cable", "cable ")} == {"CABLE"}
    assert {normalise_power_type(p) for p in ("AC_SINGLE_PHASE", "AC Single Phase", "AC_1_PHASE")} == {
        "AC_1_PHASE"
    }
    assert {normalise_power_type(p) for p in ("AC_3_PHASE", "AC Three Phase", "ac_three_phase")} == {
        "AC_3_PHASE"
    }
    assert normalise_power_type("DC") == "DC"
