"""Sending the world's webhooks as eDRV does: signed, in order per station, some late, some twice.

A delivery that meets a connection error, a 5xx, 408 or 429 is retried with backoff (eDRV retries
too); any other non-2xx answer is refused for good and counted as an error, since the simulator only
sends what a correct service must take.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import httpx

from service.edrv.signature import signature_header
from service.simulate.summary import Summary
from service.simulate.world import Emission

RETRYABLE = {408, 429}
ATTEMPTS = 6
WEBHOOK_PATH = "/webhooks/edrv"


class WebhookSender:
    def __init__(
        self, connect: Callable[[], httpx.AsyncClient], summary: Summary, secret: str | None
    ) -> None:
        """``connect`` makes each lane's own client (see ``Simulation._connect`` for why)."""
        self._connect, self._summary, self._secret = connect, summary, secret
        self._lanes: dict[str, asyncio.Queue[Emission]] = {}
        self._clients: list[httpx.AsyncClient] = []
        self._workers: list[asyncio.Task[None]] = []
        self._late: set[asyncio.Task[None]] = set()
        self._again: set[asyncio.Task[None]] = set()  # redeliveries: copies, so a stop may drop them

    def send(self, emission: Emission) -> None:
        lane = self._lanes.get(emission.lane)
        if lane is None:
            lane = self._lanes[emission.lane] = asyncio.Queue()
            self._clients.append(client := self._connect())
            self._workers.append(asyncio.create_task(self._work(lane, client)))
        lane.put_nowait(emission)

    async def drain(self, timeout_s: float = 30.0) -> None:
        """Wait until every delivery handed over so far has been answered, the late ones too (or raise
        ``TimeoutError`` after ``timeout_s``); redeliveries still to come are not waited for."""
        async with asyncio.timeout(timeout_s):
            for lane in list(self._lanes.values()):
                await lane.join()
            while self._late:
                await asyncio.gather(*self._late)

    def backlog(self) -> int:
        """Deliveries handed over and not yet answered (late ones included)."""
        return sum(lane.qsize() for lane in self._lanes.values()) + len(self._late)

    async def close(self) -> None:
        tasks = [*self._workers, *self._late, *self._again]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await asyncio.gather(*(client.aclose() for client in self._clients))

    async def _work(self, lane: asyncio.Queue[Emission], client: httpx.AsyncClient) -> None:
        while True:
            emission = await lane.get()
            try:
                if emission.late_s is not None:
                    self._aside(client, emission.late_s, emission, "late")
                else:
                    await self._post(client, emission, "on_time")
                if emission.redeliver_s is not None:
                    self._aside(client, emission.redeliver_s, emission, "redelivered")
            finally:
                lane.task_done()

    def _aside(self, client: httpx.AsyncClient, delay_s: float, emission: Emission, kind: str) -> None:
        async def later() -> None:
            await asyncio.sleep(delay_s)
            await self._post(client, emission, kind)

        pending = self._late if kind == "late" else self._again
        task = asyncio.create_task(later())
        pending.add(task)
        task.add_done_callback(pending.discard)

    async def _post(self, client: httpx.AsyncClient, emission: Emission, kind: str) -> None:
        for attempt in range(ATTEMPTS):
            headers = {"content-type": "application/json"}
            if self._secret:  # signed at sending time, as eDRV does, so a late delivery is not stale
                headers["edrv-signature"] = signature_header(self._secret, emission.body, int(time.time()))
            sent = time.perf_counter()
            try:
                answer = await client.post(WEBHOOK_PATH, content=emission.body, headers=headers)
            except httpx.TransportError as exc:
                status, detail = None, f"{type(exc).__name__}: {exc}"
            else:
                status, detail = answer.status_code, answer.text[:300]
                if answer.is_success:
                    self._summary.webhook_ms.append((time.perf_counter() - sent) * 1000)
                    self._summary.webhooks[emission.type] += 1
                    self._summary.deliveries[kind] += 1
                    return
            if status is not None and status < 500 and status not in RETRYABLE:
                break
            self._summary.deliveries["retried"] += 1
            await asyncio.sleep(min(0.25 * 2**attempt, 5.0))
        self._summary.deliveries["refused"] += 1
        self._summary.error(f"webhook {emission.type} answered {status}: {detail}")
