"""A read model stored one row (or a few) per stream: load the views a batch touches, fold, save.

Subclasses say which events they read, how a view is keyed, loaded, evolved and saved; the batch
logic (one load, fold in memory, one bulk save, poison events caught per event) lives here once.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import TYPE_CHECKING, Generic, TypeVar

from service.eventlog.model import RecordedEvent
from service.projections.runner import Poison

if TYPE_CHECKING:
    import asyncpg

    Connection = asyncpg.Connection[asyncpg.Record]

View = TypeVar("View")


class TableProjection(ABC, Generic[View]):
    name: str
    event_types: tuple[str, ...] | None
    stream_prefix: str
    """Streams are ``<prefix><key>``; the key is the row's id."""
    tables: tuple[str, ...]
    """The read model's tables (a rebuild builds fresh ones beside them, then swaps)."""
    pace_s: float = 0.1
    """How long the runner lets work gather after a step that did some (see ``ProjectionRunner``)."""

    def key_of(self, event: RecordedEvent) -> str:
        """Which view an event belongs to: by default, the one of its stream."""
        return event.stream_id.removeprefix(self.stream_prefix)

    @abstractmethod
    def evolve(self, view: View | None, event: RecordedEvent) -> View | None:
        """The pure fold."""

    @abstractmethod
    async def load(self, connection: Connection, keys: list[str]) -> dict[str, View]:
        """The current views of these keys (absent keys have none yet)."""

    @abstractmethod
    async def save(self, connection: Connection, changed: list[tuple[View, int]]) -> None:
        """Upsert these views, each with the position of the last event it reflects."""

    async def apply(self, connection: Connection, events: Sequence[RecordedEvent]) -> list[Poison]:
        poisons: list[Poison] = []
        keyed: list[tuple[str, RecordedEvent]] = []
        for event in events:
            if self.event_types is None or event.type in self.event_types:
                try:
                    keyed.append((self.key_of(event), event))
                except Exception as exc:  # whatever a fold cannot take: record it, never stall on it
                    poisons.append(poison_of(event, exc))
        if not keyed:
            return poisons
        views = await self.load(connection, list({key for key, _ in keyed}))
        changed: dict[str, tuple[View, int]] = {}
        for key, event in keyed:
            try:
                view = self.evolve(views.get(key), event)
            except Exception as exc:
                poisons.append(poison_of(event, exc))
                continue
            if view is not None and view is not views.get(key):
                views[key] = view
                changed[key] = (view, event.position)
        if changed:
            await self.save(connection, list(changed.values()))
        return poisons


def poison_of(event: RecordedEvent, exc: Exception) -> Poison:
    return Poison(event.position, event.type, f"{type(exc).__name__}: {exc}")
