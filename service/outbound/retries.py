"""When to try a delivery again, and when to stop: pure functions of an attempt's result and the clock.

- 2xx: delivered.
- No answer (timeout, connection error), 5xx, 408, 409 and 429: try again, with exponential backoff and
  jitter (5 s, 20 s, 80 s, ... up to 4 h between attempts), or after the endpoint's ``Retry-After``.
- Anything else (3xx: redirects are not followed; other 4xx): the endpoint has refused the message;
  retrying would not change its mind.
- A message is tried for 24 h after it was enqueued, the last time as the 24 h end; an endpoint that has
  failed every attempt for 24 h is disabled (the operator re-enables it and replays what it missed).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import datetime, timedelta
from email.utils import parsedate_to_datetime

import msgspec

RETRY_WINDOW = timedelta(hours=24)
FIRST_DELAY = timedelta(seconds=5)
GROWTH = 4
LONGEST_DELAY = timedelta(hours=4)
RETRYABLE_4XX = frozenset({408, 409, 429})
_SECONDS = re.compile(r"[0-9]{1,20}")  # ASCII digits only: str.isdigit() also takes "²"


class Delivered(msgspec.Struct, frozen=True):
    pass


class RetryAt(msgspec.Struct, frozen=True):
    at: datetime
    error: str


class GaveUp(msgspec.Struct, frozen=True):
    error: str


Outcome = Delivered | RetryAt | GaveUp


def backoff(attempt: int, jitter: float) -> timedelta:
    """The pause after the ``attempt``-th failed attempt (1-based). ``jitter`` in [0, 1) spreads retries
    over the upper half of each step, so endpoints that fail together are not retried together."""
    step = min(FIRST_DELAY * float(GROWTH) ** (attempt - 1), LONGEST_DELAY)
    return step * (0.5 + jitter / 2)


def retry_after(value: str | None, now: datetime) -> timedelta | None:
    """A ``Retry-After`` header (seconds or an HTTP date) as a pause, at most the retry window; None if
    absent or unreadable. Whatever an endpoint sends must not break the sender."""
    if value is None:
        return None
    value = value.strip()
    if _SECONDS.fullmatch(value):
        return min(timedelta(seconds=int(value[:9])), RETRY_WINDOW)  # 9 digits: years, no overflow
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, OverflowError):
        return None
    if when.tzinfo is None:
        return None
    return min(max(when - now, timedelta(0)), RETRY_WINDOW)


def judge(
    *,
    status_code: int | None,
    error: str | None,
    retry_after_header: str | None,
    attempt: int,
    enqueued_at: datetime,
    now: datetime,
    jitter: Callable[[], float],
) -> Outcome:
    """What to do after ``attempt`` (1-based) got ``status_code`` (None: no answer, see ``error``)."""
    if status_code is not None and 200 <= status_code < 300:
        return Delivered()
    reason = error or f"HTTP {status_code}"
    retryable = status_code is None or status_code >= 500 or status_code in RETRYABLE_4XX
    if not retryable:
        return GaveUp(reason)
    pause = None
    if status_code in (429, 503):
        pause = retry_after(retry_after_header, now)
    if pause is None:
        pause = backoff(attempt, jitter())
    pause = max(pause, timedelta(seconds=1))  # "Retry-After: 0" must not become a busy loop
    deadline = enqueued_at + RETRY_WINDOW
    if now >= deadline:
        return GaveUp(f"{reason} (gave up: still failing 24 h after it was enqueued)")
    return RetryAt(min(now + pause, deadline), reason)  # the last try comes as the window closes


def failing_too_long(failing_since: datetime | None, now: datetime) -> bool:
    """Whether an endpoint has failed every attempt for the whole retry window: time to disable it."""
    return failing_since is not None and now - failing_since >= RETRY_WINDOW
