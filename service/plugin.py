"""The composition root: the one place that wires settings, database, event log and routes together."""

from __future__ import annotations

import asyncio
import gc
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import cache
from pathlib import Path

import httpx
from litestar import Litestar, Router
from litestar.config.app import AppConfig
from litestar.datastructures import State
from litestar.di import Provide
from litestar.logging import LoggingConfig
from litestar.openapi import OpenAPIConfig
from litestar.openapi.spec import Components, SecurityScheme
from litestar.plugins import InitPluginProtocol
from litestar.static_files import create_static_files_router
from sqlalchemy.ext.asyncio import AsyncEngine

from service.api import (
    admin_events,
    admin_projections,
    availability,
    health,
    live,
    queues,
    subscriptions,
    tickets,
    webhooks,
)
from service.api.drivers import current_driver, driver_rate_limit, token_secret
from service.api.hardening import allow_every_method, harden
from service.api.openapi_docs import outbound_webhooks
from service.api.problems import problem_details_plugin
from service.db.engine import create_engine, resolve_database_url
from service.db.roles import privilege_warning
from service.dispatch.dispatcher import Dispatcher
from service.dispatch.queues import Queues
from service.dispatch.scheduler import Scheduler
from service.edrv.intake import EdrvIntake
from service.eventlog.doorbell import Doorbell
from service.eventlog.store import EventStore
from service.logs import formatter_config
from service.outbound.outbox import Outbox
from service.outbound.sender import Sender
from service.outbound.targets import guarded_transport
from service.projections.catalog import PROJECTIONS
from service.projections.runner import ProjectionRunner
from service.realtime.feed import LogFeed
from service.realtime.shared import SharedReads
from service.realtime.sse import StreamLimits
from service.settings import Settings

log = logging.getLogger("service")
BOARD_DIR = Path(__file__).parent / "board"


