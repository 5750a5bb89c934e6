"""What goes into the log, what comes out, and how an append can fail."""

from __future__ import annotations

from datetime import datetime

import msgspec


class NewEvent(msgspec.Struct, frozen=True, kw_only=True):
    """An event about to be appended. ``data`` and ``metadata`` are JSON objects, already encoded."""

    type: str
    data: bytes
    metadata: bytes = b"{}"
    occurred_at: datetime


class RecordedEvent(msgspec.Struct, frozen=True, gc=False, kw_only=True):
    position: int
    stream_id: str
    version: int
    type: str
    data: msgspec.Raw
    metadata: msgspec.Raw
    occurred_at: datetime
    recorded_at: datetime


# Expected stream version for optimistic concurrency (the KurrentDB vocabulary).
class AnyVersion(msgspec.Struct, frozen=True):
    """Append whatever the stream's version is."""


class NoStream(msgspec.Struct, frozen=True):
    """Append only if the stream has no events yet."""


class Exact(msgspec.Struct, frozen=True):
    """Append only if the stream's last event has exactly this version."""

    version: int


Expected = AnyVersion | NoStream | Exact
ANY = AnyVersion()
NO_STREAM = NoStream()


def required_version(expected: Expected) -> int | None:
    """The version the stream must be at for the append to go ahead (0: no events yet); None: any."""
    match expected:
        case AnyVersion():
            return None
        case NoStream():
            return 0
        case Exact(version):
            return version


class ConcurrencyError(Exception):
    """The stream moved on since the caller decided: re-read and decide again."""

    def __init__(self, stream_id: str, expected: Expected, actual: int) -> None:
        super().__init__(f"stream {stream_id!r}: expected {expected!r}, actual version {actual}")
        self.stream_id = stream_id
        self.expected = expected
        self.actual = actual


class StoreUnavailable(Exception):
    """The database could not be reached or refused the append. It did not commit, or (connection lost
    while committing) may have: callers retry, and the inbox makes a retried delivery harmless."""


class UnstorableEvent(Exception):
    """PostgreSQL refuses the event's JSON (e.g. a ``\\u0000`` escape, which jsonb cannot hold)."""


class InboxKey(msgspec.Struct, frozen=True, kw_only=True):
    """Identifies an external delivery so redeliveries are recognised in the append transaction."""

    source: str
    external_id: str
    payload_sha256: bytes
    body: bytes
    """The raw delivery, kept if the same id ever arrives with a different payload."""


class AppendRequest(msgspec.Struct, frozen=True, kw_only=True):
    stream_id: str
    events: tuple[NewEvent, ...]
    expected: Expected = ANY
    inbox: InboxKey | None = None


# What an append did. A redelivery is not an error: the caller answers it as it answered the original.
class Appended(msgspec.Struct, frozen=True):
    positions: tuple[int, ...]
    version: int
    """The stream's version after the append."""


class Duplicate(msgspec.Struct, frozen=True):
    """The same delivery (same id, same payload) was already stored at ``position``."""

    position: int


class ConflictingRedelivery(msgspec.Struct, frozen=True):
    """Same id, different payload: kept in ``inbox_conflicts`` for operators; the log is unchanged."""

    original_position: int


AppendResult = Appended | Duplicate | ConflictingRedelivery
