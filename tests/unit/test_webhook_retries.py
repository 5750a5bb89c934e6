"""The retry rules of outbound webhooks: what is retried, when, and when it stops."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from service.outbound.retries import (
    RETRY_WINDOW,
    Delivered,
    GaveUp,
    RetryAt,
    backoff,
    failing_too_long,
    judge,
    retry_after,
)

T0 = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)


def _judge(status: int | None, *, attempt: int = 1, now: datetime = T0, header: str | None = None) -> object:
    return judge(
        status_code=status,
        error=None if status else "ConnectError: refused",
        retry_after_header=header,
        attempt=attempt,
        enqueued_at=T0,
        now=now,
        jitter=lambda: 0.5,
    )


@pytest.mark.parametrize("status", [200, 201, 202, 204, 299])
def test_any_2xx_answer_is_a_delivery(status: int) -> None:
    assert _judge(status) == Delivered()


@pytest.mark.parametrize("status", [None, 408, 409, 429, 500, 502, 503, 504])
def test_no_answer_5xx_408_409_and_429_are_retried(status: int | None) -> None:
    assert isinstance(_judge(status), RetryAt)


@pytest.mark.parametrize("status", [301, 302, 400, 401, 403, 404, 410, 413, 422])
def test_other_answers_are_final(status: int) -> None:
    outcome = _judge(status)
    assert isinstance(outcome, GaveUp)
    assert f"HTTP {status}" in outcome.error


def test_backoff_grows_fourfold_from_five_seconds_up_to_four_hours_with_jitter_in_the_upper_half() -> None:
    steps = [backoff(n, 0.999999).total_seconds() for n in range(1, 10)]
    assert steps == pytest.approx([5, 20, 80, 320, 1280, 5120, 14400, 14400, 14400], rel=1e-5)
    assert [backoff(n, 0.0).total_seconds() for n in (1, 2, 7)] == [2.5, 10, 7200]


def test_retry_after_in_seconds_or_as_a_date_is_honoured_on_429_and_503() -> None:
    assert _judge(429, header="120") == RetryAt(T0 + timedelta(seconds=120), "HTTP 429")
    date = "Sat, 28 Nov 2026 12:10:00 GMT"
    assert _judge(503, header=date) == RetryAt(T0 + timedelta(minutes=10), "HTTP 503")
    # Elsewhere, and when unreadable, the backoff decides.
    assert _judge(500, header="120") == RetryAt(T0 + backoff(1, 0.5), "HTTP 500")
    assert _judge(429, header="soon") == RetryAt(T0 + backoff(1, 0.5), "HTTP 429")


def test_retry_after_zero_is_not_a_busy_loop() -> None:
    assert _judge(429, header="0") == RetryAt(T0 + timedelta(seconds=1), "HTTP 429")


@pytest.mark.parametrize(
    "header", ["²", "٣", "99999999999999999999", "1000000000000", "Fri, 31 Dec 9999 23:59:59 GMT", "-1", " "]
)
def test_no_retry_after_an_endpoint_sends_can_break_the_schedule(header: str) -> None:
    outcome = _judge(429, header=header)
    assert isinstance(outcome, RetryAt)
    assert T0 < outcome.at <= T0 + RETRY_WINDOW


def test_retry_after_parsing() -> None:
    assert retry_after(None, T0) is None
    assert retry_after(" 7 ", T0) == timedelta(seconds=7)
    assert retry_after("Sat, 28 Nov 2026 11:00:00 GMT", T0) == timedelta(0)  # a date in the past: now
    assert retry_after("-5", T0) is None


def test_the_last_try_comes_as_the_24_hours_end_and_then_the_message_is_given_up() -> None:
    late = T0 + RETRY_WINDOW - timedelta(minutes=1)
    assert _judge(500, attempt=8, now=late) == RetryAt(T0 + RETRY_WINDOW, "HTTP 500")
    assert _judge(429, now=late, header="7200") == RetryAt(T0 + RETRY_WINDOW, "HTTP 429")
    outcome = _judge(500, attempt=9, now=T0 + RETRY_WINDOW)
    assert isinstance(outcome, GaveUp)
    assert "gave up" in outcome.error


def test_an_endpoint_is_failing_too_long_after_24_hours_of_failures() -> None:
    assert not failing_too_long(None, T0)
    assert not failing_too_long(T0, T0 + RETRY_WINDOW - timedelta(seconds=1))
    assert failing_too_long(T0, T0 + RETRY_WINDOW)


def test_the_whole_schedule_makes_about_fifteen_attempts_in_24_hours() -> None:
    now, attempt = T0, 1
    while isinstance(outcome := _judge(500, attempt=attempt, now=now), RetryAt):
        now, attempt = outcome.at, attempt + 1
    assert 12 <= attempt <= 16
    assert now <= T0 + RETRY_WINDOW