class ChargelinePlugin(InitPluginProtocol):
    def __init__(self, settings: Settings, database_url: str | None = None) -> None:
        self.settings = settings
        self.database_url = database_url

    def on_app_init(self, app_config: AppConfig) -> AppConfig:
        app_config.route_handlers.extend(
            [
                webhooks.receive_edrv_webhook,
                admin_events.list_events,
                health.live,
                health.ready,
                *availability.ROUTES,
                *admin_projections.ROUTES,
                *queues.ROUTES,
                *live.ROUTES,
                subscriptions.ROUTER,
                # Drivers' endpoints share one request budget per token.
                Router(
                    "/",
                    route_handlers=[*tickets.ROUTES, *live.DRIVER_ROUTES],
                    middleware=[driver_rate_limit(self.settings).middleware],
                ),
                health.MetricsController,
                # The operators' live board: plain HTML, CSS and JavaScript, no build step.
                create_static_files_router(
                    path="/board", directories=[BOARD_DIR], html_mode=True, name="board"
                ),
            ]
        )
        harden(app_config.route_handlers)
        app_config.before_send.append(allow_every_method)
        app_config.dependencies.update(
            {
                "engine": Provide(_engine, sync_to_thread=False),
                "store": Provide(_store, sync_to_thread=False),
                "queues": Provide(_queues, sync_to_thread=False),
                "feed": Provide(_feed, sync_to_thread=False),
                "driver": Provide(current_driver),
            }
        )
        app_config.plugins.append(problem_details_plugin())
        app_config.lifespan.append(self._lifespan)
        app_config.state.update(
            {
                "settings": self.settings,
                "stream_limits": StreamLimits(
                    keepalive_s=self.settings.sse_keepalive_s, lifetime_s=self.settings.sse_lifetime_s
                ),
            }
        )
        app_config.openapi_config = OpenAPIConfig(
            title="Chargeline",
            version="0.1.0",
            description="A fair, automatic queue for busy EV chargers, fed by eDRV webhooks.",
            components=Components(
                security_schemes={
                    "adminToken": SecurityScheme(
                        type="http", scheme="bearer", description="CHARGELINE_ADMIN_TOKEN"
                    ),
                    "driverToken": SecurityScheme(
                        type="http",
                        scheme="bearer",
                        bearer_format="JWT",
                        description="HS256 (CHARGELINE_JWT_SECRET); `sub`: driver id; optional `edrv_user`",
                    ),
                }
            ),
            path="/schema",
            webhooks=outbound_webhooks(),
        )
        app_config.logging_config = LoggingConfig(
            root={"level": self.settings.log_level, "handlers": ["queue_listener"]},
            formatters={"standard": formatter_config(self.settings.log_format)},
        )
        return app_config

    @asynccontextmanager
    async def _lifespan(self, app: Litestar) -> AsyncIterator[None]:
        for warning in self.settings.check_startup():
            log.warning(warning)
        url = self.database_url
        if url is None:  # the embedded server's start blocks for a few seconds on first run
            url = await asyncio.to_thread(resolve_database_url, self.settings)
        engine = create_engine(
            url,
            pool_size=self.settings.db_pool_size,
            statement_timeout_s=self.settings.db_statement_timeout_s,
            idle_in_transaction_timeout_s=self.settings.db_idle_in_transaction_timeout_s,
        )
        if too_privileged := await privilege_warning(engine):
            log.warning(too_privileged)
        store = EventStore(engine)
        await store.start()
        intake = EdrvIntake(
            store,
            secret=self.settings.webhook_secret,
            tolerance_s=self.settings.webhook_tolerance_s,
            log_deliveries=self.settings.log_deliveries,
        )
        queues = Queues(store)
        app.state.update(
            {
                "engine": engine,
                "store": store,
                "intake": intake,
                "queues": queues,
                "jwt_secret": token_secret(self.settings),
            }
        )
        async with Doorbell(engine) as doorbell:
            runners = [
                ProjectionRunner(store, projection, doorbell, pace_s=projection.pace_s)
                for projection in PROJECTIONS.values()
            ]
            # The dispatcher moves queues on: the first event after a quiet spell is acted on at once,
            # and under steady ingest it steps every few milliseconds instead of the read models' 100.
            dispatcher = ProjectionRunner(store, Dispatcher(queues), doorbell, pace_s=0.005)
            scheduler = Scheduler(queues)
            # Outbound webhooks: the outbox enqueues ticket events, the sender delivers them.
            outbox = ProjectionRunner(store, Outbox(), doorbell, pace_s=Outbox.pace_s)
            client = httpx.AsyncClient(
                transport=guarded_transport(allow_private=self.settings.allow_private_webhook_targets),
                timeout=self.settings.webhook_delivery_timeout_s,
                follow_redirects=False,  # a redirect could lead anywhere, past the target checks
                trust_env=False,  # no proxies or .netrc credentials picked up from the environment
            )
            sender = Sender(store, client, timeout_s=self.settings.webhook_delivery_timeout_s)
            # The feed's tick wakes quiet streams: often enough for keep-alives within 1.5 intervals.
            feed = LogFeed(store, doorbell, tick_s=self.settings.sse_keepalive_s / 2)
            shared_reads = SharedReads()
            tasks = [asyncio.create_task(r.run(), name=f"projection-{r.projection.name}") for r in runners]
            tasks.append(asyncio.create_task(dispatcher.run(), name="dispatcher"))
            tasks.append(asyncio.create_task(scheduler.run(), name="scheduler"))
            tasks.append(asyncio.create_task(outbox.run(), name="webhook-outbox"))
            tasks.append(asyncio.create_task(sender.run(), name="webhook-sender"))
            tasks.append(asyncio.create_task(feed.run(), name="log-feed"))
            app.state.update(
                {
                    "projection_runners": runners,
                    "dispatcher": dispatcher,
                    "scheduler": scheduler,
                    "outbox": outbox,
                    "sender": sender,
                    "feed": feed,
                    "shared_reads": shared_reads,
                }
            )
            _freeze_startup_heap()
            try:
                yield
            finally:
                feed.close_all()
                await _stop(tasks)
                await client.aclose()
                await store.close()
        await engine.dispose()


def _engine(state: State) -> AsyncEngine:
    engine: AsyncEngine = state.engine
    return engine


async def _stop(tasks: list[asyncio.Task[None]], timeout_s: float = 10.0) -> None:
    """Cancel the background tasks and wait for them, but never forever: a shutdown that hangs is worse
    than one that leaves a stuck task behind (named in the log)."""
    for task in tasks:
        task.cancel()
    done, stuck = await asyncio.wait(tasks, timeout=timeout_s)
    for task in done:
        if not task.cancelled() and task.exception() is not None:
            log.error("background task %s failed", task.get_name(), exc_info=task.exception())
    for task in stuck:
        log.error("background task %s did not stop within %.0f s of shutdown", task.get_name(), timeout_s)


def _feed(state: State) -> LogFeed:
    feed: LogFeed = state.feed
    return feed


def _queues(state: State) -> Queues:
    queues: Queues = state.queues
    return queues


def _store(state: State) -> EventStore:
    store: EventStore = state.store
    return store


@cache
def _freeze_startup_heap() -> None:
    """Once per process, after the first startup: what exists now lives as long as the process. Out of
    the collector's reach, full collections get cheap (one took ~50 ms before: the webhook p99).

    Then collect the youngest objects less often and promote survivors soon. Reference counting frees
    nearly everything; the collector is only for cycles, and each pass walks every container of the
    generations it collects: with ten thousand open streams (~150 objects each) the default thresholds
    walked ~1.6 M objects every few broadcasts, and gen-1 passes over not-yet-promoted stream objects
    took ~350 ms (``python -m bench subscribers``: worst broadcast 3.4 s → 0.67-0.80 s)."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(50_000, 5, 100)
