"""Appending and reading the log on a real PostgreSQL: versions, positions, expected versions."""

from __future__ import annotations

import asyncio

import msgspec
import pytest

from service.eventlog.model import (
    NO_STREAM,
    Appended,
    ConcurrencyError,
    Exact,
    UnstorableEvent,
)
from service.eventlog.store import EventStore
from tests.integration.helpers import T0, event


async def test_appended_events_read_back_with_versions_positions_and_data(store: EventStore) -> None:
    result = await store.append("station-1", [event(n=1), event("other.type", n=2)])
    assert isinstance(result, Appended)
    assert result.version == 2
    assert len(result.positions) == 2
    assert result.positions[0] < result.positions[1]

    events = await store.read_stream("station-1")
    assert [(e.version, e.type) for e in events] == [(1, "thing.happened"), (2, "other.type")]
    assert [e.position for e in events] == list(result.positions)
    assert msgspec.json.decode(events[1].data) == {"n": 2}
    assert msgspec.json.decode(events[0].metadata) == {"source": "test"}
    assert events[0].occurred_at == T0
    assert events[0].recorded_at.tzinfo is not None


async def test_versions_count_per_stream_and_positions_are_global(store: EventStore) -> None:
    await store.append("a", [event()])
    await store.append("b", [event()])
    await store.append("a", [event()])
    everything = await store.read_all()
    assert [(e.stream_id, e.version) for e in everything] == [("a", 1), ("b", 1), ("a", 2)]
    assert [e.position for e in everything] == sorted(e.position for e in everything)


async def test_read_stream_from_a_version(store: EventStore) -> None:
    await store.append("s", [event(n=i) for i in range(5)])
    assert [e.version for e in await store.read_stream("s", from_version=4)] == [4, 5]
    assert await store.read_stream("missing") == []


async def test_read_all_pages_by_position_and_filters(store: EventStore) -> None:
    for i in range(6):
        await store.append(f"s{i % 2}", [event("even" if i % 2 == 0 else "odd", i=i)])
    first = await store.read_all(0, 4)
    assert len(first) == 4
    rest = await store.read_all(first[-1].position, 4)
    assert len(rest) == 2
    assert {e.stream_id for e in await store.read_all(0, 100, stream_id="s1")} == {"s1"}
    assert [msgspec.json.decode(e.data)["i"] for e in await store.read_all(0, 100, type="even")] == [0, 2, 4]
    assert len(await store.read_all(0, 100, stream_id="s0", type="odd")) == 0
    latest = await store.read_latest(2)
    assert [msgspec.json.decode(e.data)["i"] for e in latest] == [4, 5]


async def test_no_stream_expectation_refuses_an_existing_stream(store: EventStore) -> None:
    assert isinstance(await store.append("s", [event()], expected=NO_STREAM), Appended)
    with pytest.raises(ConcurrencyError) as caught:
        await store.append("s", [event()], expected=NO_STREAM)
    assert (caught.value.stream_id, caught.value.expected, caught.value.actual) == ("s", NO_STREAM, 1)


async def test_exact_expectation_refuses_a_stream_that_moved_on(store: EventStore) -> None:
    await store.append("s", [event(), event()])
    assert isinstance(await store.append("s", [event()], expected=Exact(2)), Appended)
    with pytest.raises(ConcurrencyError) as caught:
        await store.append("s", [event()], expected=Exact(2))
    assert caught.value.actual == 3
    assert caught.value.expected == Exact(2)
    assert len(await store.read_stream("s")) == 3


async def test_concurrent_deciders_on_one_version_exactly_one_wins(store: EventStore) -> None:
    await store.append("queue", [event()])
    results = await asyncio.gather(
        *(store.append("queue", [event(who=i)], expected=Exact(1)) for i in range(10)),
        return_exceptions=True,
    )
    assert sum(isinstance(r, Appended) for r in results) == 1
    assert sum(isinstance(r, ConcurrencyError) for r in results) == 9
    assert [e.version for e in await store.read_stream("queue")] == [1, 2]


async def test_a_refused_append_does_not_disturb_others_in_the_same_batch(store: EventStore) -> None:
    await store.append("taken", [event()])
    results = await asyncio.gather(
        store.append("fresh-1", [event()]),
        store.append("taken", [event()], expected=NO_STREAM),
        store.append("fresh-2", [event()]),
        return_exceptions=True,
    )
    assert isinstance(results[0], Appended)
    assert isinstance(results[1], ConcurrencyError)
    assert isinstance(results[2], Appended)


async def test_several_appends_to_one_stream_in_one_batch_get_consecutive_versions(store: EventStore) -> None:
    results = await asyncio.gather(*(store.append("busy", [event(i=i)]) for i in range(20)))
    assert sorted(r.version for r in results if isinstance(r, Appended)) == list(range(1, 21))
    events = await store.read_stream("busy")
    assert [e.position for e in events] == sorted(e.position for e in events)


async def test_json_postgres_cannot_store_fails_alone_and_spares_the_batch(store: EventStore) -> None:
    bad = event()
    bad = msgspec.structs.replace(bad, data=b'{"note": "nul \\u0000 inside"}')
    results = await asyncio.gather(
        store.append("ok-1", [event()]),
        store.append("bad", [bad]),
        store.append("ok-2", [event()]),
        return_exceptions=True,
    )
    assert isinstance(results[0], Appended)
    assert isinstance(results[1], UnstorableEvent)
    assert isinstance(results[2], Appended)
    assert {e.stream_id for e in await store.read_all()} == {"ok-1", "ok-2"}


async def test_appends_in_one_batch_share_one_transaction(store: EventStore) -> None:
    batches_before = store.committer.batches
    await asyncio.gather(*(store.append(f"s{i}", [event()]) for i in range(50)))
    assert store.committer.batches - batches_before <= 2  # all were queued before the writer woke
    recorded = {e.recorded_at for e in await store.read_all()}
    assert len(recorded) <= 2  # recorded_at is taken once per batch, under the append lock
