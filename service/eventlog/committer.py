"""Group commit: concurrent appends share one transaction, and each caller is answered after it commits.

Each writer drains everything queued while earlier batches were in flight, so under load a batch grows
to the number of concurrent callers and the database pays one commit (one WAL flush, one advisory-lock
round) for all of them. At low load a batch is a single append, so there is no waiting for a batch to
fill. Two batches may be in flight at once: the second waits for the append lock inside PostgreSQL, so
it starts the moment the first commits instead of a client round trip later.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Generic, TypeVar

from service.eventlog.model import StoreUnavailable
from service.metrics import APPEND_BATCH_SIZE

log = logging.getLogger(__name__)

Request = TypeVar("Request")
Result = TypeVar("Result")

WriteBatch = Callable[[Sequence[Request]], Awaitable[Sequence[Result | BaseException]]]


class GroupCommitter(Generic[Request, Result]):
    def __init__(
        self,
        write_batch: WriteBatch[Request, Result],
        *,
        max_batch: int = 512,
        max_batch_bytes: int = 16 * 1024 * 1024,
        size_of: Callable[[Request], int] = lambda _: 0,
        max_in_flight: int = 2,
        max_pending: int = 10_000,
    ) -> None:
        self._write_batch = write_batch
        self._max_batch = max_batch
        self._max_batch_bytes = max_batch_bytes
        self._size_of = size_of
        self._max_pending = max_pending
        self._slots = asyncio.Semaphore(max_in_flight)
        self._in_flight: set[asyncio.Task[None]] = set()
        self._pending: deque[tuple[Request, asyncio.Future[Result]]] = deque()
        self._wakeup = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._closing = False
        self.batches = 0

    def start(self) -> None:
        self._closing = False
        self._task = asyncio.create_task(self._run(), name="eventlog-group-commit")

    async def close(self) -> None:
        """Stop accepting work, finish what is queued, then stop the writer."""
        self._closing = True
        self._wakeup.set()
        if self._task is not None:
            await self._task
            self._task = None

    async def submit(self, request: Request) -> Result:
        if self._closing or self._task is None:
            raise StoreUnavailable("the event log is not accepting appends (shutting down or not started)")
        if len(self._pending) >= self._max_pending:  # the database cannot keep up: shed load, fast
            raise StoreUnavailable(f"{len(self._pending)} appends already waiting for the database")
        future: asyncio.Future[Result] = asyncio.get_running_loop().create_future()
        future.add_done_callback(_mark_retrieved)
        self._pending.append((request, future))
        self._wakeup.set()
        # A caller that goes away (client disconnect) cancels only its wait: batches are written by
        # their own tasks, so the append still commits.
        return await future

    async def _run(self) -> None:
        while True:
            if not self._pending:
                if self._closing:
                    await asyncio.gather(*self._in_flight)
                    return
                await self._wakeup.wait()
                self._wakeup.clear()
                continue
            await self._slots.acquire()
            batch = self._take_batch()
            task = asyncio.create_task(self._commit(batch))
            self._in_flight.add(task)
            task.add_done_callback(self._in_flight.discard)

    def _take_batch(self) -> list[tuple[Request, asyncio.Future[Result]]]:
        """The oldest waiting appends, up to the count and byte limits (at least one)."""
        batch = [self._pending.popleft()]
        size = self._size_of(batch[0][0])
        while self._pending and len(batch) < self._max_batch:
            size += self._size_of(self._pending[0][0])
            if size > self._max_batch_bytes:
                break
            batch.append(self._pending.popleft())
        return batch

    async def _commit(self, batch: list[tuple[Request, asyncio.Future[Result]]]) -> None:
        try:
            try:
                results = await self._write_batch([request for request, _ in batch])
            except Exception as exc:  # a bug in the writer must fail this batch, not kill the writer
                log.exception("group commit of %d appends failed", len(batch))
                results = [exc] * len(batch)
        finally:
            self._slots.release()
        self.batches += 1
        APPEND_BATCH_SIZE.observe(len(batch))
        for (_, future), result in zip(batch, results, strict=True):
            if future.done():
                continue
            if isinstance(result, BaseException):
                future.set_exception(result)
            else:
                future.set_result(result)


def _mark_retrieved(future: asyncio.Future[Any]) -> None:
    # If the caller went away, nobody awaits the outcome; the error was logged where it happened.
    if not future.cancelled():
        future.exception()
