"""The group committer: concurrent appends share a write, and each caller gets its own outcome."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pytest

from service.eventlog.committer import GroupCommitter
from service.eventlog.model import StoreUnavailable


class RecordingWriter:
    def __init__(self, delay_s: float = 0.01) -> None:
        self.batches: list[list[int]] = []
        self.delay_s = delay_s

    async def __call__(self, items: Sequence[int]) -> list[int | BaseException]:
        self.batches.append(list(items))
        await asyncio.sleep(self.delay_s)
        return [ValueError(f"odd {item}") if item % 2 else item * 10 for item in items]


async def test_appends_arriving_during_a_write_share_the_next_batch() -> None:
    writer = RecordingWriter()
    committer: GroupCommitter[int, int] = GroupCommitter(writer)
    committer.start()
    first = asyncio.create_task(committer.submit(0))
    await asyncio.sleep(0)  # the first write starts alone
    rest = [asyncio.create_task(committer.submit(item)) for item in range(2, 42, 2)]
    assert await first == 0
    assert await asyncio.gather(*rest) == [item * 10 for item in range(2, 42, 2)]
    await committer.close()
    assert writer.batches == [[0], list(range(2, 42, 2))]


async def test_each_caller_gets_its_own_result_or_error() -> None:
    committer: GroupCommitter[int, int] = GroupCommitter(RecordingWriter())
    committer.start()
    results = await asyncio.gather(*(committer.submit(i) for i in range(4)), return_exceptions=True)
    await committer.close()
    assert results[0] == 0
    assert results[2] == 20
    assert isinstance(results[1], ValueError)
    assert isinstance(results[3], ValueError)


async def test_batches_never_exceed_the_maximum() -> None:
    writer = RecordingWriter()
    committer: GroupCommitter[int, int] = GroupCommitter(writer, max_batch=8)
    committer.start()
    await asyncio.gather(*(committer.submit(i * 2) for i in range(50)))
    await committer.close()
    assert max(len(batch) for batch in writer.batches) == 8
    assert sum(len(batch) for batch in writer.batches) == 50


async def test_a_crashing_writer_fails_its_batch_but_keeps_serving() -> None:
    calls = 0

    async def flaky(items: Sequence[int]) -> list[int | BaseException]:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise RuntimeError("bug")
        return list(items)

    committer: GroupCommitter[int, int] = GroupCommitter(flaky)
    committer.start()
    with pytest.raises(RuntimeError, match="bug"):
        await committer.submit(1)
    assert await committer.submit(2) == 2
    await committer.close()


async def test_close_finishes_queued_appends_then_refuses_new_ones() -> None:
    writer = RecordingWriter()
    committer: GroupCommitter[int, int] = GroupCommitter(writer)
    committer.start()
    pending = [asyncio.create_task(committer.submit(i * 2)) for i in range(5)]
    await asyncio.sleep(0)
    await committer.close()
    assert await asyncio.gather(*pending) == [0, 20, 40, 60, 80]
    with pytest.raises(StoreUnavailable):
        await committer.submit(2)


async def test_batches_stay_under_the_byte_limit_but_always_take_one() -> None:
    writer = RecordingWriter(delay_s=0)
    committer: GroupCommitter[int, int] = GroupCommitter(
        writer, max_batch_bytes=100, size_of=lambda item: item
    )
    committer.start()
    await asyncio.gather(*(committer.submit(size) for size in (40, 40, 40, 500, 20)))
    await committer.close()
    assert writer.batches[1:] == [[40, 40], [40], [500], [20]] or sum(map(len, writer.batches)) == 5
    assert all(sum(batch) <= 100 or len(batch) == 1 for batch in writer.batches)


async def test_when_too_many_appends_wait_new_ones_are_refused_at_once() -> None:
    writer = RecordingWriter(delay_s=0.05)
    committer: GroupCommitter[int, int] = GroupCommitter(writer, max_pending=3, max_in_flight=1)
    committer.start()
    first = asyncio.create_task(committer.submit(0))
    await asyncio.sleep(0)  # the first is being written ...
    waiting = [asyncio.create_task(committer.submit(i * 2)) for i in range(1, 4)]
    await asyncio.sleep(0)  # ... and three wait behind it
    with pytest.raises(StoreUnavailable, match="waiting"):
        await committer.submit(100)
    assert await asyncio.gather(first, *waiting) == [0, 20, 40, 60]
    await committer.close()


async def test_a_caller_that_goes_away_does_not_cancel_the_write() -> None:
    writer = RecordingWriter(delay_s=0.05)
    committer: GroupCommitter[int, int] = GroupCommitter(writer)
    committer.start()
    task = asyncio.create_task(committer.submit(4))
    await asyncio.sleep(0.01)
    task.cancel()
    await committer.close()
    assert writer.batches == [[4]]
