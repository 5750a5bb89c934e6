"""A doorbell that rings when the log grows: LISTEN on one connection, with a polling fallback.

NOTIFY is only a hint (lost while disconnected, dropped if nobody listens); readers always re-read the
log from their own position, so a missed ring costs at most one poll interval.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine

from service.eventlog.store import NOTIFY_CHANNEL

log = logging.getLogger(__name__)

KEEPALIVE_S = 5.0
LISTENER_NAME = "chargeline-listener"
"""The LISTEN connection's application_name."""


class Doorbell:
    def __init__(self, engine: AsyncEngine, *, poll_interval_s: float = 1.0, retry_s: float = 1.0) -> None:
        self._engine = engine
        self._poll_interval_s = poll_interval_s
        self._retry_s = retry_s
        self._rang = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.listening = asyncio.Event()
        self.head = 0
        """The log's highest position as far as the doorbell knows (read on connect, then announced)."""
        self.rings = 0
        """How many times it has rung: take it before reading the log, pass it to ``wait``."""

    async def __aenter__(self) -> Doorbell:
        self._task = asyncio.create_task(self._listen(), name="eventlog-doorbell")
        return self

    async def __aexit__(self, *_: object) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def wait(self, seen: int | None = None) -> None:
        """Return when the log may have grown: on a notification, or after the poll interval.

        ``seen`` is ``rings`` as it was before the caller last read the log: a ring that came while it
        was reading is not lost, the wait returns at once. (Without it, an event committed during the
        read would wait for the next one, or for the poll.)"""
        if seen is not None and seen != self.rings:
            return
        rang = self._rang
        # asyncio.timeout, not wait_for: on Python 3.11 wait_for can swallow a cancellation that arrives
        # as the wait completes, and a task that will not stop hangs the app's shutdown.
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(self._poll_interval_s):
                await rang.wait()

    def _ring(self, *args: Any) -> None:
        if len(args) == 4 and str(args[3]).isdigit():  # (connection, pid, channel, payload)
            self.head = max(self.head, int(args[3]))
        self.rings += 1
        rang, self._rang = self._rang, asyncio.Event()
        rang.set()

    async def _listen(self) -> None:
        while True:
            try:
                await self._listen_until_disconnected()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("event log listener lost its connection (%r); reconnecting", exc)
            await asyncio.sleep(self._retry_s)

    async def _listen_until_disconnected(self) -> None:
        async with self._engine.connect() as connection:
            raw = await connection.get_raw_connection()
            driver = raw.driver_connection
            assert driver is not None
            try:
                closed = asyncio.Event()
                driver.add_termination_listener(lambda _: closed.set())
                await driver.add_listener(NOTIFY_CHANNEL, self._ring)
                # Named, so operators (and tests) can see in pg_stat_activity that a listener is connected;
                # the connection is never handed back to the pool (even when this set-up fails half-way).
                await driver.execute(f"SET application_name = '{LISTENER_NAME}'")
                self.head = max(
                    self.head, await driver.fetchval("SELECT coalesce(max(position), 0) FROM events")
                )
                self.listening.set()
                self._ring()  # anything committed while we were not listening
                while not closed.is_set():
                    with contextlib.suppress(TimeoutError):
                        async with asyncio.timeout(KEEPALIVE_S):
                            await closed.wait()
                    await driver.execute("SELECT 1")  # notices a silently dead connection
            finally:
                self.listening.clear()
                await connection.invalidate()  # never hand a LISTENing connection back to the pool
