"""Reads shared by the streams that react to the same event.

When an event reaches a thousand viewers of one location's board, the board is read once, not a thousand
times: results are kept per (what, position) for the few most recent positions, and every stream that
asks for the same one awaits the same read.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar, cast

T = TypeVar("T")


class SharedReads:
    def __init__(self, size: int = 512) -> None:
        self.size = size
        self._reads: OrderedDict[tuple[str, str, int], asyncio.Task[Any]] = OrderedDict()

    async def get(self, what: str, key: str, position: int, read: Callable[[], Awaitable[T]]) -> T:
        """The result of ``read()`` for ``what`` of ``key`` as of log ``position``, read once."""
        slot = (what, key, position)
        task = self._reads.get(slot)
        if task is not None and task.done() and not task.cancelled() and task.exception() is None:
            return cast(T, task.result())  # the common case in a broadcast: read already, no waiting
        if task is None:
            task = asyncio.ensure_future(read())
            self._reads[slot] = task
            task.add_done_callback(lambda done: self._forget_failure(slot, done))
            while len(self._reads) > self.size:
                self._reads.popitem(last=False)
        # Shielded: one stream going away must not cancel a read the others wait for.
        return cast(T, await asyncio.shield(task))

    def _forget_failure(self, slot: tuple[str, str, int], task: asyncio.Task[Any]) -> None:
        if (task.cancelled() or task.exception() is not None) and self._reads.get(slot) is task:
            del self._reads[slot]  # the next stream reads again
