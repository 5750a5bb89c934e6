"""Fairness: which waiting ticket is offered which free connector when a queue dispatches."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from service.queue.commands import AcceptOffer, Dispatch, JoinQueue, SnoozeOffer
from service.queue.decide import decide
from service.queue.events import OfferRevoked, TicketOffered
from service.queue.fold import replay
from service.queue.matching import assign_offers
from service.queue.model import (
    ConnectorState,
    QueueState,
    Requirements,
    SiteConnector,
    requirements_of,
)

T0 = datetime(2024, 5, 3, 8, 0, tzinfo=UTC)
LOCATION = "6601aa00000000000000001a"


def at(s: int) -> datetime:
    return T0 + timedelta(seconds=s)


def connector(
    connector_id: str,
    *,
    station: str = "st1",
    type: str | None = "CCS2",
    power_kw: float | None = 50.0,
    state: ConnectorState = "offerable",
) -> SiteConnector:
    return SiteConnector(
        chargestation_id=station, connector_id=connector_id, type=type, power_kw=power_kw, state=state
    )


def needs(
    types: list[str] | None = None, min_kw: float | None = None, stations: list[str] | None = None
) -> Requirements:
    return requirements_of(types, min_kw, stations)


ANY = needs()


def line(*requirements: Requirements) -> QueueState:
    """Tickets t1, t2, ... joined in this order, all waiting."""
    state = QueueState(location_id=LOCATION)
    for n, wants in enumerate(requirements, start=1):
        join = JoinQueue(ticket_id=f"t{n}", driver_id=f"d{n}", edrv_user_id=f"u{n}", requirements=wants)
        state = replay(LOCATION, decide(state, join, T0), state)
    return state


def dispatch(
    state: QueueState, *connectors: SiteConnector, now: datetime = T0
) -> tuple[QueueState, dict[str, str]]:
    """The state after dispatching, and the new offers as ticket id → connector id."""
    events = decide(state, Dispatch(connectors=connectors), now)
    offers = {e.ticket_id: e.connector_id for e in events if isinstance(e, TicketOffered)}
    return replay(LOCATION, events, state), offers


def offers_for(state: QueueState, *connectors: SiteConnector, now: datetime = T0) -> dict[str, str]:
    return dispatch(state, *connectors, now=now)[1]


# --- line order ------------------------------------------------------------------------------------


def test_a_free_connector_goes_to_the_earliest_joined_ticket() -> None:
    assert offers_for(line(ANY, ANY, ANY), connector("c1")) == {"t1": "c1"}


def test_the_line_is_served_in_join_order_as_connectors_free_up() -> None:
    state, first = dispatch(line(ANY, ANY, ANY), connector("c1"), connector("c2", state="in_use"))
    _, second = dispatch(state, connector("c1", state="in_use"), connector("c2"), now=at(5))
    assert (first, second) == ({"t1": "c1"}, {"t2": "c2"})


def test_a_ticket_that_cannot_use_the_free_connector_does_not_block_those_behind_it() -> None:
    state = line(needs(["CHAdeMO"]), needs(min_kw=150), ANY, ANY)
    assert offers_for(state, connector("c1", type="CCS2", power_kw=50)) == {"t3": "c1"}


def test_several_free_connectors_are_offered_to_as_many_tickets_in_line_order() -> None:
    state = line(ANY, ANY, ANY, ANY)
    offers = offers_for(state, connector("c1"), connector("c2"), connector("c3"))
    assert sorted(offers) == ["t1", "t2", "t3"]
    assert sorted(offers.values()) == ["c1", "c2", "c3"]


def test_offers_are_made_in_line_order() -> None:
    events = decide(line(ANY, ANY, ANY), Dispatch(connectors=(connector("c1"), connector("c2"))), T0)
    assert [e.ticket_id for e in events if isinstance(e, TicketOffered)] == ["t1", "t2"]


def test_free_connectors_beyond_the_line_stay_unoffered() -> None:
    assert offers_for(line(ANY), connector("c1"), connector("c2")) == {"t1": "c1"}


def test_no_free_connector_no_offer() -> None:
    states: list[ConnectorState] = ["in_use", "faulted", "unavailable"]
    site = [connector(f"c{n}", state=s) for n, s in enumerate(states, start=1)]
    assert offers_for(line(ANY, ANY), *site) == {}


@pytest.mark.parametrize("state", ["in_use", "faulted", "unavailable", "offline", "unknown"])
def test_only_offerable_connectors_are_offered(state: ConnectorState) -> None:
    assert offers_for(line(ANY), connector("c1", state=state)) == {}


# --- wasting no connector --------------------------------------------------------------------------


def test_a_flexible_ticket_leaves_the_only_usable_connector_to_a_later_ticket() -> None:
    ccs, type2 = connector("a", type="CCS2"), connector("b", type="Type2")
    state = line(needs(["CCS2", "Type2"]), needs(["CCS2"]))
    assert offers_for(state, ccs, type2) == {"t1": "b", "t2": "a"}


def test_a_flexible_ticket_leaves_the_only_powerful_enough_connector_to_a_later_ticket() -> None:
    fast, slow = connector("a", power_kw=150), connector("b", power_kw=22)
    state = line(ANY, needs(min_kw=100))
    assert offers_for(state, fast, slow) == {"t1": "b", "t2": "a"}


def test_when_the_choice_matters_to_nobody_behind_the_most_powerful_connector_is_offered() -> None:
    state = line(ANY)
    assert offers_for(state, connector("a", power_kw=22), connector("b", power_kw=150)) == {"t1": "b"}


def test_a_flexible_ticket_does_not_take_the_only_connector_the_next_ticket_can_use() -> None:
    a, b = connector("a", type="CCS2"), connector("b", type="Type2")
    state = line(needs(["CCS2", "Type2"]), needs(["Type2"]), needs(["CCS2"]), needs(["CCS2"]))
    assert offers_for(state, a, b) == {"t1": "a", "t2": "b"}


# --- requirements ----------------------------------------------------------------------------------


def test_a_connector_below_the_minimum_power_is_not_offered() -> None:
    state = line(needs(min_kw=50))
    assert offers_for(state, connector("c1", power_kw=49.9)) == {}


def test_a_connector_with_exactly_the_minimum_power_is_offered() -> None:
    assert offers_for(line(needs(min_kw=50)), connector("c1", power_kw=50)) == {"t1": "c1"}


def test_a_connector_of_unknown_power_is_not_offered_to_a_ticket_with_a_minimum() -> None:
    state = line(needs(min_kw=7), ANY)
    assert offers_for(state, connector("c1", power_kw=None)) == {"t2": "c1"}


@pytest.mark.parametrize("spelling", ["Type2", "TYPE_2", "type 2", "type-2"])
def test_connector_types_match_however_they_are_spelled(spelling: str) -> None:
    state = line(needs([spelling]))
    assert offers_for(state, connector("c1", type="Type2")) == {"t1": "c1"}


@pytest.mark.parametrize("station_spelling", ["TYPE 2", "type_2", "Type2"])
def test_a_station_spelling_its_connector_type_differently_still_matches(station_spelling: str) -> None:
    assert offers_for(line(needs(["Type2"])), connector("c1", type=station_spelling)) == {"t1": "c1"}


def test_a_connector_of_another_type_is_not_offered() -> None:
    state = line(needs(["Type2"]), needs(["CCS2", "CHAdeMO"]))
    assert offers_for(state, connector("c1", type="CHAdeMO")) == {"t2": "c1"}


def test_a_connector_of_unknown_type_goes_only_to_a_ticket_taking_any_type() -> None:
    state = line(needs(["Type2"]), ANY)
    assert offers_for(state, connector("c1", type=None)) == {"t2": "c1"}


def test_a_ticket_limited_to_some_stations_is_offered_only_their_connectors() -> None:
    state = line(needs(stations=["st2"]), ANY)
    assert offers_for(state, connector("c1", station="st1")) == {"t2": "c1"}
    assert offers_for(state, connector("c1", station="st2")) == {"t1": "c1"}


def test_requirements_combine_all_filters() -> None:
    wants = needs(["Type2"], 22, ["st2"])
    site = [
        connector("a", station="st1", type="Type2", power_kw=22),
        connector("b", station="st2", type="CCS2", power_kw=22),
        connector("c", station="st2", type="Type2", power_kw=11),
    ]
    assert offers_for(line(wants), *site) == {}
    assert offers_for(line(wants), *site, connector("d", station="st2", type="type 2", power_kw=22)) == {
        "t1": "d"
    }


def test_requirements_are_normalised_so_equal_needs_compare_equal() -> None:
    assert needs(["type 2", "CCS2", "TYPE_2", ""], 11, ["st2", "st1", "st2"]) == Requirements(
        connector_types=("CCS2", "TYPE2"), min_power_kw=11, chargestation_ids=("st1", "st2")
    )
    assert needs() == Requirements()


# --- snoozes, priority, existing offers ------------------------------------------------------------


def test_a_snoozed_ticket_is_passed_over_until_its_snooze_is_over() -> None:
    state, _ = dispatch(line(ANY, ANY), connector("c1"))
    state = replay(LOCATION, decide(state, SnoozeOffer(ticket_id="t1"), at(10)), state)  # until 190
    state, offers = dispatch(state, connector("c1", state="in_use"), connector("c2"), now=at(189))
    assert offers == {"t2": "c2"}
    assert offers_for(
        state, connector("c1", state="in_use"), connector("c2", state="in_use"), connector("c3"), now=at(190)
    ) == {"t1": "c3"}


def test_a_ticket_whose_offer_was_revoked_is_served_before_earlier_joiners() -> None:
    state = line(needs(["Type2"]), ANY, ANY)  # t1 cannot use the CCS2 connector c1
    state, _ = dispatch(state, connector("c1"))  # t2 offered c1
    events = decide(state, Dispatch(connectors=(connector("c1", state="faulted"),)), at(10))
    assert [type(e) for e in events] == [OfferRevoked]
    state = replay(LOCATION, events, state)
    assert [t.id for t in state.line()] == ["t2", "t1", "t3"]
    site = (connector("c1", state="faulted"), connector("c2", type="Type2"))
    assert offers_for(state, *site, now=at(20)) == {"t2": "c2"}


def test_several_revoked_tickets_are_served_among_themselves_in_join_order() -> None:
    state, _ = dispatch(line(ANY, ANY, ANY), connector("c1"), connector("c2"))
    down = (connector("c1", state="offline"), connector("c2", state="offline"))
    state = replay(LOCATION, decide(state, Dispatch(connectors=down), at(10)), state)
    assert [(t.id, t.priority) for t in state.line()] == [("t1", True), ("t2", True), ("t3", False)]
    site = (*down, connector("c3", station="st2"))
    assert offers_for(state, *site, now=at(20)) == {"t1": "c3"}


@pytest.mark.parametrize("accepted", [False, True])
def test_an_offered_or_held_connector_is_not_offered_again(accepted: bool) -> None:
    state, _ = dispatch(line(ANY, ANY), connector("c1"))
    if accepted:
        state = replay(LOCATION, decide(state, AcceptOffer(ticket_id="t1"), at(1)), state)
    assert offers_for(state, connector("c1"), now=at(5)) == {}
    assert offers_for(state, connector("c1"), connector("c2"), now=at(5)) == {"t2": "c2"}


def test_assign_offers_skips_taken_connectors_and_tickets_that_are_not_waiting() -> None:
    state, _ = dispatch(line(ANY, ANY, ANY), connector("c1"))
    pairs = assign_offers(state.line(), [connector("c1"), connector("c2")], T0)
    assert [(t.id, c.connector_id) for t, c in pairs] == [("t2", "c2")]
