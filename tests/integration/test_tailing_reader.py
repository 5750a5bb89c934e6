"""A reader that tails the log by position never misses an event, whatever the writers do.

Several stores with their own connection pools stand in for several server processes appending at
once. Positions are drawn at insert but become visible at commit; without the append lock a reader
could pass a position whose transaction has not committed yet and never see it (the own-streams case
fails that way when the lock is removed; the shared-streams case fails on versions first).
"""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from service.db.engine import create_engine
from service.eventlog.model import Appended
from service.eventlog.store import EventStore
from tests.integration.helpers import event

WRITERS = 6
APPENDS_PER_WRITER = 150


@pytest.mark.parametrize("shared_streams", [False, True], ids=["own-streams", "shared-streams"])
async def test_tailing_reader_sees_every_event_exactly_once_in_order(
    database_url: str, engine: AsyncEngine, shared_streams: bool
) -> None:
    reader = EventStore(engine)
    engines = [create_engine(database_url, pool_size=2) for _ in range(WRITERS)]
    writers = [EventStore(e) for e in engines]
    for writer in writers:
        await writer.start()
    committed: list[int] = []
    done = asyncio.Event()

    async def write(index: int, writer: EventStore) -> None:
        for n in range(APPENDS_PER_WRITER):
            # Two concurrent appends per writer, so each process also batches.
            results = await asyncio.gather(
                writer.append(f"w{index}-{n % 7}", [event(n=n)]),
                writer.append(
                    f"shared-{n % 3}" if shared_streams else f"w{index}-x{n % 3}", [event(n=n), event(n=n)]
                ),
            )
            for result in results:
                assert isinstance(result, Appended)
                committed.extend(result.positions)

    async def tail() -> list[int]:
        seen: list[int] = []
        after = 0
        while True:
            finished = done.is_set()  # read once more after the writers are done
            for recorded in await reader.read_all(after, 200):
                seen.append(recorded.position)
                after = recorded.position
            if finished:
                return seen

    tailing = asyncio.create_task(tail())
    try:
        await asyncio.gather(*(write(i, w) for i, w in enumerate(writers)))
    finally:
        done.set()
        for writer in writers:
            await writer.close()
        for e in engines:
            await e.dispose()
    seen = await tailing

    assert len(committed) == WRITERS * APPENDS_PER_WRITER * 3
    assert seen == sorted(seen), "positions went backwards"
    assert len(seen) == len(set(seen)), "an event was read twice"
    missed = set(committed) - set(seen)
    assert not missed, f"the tailing reader skipped {len(missed)} committed events"
    if shared_streams:  # processes racing on the same streams still produce gapless versions
        for n in range(3):
            versions = [e.version for e in await reader.read_stream(f"shared-{n}")]
            assert versions == list(range(1, len(versions) + 1))
