"""The waiting-ticket ETA: a range from current sessions and site history, leaning late, or no estimate."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st

from service.queue.eta import ChargingNow, ConnectorOutlook, Eta, SiteHistory, estimate_wait

MIN = 60
HISTORY = SiteHistory(
    session_lengths_s=tuple(float(m * MIN) for m in (25, 30, 35, 40, 45, 50, 55, 60, 70, 90)),
    handover_gaps_s=(60.0, 120.0, 180.0, 240.0),
)
NO_HISTORY = SiteHistory(session_lengths_s=(), handover_gaps_s=())
FREE = ConnectorOutlook(free_now=True, charging=None)
BUSY_UNKNOWN = ConnectorOutlook(free_now=False, charging=None)


def charging(
    elapsed_min: float,
    *,
    soc: float | None = None,
    power_kw: float | None = 50.0,
    energy_kwh: float | None = None,
) -> ConnectorOutlook:
    now = ChargingNow(elapsed_s=elapsed_min * MIN, energy_kwh=energy_kwh, power_kw=power_kw, soc_percent=soc)
    return ConnectorOutlook(free_now=False, charging=now)


def assert_sane(eta: Eta) -> None:
    assert 0 <= eta.low_s <= eta.high_s
    assert eta.low_s % MIN == 0
    assert eta.high_s % MIN == 0


def test_free_connector_and_nobody_ahead_means_right_away() -> None:
    assert estimate_wait(0, [FREE, charging(10)], HISTORY) == Eta(low_s=0, high_s=0)
    assert estimate_wait(0, [FREE], NO_HISTORY) == Eta(low_s=0, high_s=0)


def test_no_connectors_means_no_estimate() -> None:
    assert estimate_wait(0, [], HISTORY) is None


def test_no_history_and_no_session_info_means_no_estimate() -> None:
    assert estimate_wait(0, [BUSY_UNKNOWN], NO_HISTORY) is None
    assert estimate_wait(0, [charging(10, soc=None, power_kw=None)], NO_HISTORY) is None


def test_a_car_idling_at_next_to_no_power_gives_no_estimate_rather_than_an_endless_one() -> None:
    # Found by hypothesis in CI: 2e-311 kW made the charge time infinite, and rounding it raised.
    for power_kw in (2.225073858507e-311, 1e-9, 0.2):
        assert estimate_wait(0, [charging(0, soc=0.0, power_kw=power_kw)], NO_HISTORY) is None


def test_without_history_a_turn_after_the_known_frees_has_no_estimate() -> None:
    # One free connector serves the ticket ahead; when it frees again nobody can say without history.
    assert estimate_wait(1, [FREE], NO_HISTORY) is None


def test_an_unknown_connector_is_not_needed_when_a_free_one_serves_the_turn() -> None:
    assert estimate_wait(0, [BUSY_UNKNOWN, FREE], NO_HISTORY) == Eta(low_s=0, high_s=0)


def test_busy_connectors_give_a_non_zero_width_range() -> None:
    eta = estimate_wait(0, [charging(20)], HISTORY)
    assert eta is not None
    assert_sane(eta)
    assert eta.low_s < eta.high_s


def test_a_single_remembered_length_still_gives_a_range_not_a_point() -> None:
    history = SiteHistory(session_lengths_s=(1800.0,), handover_gaps_s=(120.0,))
    eta = estimate_wait(1, [FREE], history)
    assert eta is not None
    assert eta.low_s < eta.high_s


def test_more_tickets_ahead_means_later_and_wider() -> None:
    connectors = [charging(10), charging(30), BUSY_UNKNOWN]
    etas = [estimate_wait(ahead, connectors, HISTORY) for ahead in range(10)]
    assert all(eta is not None for eta in etas)
    lows = [eta.low_s for eta in etas if eta is not None]
    highs = [eta.high_s for eta in etas if eta is not None]
    assert lows == sorted(lows)
    assert all(earlier < later for earlier, later in itertools.pairwise(highs))
    # Uncertainty adds up: each full round of the connectors widens the range (single steps need not).
    widths = [high - low for low, high in zip(lows, highs, strict=True)]
    rounds = len(connectors)
    assert all(widths[i] < widths[i + rounds] for i in range(len(widths) - rounds))


def test_a_nearly_full_car_frees_its_connector_earlier_than_a_nearly_empty_one() -> None:
    nearly_full = estimate_wait(0, [charging(15, soc=92, power_kw=40, energy_kwh=35)], HISTORY)
    nearly_empty = estimate_wait(0, [charging(15, soc=25, power_kw=40, energy_kwh=10)], HISTORY)
    assert nearly_full is not None
    assert nearly_empty is not None
    assert nearly_full.high_s < nearly_empty.high_s
    assert nearly_full.low_s <= nearly_empty.low_s


def test_without_history_the_state_of_charge_and_power_still_give_a_range() -> None:
    eta = estimate_wait(0, [charging(20, soc=50, power_kw=50, energy_kwh=20)], NO_HISTORY)
    assert eta is not None
    assert_sane(eta)
    assert 0 < eta.low_s < eta.high_s


def test_without_history_a_faster_charger_frees_sooner() -> None:
    slow = estimate_wait(0, [charging(20, soc=50, power_kw=11)], NO_HISTORY)
    fast = estimate_wait(0, [charging(20, soc=50, power_kw=150)], NO_HISTORY)
    assert slow is not None
    assert fast is not None
    assert fast.high_s < slow.high_s


def test_a_session_far_past_the_typical_length_still_gets_a_bounded_positive_high() -> None:
    eta = estimate_wait(0, [charging(600)], HISTORY)
    assert eta is not None
    assert_sane(eta)
    assert 0 < eta.high_s <= 15 * MIN


def test_a_long_running_session_is_expected_to_run_on_not_to_end_at_once() -> None:
    # Survival: having lasted 50 minutes, it is one of the longer sessions; its end is still ahead.
    eta = estimate_wait(0, [charging(50)], HISTORY)
    assert eta is not None
    assert eta.high_s >= 10 * MIN


def test_bad_history_values_are_ignored() -> None:
    dirty = SiteHistory(
        session_lengths_s=(*HISTORY.session_lengths_s, -5.0, float("nan"), float("inf")),
        handover_gaps_s=(*HISTORY.handover_gaps_s, -1.0),
    )
    assert estimate_wait(2, [charging(10)], dirty) == estimate_wait(2, [charging(10)], HISTORY)


def test_negative_ahead_is_a_caller_error() -> None:
    with pytest.raises(ValueError, match="ahead"):
        estimate_wait(-1, [FREE], HISTORY)


durations = st.floats(min_value=0, max_value=6 * 3600, allow_nan=False)
sessions = st.builds(
    ChargingNow,
    elapsed_s=durations,
    energy_kwh=st.none() | st.floats(min_value=0, max_value=120, allow_nan=False),
    power_kw=st.none() | st.floats(min_value=0, max_value=350, allow_nan=False),
    soc_percent=st.none() | st.floats(min_value=0, max_value=100, allow_nan=False),
)
outlooks = st.one_of(
    st.just(FREE),
    st.just(BUSY_UNKNOWN),
    st.builds(ConnectorOutlook, free_now=st.just(False), charging=sessions),
)
histories = st.builds(
    SiteHistory,
    session_lengths_s=st.lists(durations, max_size=12).map(tuple),
    handover_gaps_s=st.lists(st.floats(min_value=0, max_value=1800), max_size=6).map(tuple),
)


@given(connectors=st.lists(outlooks, max_size=5), history=histories, ahead=st.integers(0, 12))
def test_the_range_is_ordered_whole_minutes_and_non_negative(
    connectors: list[ConnectorOutlook], history: SiteHistory, ahead: int
) -> None:
    eta = estimate_wait(ahead, connectors, history)
    if eta is not None:
        assert_sane(eta)
        assert eta.high_s == 0 or eta.low_s < eta.high_s  # only a certain offer is a point


@given(connectors=st.lists(outlooks, max_size=5), history=histories, ahead=st.integers(0, 12))
def test_one_more_ticket_ahead_never_brings_the_turn_earlier(
    connectors: list[ConnectorOutlook], history: SiteHistory, ahead: int
) -> None:
    now, then = estimate_wait(ahead, connectors, history), estimate_wait(ahead + 1, connectors, history)
    if now is None:
        assert then is None  # no basis for a turn means none for a later one either
    elif then is not None:
        assert now.low_s <= then.low_s
        assert now.high_s <= then.high_s
