"""``chargeline events tail``: print the latest events, then follow the log as it grows."""

from __future__ import annotations

import asyncio

import click
import msgspec

from service.db.engine import create_engine, resolve_database_url
from service.eventlog.doorbell import Doorbell
from service.eventlog.model import RecordedEvent
from service.eventlog.store import EventStore
from service.settings import Settings

_encode = msgspec.json.Encoder().encode


def format_event(event: RecordedEvent, *, as_json: bool) -> str:
    if as_json:
        return _encode(event).decode()
    recorded = event.recorded_at.isoformat(timespec="milliseconds")
    return f"{event.position:>10}  {recorded}  {event.stream_id}@{event.version}  {event.type}"


async def tail_events(
    settings: Settings,
    *,
    lines: int,
    follow: bool,
    as_json: bool,
    event_type: str | None = None,
    stream_id: str | None = None,
) -> None:
    url = await asyncio.to_thread(resolve_database_url, settings)
    engine = create_engine(url, pool_size=2)
    store = EventStore(engine)
    try:
        # The head first: whatever commits after it is followed, even if nothing matches below it.
        after = await store.head_position()
        latest = await store.read_latest(lines, stream_id=stream_id, type=event_type, up_to=after)
        for event in latest:
            click.echo(format_event(event, as_json=as_json))
        if not follow:
            return
        async with Doorbell(engine) as doorbell:
            seen = doorbell.rings
            while True:
                await doorbell.wait(seen)
                seen = doorbell.rings
                while batch := await store.read_all(after, 1000, stream_id=stream_id, type=event_type):
                    for event in batch:
                        click.echo(format_event(event, as_json=as_json))
                    after = batch[-1].position
    finally:
        await engine.dispose()
