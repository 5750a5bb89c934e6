"""Charging sessions and locations folded from eDRV events, without a database."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from service.eventlog.model import RecordedEvent
from service.projections.locations import evolve_location
from service.projections.sessions import Money, SessionView, evolve_session, normalise_session_status
from tests.unit.folds import fixture, fold, scenario, with_data

E1 = "session-6601bb0000000000000000e1"


def sessions_after(*events: RecordedEvent) -> dict[str, SessionView]:
    return fold(evolve_session, events)


def test_the_one_day_scenario_ends_with_the_session_ended() -> None:
    session = sessions_after(*scenario())[E1]
    assert (session.status, session.user_id, session.connector_id) == (
        "ended",
        "6601bb00000000000000aa01",
        "6601aa0000000000000000d1",
    )
    assert session.started_at == datetime(2024, 5, 2, 9, 15, 30, tzinfo=UTC)
    assert session.energy_kwh == 18.3  # the final report's 0 Wh does not take energy back


def test_loose_types_are_read_numbers_from_strings_energy_from_wh() -> None:
    session = sessions_after(fixture("session.started.json"), fixture("session.updated.loose-types.json"))[E1]
    assert session.status == "started"
    assert session.power_kw == 10.9  # "10.9" kW
    assert session.soc_percent == 64  # "64" Percent
    assert session.energy_kwh == pytest.approx(1.83)  # 1830 Wh
    assert session.cost == Money(0.64, "EUR")
    assert session.ended_at is None


def test_energy_falls_back_to_the_meter_reading_in_wh_or_kwh() -> None:
    loose = fixture("session.updated.loose-types.json")
    metrics = json.loads(bytes(loose.data))["metrics"]
    del metrics["energyConsumed"]
    session = sessions_after(with_data(loose, metrics=metrics))[E1]
    assert session.energy_kwh == pytest.approx(1.83)  # 122280 Wh on the meter, 120450 Wh at the start


def test_end_states_come_from_the_event_type_whatever_the_payload_says() -> None:
    assert sessions_after(fixture("session.ended.json"))[E1].status == "ended"
    (cancelled,) = sessions_after(fixture("session.cancelled.json")).values()
    assert cancelled.status == "cancelled"
    (failed,) = sessions_after(fixture("session.start_failure.json")).values()
    assert failed.status == "failed"  # the payload still says "created"


def test_an_ended_session_has_its_stop_time_and_energy() -> None:
    session = sessions_after(fixture("session.started.json"), fixture("session.ended.json"))[E1]
    assert session.ended_at == datetime(2024, 5, 2, 9, 39, 57, tzinfo=UTC)
    assert session.energy_kwh == pytest.approx(41.2)
    assert session.cost == Money(20.19, "EUR")


def test_a_stop_time_before_the_start_is_not_an_end() -> None:
    (session,) = sessions_after(fixture("doc-example.session.updated.json")).values()
    assert session.status == "started"
    assert session.ended_at is None
    assert session.energy_kwh == pytest.approx(4.406)
    assert session.power_kw == pytest.approx(7.018)


def test_a_late_older_update_does_not_reopen_an_ended_session() -> None:
    ended = fixture("session.ended.json")
    late_update = fixture("session.updated.loose-types.json")  # updatedAt 09:25, before the end
    session = sessions_after(fixture("session.started.json"), ended, late_update)[E1]
    assert session.status == "ended"
    assert session.updated_at == datetime(2024, 5, 2, 9, 39, 58, tzinfo=UTC)


@pytest.mark.parametrize(
    ("raw", "status"),
    [("Started", "started"), ("ENDED", "ended"), ("canceled", "cancelled"), ("weird", None), (None, None)],
)
def test_session_statuses_normalise_whatever_the_casing(raw: str | None, status: str | None) -> None:
    assert normalise_session_status(raw) == status


def test_a_location_has_its_name_address_timezone_and_opening_hours() -> None:
    (location,) = fold(evolve_location, [fixture("location.updated.json")]).values()
    assert location.name == "Hafen Laden GmbH"
    assert location.timezone == "Europe/Berlin"
    assert location.address is not None
    assert location.address["city"] == "Hamburg"
    assert location.opening_hours is not None
    assert location.opening_hours["1"] == [{"startTime": "06:00", "endTime": "22:00"}]
    assert location.active is True


def test_a_location_keeps_the_newest_report() -> None:
    created = [e for e in scenario() if e.type == "location.created"]
    updated = fixture("location.updated.json")  # updatedAt 2024-05-01T17:00, the same as created
    renamed = with_data(updated, name="Hafen Nord", updatedAt="2024-05-03T08:00:00.000Z")
    older = with_data(updated, name="Old name", updatedAt="2024-04-01T08:00:00.000Z")
    (location,) = fold(evolve_location, [*created, renamed, older]).values()
    assert location.name == "Hafen Nord"
