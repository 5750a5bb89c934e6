"""Feeding fixtures to the folds the way the log would: one RecordedEvent per delivery id."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from typing import TypeVar

import msgspec

from service.edrv.envelope import decode_envelope, stream_id_for
from service.eventlog.model import RecordedEvent
from tests.conftest import FIXTURES

View = TypeVar("View")


def recorded(body: bytes, position: int = 1) -> RecordedEvent:
    envelope, resource_id = decode_envelope(body)
    return RecordedEvent(
        position=position,
        stream_id=stream_id_for(envelope, resource_id),
        version=1,
        type=envelope.type,
        data=envelope.data,
        metadata=msgspec.Raw(b"{}"),
        occurred_at=envelope.occurred_at() or datetime.now(UTC),
        recorded_at=datetime.now(UTC),
    )


def fixture(name: str) -> RecordedEvent:
    return recorded((FIXTURES / name).read_bytes())


def scenario() -> list[RecordedEvent]:
    """The one-day scenario as the log holds it: deliveries in order, a redelivered `_id` once."""
    seen: set[str] = set()
    events: list[RecordedEvent] = []
    for line in (FIXTURES / "scenario.one-location-day.jsonl").read_bytes().splitlines():
        envelope, _ = decode_envelope(line)
        if envelope.id not in seen:
            seen.add(envelope.id)
            events.append(recorded(line, position=len(events) + 1))
    return events


def with_data(event: RecordedEvent, **changes: object) -> RecordedEvent:
    """The same event with some top-level fields of its ``data`` replaced."""
    data = json.loads(bytes(event.data))
    data.update(changes)
    return msgspec.structs.replace(event, data=msgspec.Raw(json.dumps(data).encode()))


def fold(
    evolve: Callable[[View | None, RecordedEvent], View | None], events: Iterable[RecordedEvent]
) -> dict[str, View]:
    """Every stream's view after ``events``."""
    views: dict[str, View] = {}
    for event in events:
        view = evolve(views.get(event.stream_id), event)
        if view is not None:
            views[event.stream_id] = view
    return views
