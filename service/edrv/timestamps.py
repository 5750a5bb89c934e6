"""eDRV timestamps come as ISO 8601 (with or without an offset) or as epoch seconds / milliseconds."""

from __future__ import annotations

from datetime import UTC, datetime

_MILLISECONDS_FROM = 10**11  # epoch seconds reach this in the year 5138


def epoch_seconds(value: float) -> float:
    """An epoch timestamp in seconds, whether it was sent in seconds or in milliseconds."""
    return value / 1000 if abs(value) >= _MILLISECONDS_FROM else value


def parse_timestamp(value: object) -> datetime | None:
    """An aware datetime (no offset means UTC, never the host's zone), or None if unreadable."""
    if isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError:
            return None
        return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)
    if isinstance(value, int | float) and not isinstance(value, bool):
        try:
            return datetime.fromtimestamp(epoch_seconds(value), tz=UTC)
        except (OverflowError, OSError, ValueError):
            return None
    return None
