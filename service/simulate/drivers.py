"""Simulated drivers on the public API, as their phones would be: join, follow the ticket, answer offers.

Each driver long-polls its ticket (``If-None-Match`` + ``wait``), answers an offer after a while as its
persona says, and on accepting drives to the connector: the world plugs the car in when it gets there,
which starts a session in the driver's eDRV user's name, which is what fulfils the ticket.
"""

from __future__ import annotations

import asyncio
from typing import Any, Protocol

import httpx

from service.simulate.personas import DriverPlan
from service.simulate.summary import Summary

LIVE = ("waiting", "offered", "held")
POLL_S = 20
ATTEMPTS = 6


class Surroundings(Protocol):
    """What a driver can do to the world besides calling the API (see ``runner.Simulation``)."""

    speed: float
    summary: Summary

    def offer_seen(self, plan: DriverPlan, connector_id: str) -> None: ...
    def offer_gone(self, plan: DriverPlan) -> None: ...
    def head_to(self, plan: DriverPlan, connector_id: str) -> None: ...


class SimDriver:
    def __init__(self, plan: DriverPlan, client: httpx.AsyncClient, token: str, world: Surroundings) -> None:
        self.plan, self._client, self._world = plan, client, world
        self._auth = {"Authorization": f"Bearer {token}"}
        self._counts = world.summary.drivers
        self._status: str | None = None
        self._snoozed = self._offered = False

    async def run(self) -> None:
        try:
            ticket = await self._join()
            if ticket is not None:
                await self._follow(ticket)
        except asyncio.CancelledError:
            if self._status in LIVE:
                self._counts["still_queued"] += 1
            raise
        finally:
            self._world.offer_gone(self.plan)

    async def _join(self) -> dict[str, Any] | None:
        path = f"/v1/locations/{self.plan.location_id}/tickets"
        # The key makes a retried join safe; a 404 means the location's webhooks are not folded in yet.
        headers = {"Idempotency-Key": self.plan.driver_id}
        for _ in range(20):
            answer = await self._call("POST", path, json=self.plan.join_body(), headers=headers)
            if answer is None or answer.status_code != 404:
                break
            await asyncio.sleep(0.5)
        if answer is not None and answer.status_code == 201:
            self._counts["joined"] += 1
            ticket: dict[str, Any] = answer.json()
            return ticket
        if answer is not None and answer.status_code == 409:
            self._counts["join_refused"] += 1  # the queue is full
        elif answer is not None:
            self._world.summary.error(f"join answered {answer.status_code}: {answer.text[:300]}")
        return None

    async def _follow(self, ticket: dict[str, Any]) -> None:
        loop = asyncio.get_running_loop()
        joined_at, etag = loop.time(), None
        seen: tuple[str, str] | None = None  # the offer last seen (connector, when it was made) ...
        answered = False  # ... and whether this driver answered it
        while True:
            self._status = status = ticket["status"]
            offer = ticket.get("offer")
            key = (offer["connector_id"], offer["offered_at"]) if offer else None
            if seen is not None and key != seen:
                if not answered:
                    self._counts["unanswered"] += 1  # it passed on while the driver looked away
                self._world.offer_gone(self.plan)
                seen = None
            if status not in LIVE:
                self._ended(ticket, loop.time() - joined_at)
                return
            if status == "offered" and offer is not None and key != seen:
                seen, answered = key, False
                self._counts["offers"] += 1
                if not self._offered:
                    self._offered = True
                    self._world.summary.waits_to_offer_s.append(loop.time() - joined_at)
                self._world.offer_seen(self.plan, offer["connector_id"])
                answer = await self._answer(ticket["id"], offer["connector_id"])
                if answer is not None:
                    ticket, answered = answer, True
                    continue
            if self._gives_up(status, loop.time() - joined_at):
                left = await self._call("DELETE", f"/v1/tickets/{ticket['id']}")
                if left is not None and left.status_code == 200:
                    self._counts["left"] += 1
                    self._status = "left"
                    return
            polled = await self._poll(ticket["id"], etag)
            if polled is not None:
                ticket, etag = polled

    def _gives_up(self, status: str, waited_s: float) -> bool:
        return (
            self.plan.persona == "leaver"
            and status == "waiting"
            and waited_s * self._world.speed > self.plan.patience_s
        )

    async def _answer(self, ticket_id: str, connector_id: str) -> dict[str, Any] | None:
        """Answer as the persona would, after a while; the ticket after the answer, or None for none."""
        if self.plan.persona == "silent":
            return None
        await asyncio.sleep(self.plan.answer_after_s / self._world.speed)
        snooze = self.plan.persona == "snoozer" and not self._snoozed
        answer = await self._call("POST", f"/v1/tickets/{ticket_id}/{'snooze' if snooze else 'accept'}")
        if answer is None or answer.status_code != 200:
            self._counts["answered_too_late"] += 1  # 409: the offer passed on or was withdrawn meanwhile
            return None
        if snooze:
            self._snoozed = True
            self._counts["snoozed"] += 1
        else:
            self._counts["accepted"] += 1
            if self.plan.persona != "no_show":
                self._world.head_to(self.plan, connector_id)
        ticket: dict[str, Any] = answer.json()
        return ticket

    async def _poll(self, ticket_id: str, etag: str | None) -> tuple[dict[str, Any], str | None] | None:
        wait = POLL_S
        if self.plan.persona == "leaver":  # wake up in time to give up
            wait = max(1, min(POLL_S, int(self.plan.patience_s / self._world.speed) + 1))
        headers = {"If-None-Match": etag} if etag else {}
        params = {"wait": wait} if etag else {}
        answer = await self._call("GET", f"/v1/tickets/{ticket_id}", params=params, headers=headers)
        if answer is None or answer.status_code == 304:
            return None
        return answer.json(), answer.headers.get("ETag")

    def _ended(self, ticket: dict[str, Any], waited_s: float) -> None:
        status = ticket["status"]
        self._counts[status] += 1
        if status == "fulfilled":
            self._world.summary.waits_to_plug_in_s.append(waited_s)

    async def _call(
        self, method: str, path: str, *, headers: dict[str, str] | None = None, **kwargs: Any
    ) -> httpx.Response | None:
        """One API call with the retries a good app makes: 429 after Retry-After, 5xx and network errors
        with backoff. A 5xx is an error of the service all the same, and is counted."""
        for attempt in range(ATTEMPTS):
            try:
                answer = await self._client.request(
                    method, path, headers={**self._auth, **(headers or {})}, **kwargs
                )
            except httpx.TransportError as exc:
                self._world.summary.error(f"{method} {path}: {type(exc).__name__}: {exc}")
            else:
                if answer.status_code == 429:
                    await asyncio.sleep(float(answer.headers.get("Retry-After", "1")))
                    continue
                if answer.status_code < 500:
                    return answer
                self._world.summary.error(
                    f"{method} {path} answered {answer.status_code}: {answer.text[:300]}"
                )
            await asyncio.sleep(min(0.25 * 2**attempt, 5.0))
        return None
