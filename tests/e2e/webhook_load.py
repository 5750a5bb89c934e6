"""Sustained webhook load as eDRV sends it, with every answer recorded: which deliveries were answered 200
(the service promised they are stored), which were refused or lost on the way (eDRV retries those)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import httpx

from service.edrv.signature import signature_header
from service.simulate.edrv import Station
from tests.conftest import Db

STATUSES = ("Available", "Charging", "Finishing", "Faulted")


@dataclass
class Delivery:
    id: str
    body: bytes
    answers: list[str] = field(default_factory=list)
    """Each attempt's status code, or the transport error's name."""
    sent_at: list[float] = field(default_factory=list)
    """Each attempt's start (time.monotonic)."""
    answered_at: list[float] = field(default_factory=list)

    @property
    def stored(self) -> bool:
        """Answered 200 at least once: the service says it is in the log."""
        return "200" in self.answers


@dataclass
class WebhookLoad:
    """One sender per station, in order per station as eDRV sends them; every body a new delivery."""

    url: str
    secret: str
    stations: Sequence[Station]
    prefix: str
    deliveries: list[Delivery] = field(default_factory=list)
    _clock: dict[str, datetime] = field(default_factory=dict)

    async def run(self, stop: asyncio.Event) -> None:
        await asyncio.gather(*(self._send_from(station, stop) for station in self.stations))

    async def _send_from(self, station: Station, stop: asyncio.Event) -> None:
        async with httpx.AsyncClient(base_url=self.url, timeout=30) as client:
            n = 0
            while not stop.is_set():
                n += 1
                connector = station.connectors[n % len(station.connectors)]
                delivery = Delivery(
                    f"{self.prefix}-{station.id}-{n}",
                    station.status(
                        connector.id,
                        STATUSES[n % len(STATUSES)],
                        self._next_moment(station.id),
                        delivery=f"{self.prefix}-{station.id}-{n}",
                    ),
                )
                self.deliveries.append(delivery)
                if not await self.send(client, delivery):
                    await asyncio.sleep(0.05)  # the service is away: do not spin

    def _next_moment(self, station_id: str) -> datetime:
        """Strictly later per station (reports are placed in the station's own time, to the millisecond)."""
        last = self._clock.get(station_id)
        moment = datetime.now(UTC)
        if last is not None and moment <= last + timedelta(milliseconds=1):
            moment = last + timedelta(milliseconds=2)
        self._clock[station_id] = moment
        return moment

    async def send(self, client: httpx.AsyncClient, delivery: Delivery) -> bool:
        """One attempt, signed at sending time as eDRV does; True if answered 200."""
        headers = {"edrv-signature": signature_header(self.secret, delivery.body, int(time.time()))}
        delivery.sent_at.append(time.monotonic())
        try:
            response = await client.post("/webhooks/edrv", content=delivery.body, headers=headers)
            answer = str(response.status_code)
        except httpx.TransportError as exc:
            answer = type(exc).__name__
        delivery.answers.append(answer)
        delivery.answered_at.append(time.monotonic())
        return answer == "200"

    async def retry_until_stored(self, base_url: str, timeout_s: float = 30.0) -> None:
        """Send every delivery that never got a 200 again, as eDRV retries, until each is answered 200."""
        deadline = time.monotonic() + timeout_s
        async with httpx.AsyncClient(base_url=base_url, timeout=10) as client:
            for delivery in self.deliveries:
                while not delivery.stored:
                    assert time.monotonic() < deadline, f"{delivery.id} never stored: {delivery.answers}"
                    if not await self.send(client, delivery):
                        await asyncio.sleep(0.1)

    def stored(self) -> list[Delivery]:
        return [d for d in self.deliveries if d.stored]

    def unstored(self) -> list[Delivery]:
        return [d for d in self.deliveries if not d.stored]


async def times_in_the_log(db: Db, ids: Sequence[str]) -> dict[str, tuple[int, int]]:
    """Per delivery: events it became through its inbox entry (joined by external id), and events in the
    whole log that carry its id. Stored exactly once is (1, 1)."""
    rows = await db.fetch(
        """
        WITH through_inbox AS (
            SELECT i.external_id AS id, count(*) AS n FROM inbox i
              JOIN events e ON e.position = i.position AND e.metadata->>'external_id' = i.external_id
             WHERE i.source = 'edrv' AND i.external_id = ANY($1::text[]) GROUP BY 1
        ), anywhere AS (
            SELECT metadata->>'external_id' AS id, count(*) AS n FROM events
             WHERE metadata->>'external_id' = ANY($1::text[]) GROUP BY 1
        )
        SELECT d.id, coalesce(through_inbox.n, 0), coalesce(anywhere.n, 0)
          FROM unnest($1::text[]) AS d(id) LEFT JOIN through_inbox USING (id) LEFT JOIN anywhere USING (id)
        """,
        list(ids),
    )
    return {row[0]: (row[1], row[2]) for row in rows}
