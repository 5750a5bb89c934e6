"""Running a simulation against a Chargeline over HTTP: the world's clock, its webhooks, its drivers.

Simulated time runs ``speed`` times faster than the real clock, but every timestamp in a webhook is the
real moment it is sent for, so the service judges deadlines, signatures and freshness as it would live:
the speed only shortens what happens (a 40-minute charge takes 40 s at 60x).
"""

from __future__ import annotations

import asyncio
import math
import ssl
from datetime import UTC, datetime

import httpx
import msgspec
from rich.console import Console

from service.api.drivers import mint_token
from service.queue.model import Policy
from service.simulate.delivery import WebhookSender
from service.simulate.drivers import SimDriver
from service.simulate.network import build_network
from service.simulate.personas import DriverPlan
from service.simulate.summary import Summary
from service.simulate.world import World


class SimulationOptions(msgspec.Struct, frozen=True, kw_only=True):
    url: str
    jwt_secret: str
    """Drivers' tokens are minted with the service's key, as the app's backend would."""
    webhook_secret: str | None = None
    admin_token: str | None = None
    """Lets the simulator scale each queue's answer and plug-in windows to the speed."""
    seed: int = 1
    run: str = ""
    """Makes this run's delivery, session and driver ids new (see ``World.run``)."""
    locations: int = 5
    stations: int = 3
    speed: float = 60.0
    duration_s: float | None = None
    """Real seconds to run; None: until stopped."""
    drivers: float = 1.0
    """Queue drivers as a multiple of the usual demand (1: queues form at busy times, and drain)."""
    start_hour: float = 16.0
    progress_every_s: float | None = 10.0


class Simulation:
    def __init__(self, options: SimulationOptions, client: httpx.AsyncClient, console: Console) -> None:
        self.options, self.speed, self._client, self._console = options, options.speed, client, console
        self.summary = Summary(seed=options.seed, run=options.run, speed=options.speed)
        network = build_network(options.seed, options.locations, options.stations)
        self.world = World(
            network, options.seed, datetime.now(UTC), options.speed,
            start_hour=options.start_hour, driver_rate=options.drivers, run=options.run,
        )  # fmt: skip
        self._sender = WebhookSender(self._connect, self.summary, options.webhook_secret)
        self._drivers: set[asyncio.Task[None]] = set()
        self._tls = ssl.create_default_context()  # made once: each one costs milliseconds
        self._started = asyncio.get_running_loop().time()

    # -- what drivers do to the world (``drivers.Surroundings``) --------------------------------------
    def offer_seen(self, plan: DriverPlan, connector_id: str) -> None:
        self._sync()
        self.world.offer_seen(plan, connector_id)

    def offer_gone(self, plan: DriverPlan) -> None:
        self.world.offer_gone(plan)

    def head_to(self, plan: DriverPlan, connector_id: str) -> None:
        self._sync()
        self.world.head_to(plan, connector_id)

    # -- the run ----------------------------------------------------------------------------------------
    async def run(self, stop: asyncio.Event) -> Summary:
        loop = asyncio.get_running_loop()
        self._sync()  # the locations, their stations online, every connector's status
        await self._sender.drain()
        await self._scale_policies()
        end = math.inf if self.options.duration_s is None else loop.time() + self.options.duration_s
        every = self.options.progress_every_s
        next_progress = loop.time() + every if every else math.inf
        try:
            while not stop.is_set() and loop.time() < end:
                self._sync()
                for plan in self.world.take_arrivals():
                    self._spawn(plan)
                if loop.time() >= next_progress:
                    self._console.log(self.summary.line(self.world.hour()))
                    next_progress += every or math.inf
                due = self.world.next_due()
                pause = 0.2 if due is None else (due - self.world.now_s) / self.speed
                pause = max(0.0, min(pause, 0.2, end - loop.time()))
                try:
                    async with asyncio.timeout(pause):
                        await stop.wait()
                except TimeoutError:
                    pass
        finally:
            self.summary.real_s = loop.time() - self._started
            await self._finish()
        return self.summary

    def _sync(self) -> None:
        """Bring the world up to the real clock and hand what happened meanwhile to the sender."""
        now_s = (asyncio.get_running_loop().time() - self._started) * self.speed
        for emission in self.world.advance(now_s):
            self._sender.send(emission)

    def _spawn(self, plan: DriverPlan) -> None:
        token = mint_token(
            self.options.jwt_secret, plan.driver_id, edrv_user_id=plan.edrv_user, ttl_s=7 * 86_400
        )
        task = asyncio.create_task(self._drive(plan, token))
        self._drivers.add(task)
        task.add_done_callback(self._drivers.discard)

    def _connect(self) -> httpx.AsyncClient:
        # A client per driver (as every phone has its own) and per station lane: one shared pool of
        # hundreds of connections makes httpx scan them all on every request.
        return httpx.AsyncClient(base_url=self.options.url, timeout=90, verify=self._tls)

    async def _drive(self, plan: DriverPlan, token: str) -> None:
        async with self._connect() as client:
            await SimDriver(plan, client, token, self).run()

    async def _scale_policies(self) -> None:
        """Answer and plug-in windows shrink with the speed, as everything else does (at least 2 s)."""
        if not self.options.admin_token:
            self._console.log(
                "[yellow]no admin token: queues keep their real answer and plug-in windows "
                f"({Policy().respond_within_s} s and {Policy().plug_in_within_s} s) at {self.speed:g}x speed"
            )
            return
        body = {
            "respond_within_s": max(2, math.ceil(Policy().respond_within_s / self.speed)),
            "plug_in_within_s": max(5, math.ceil(Policy().plug_in_within_s / self.speed)),
        }
        headers = {"Authorization": f"Bearer {self.options.admin_token}"}
        for location in self.world.network:
            path = f"/v1/admin/locations/{location.id}/queue-policy"
            for _ in range(40):  # a location is known once its webhook has been folded in
                answer = await self._client.put(path, json=body, headers=headers)
                if answer.status_code != 404:
                    break
                await asyncio.sleep(0.25)
            if answer.status_code != 200:
                self.summary.error(f"PUT {path} answered {answer.status_code}: {answer.text[:300]}")

    async def _finish(self) -> None:
        for task in list(self._drivers):
            task.cancel()
        await asyncio.gather(*self._drivers, return_exceptions=True)
        try:
            await self._sender.drain(timeout_s=60)
        except TimeoutError:
            self.summary.error(f"{self._sender.backlog()} webhooks were still unanswered 60 s after the end")
        await self._sender.close()
        self.summary.world.update(self.world.stats)


async def simulate(
    options: SimulationOptions, console: Console, stop: asyncio.Event | None = None
) -> Summary:
    async with httpx.AsyncClient(base_url=options.url, timeout=90) as client:  # the admin calls
        simulation = Simulation(options, client, console)
        return await simulation.run(stop or asyncio.Event())
