"""Serving the app with uvicorn, ending server-sent event streams when a shutdown begins."""

from __future__ import annotations

import asyncio
import contextlib
import sys
from types import FrameType

import uvicorn
from litestar import Litestar

from service.settings import Settings


class StreamEndingServer(uvicorn.Server):
    """uvicorn lets open responses finish before it shuts the app down, and a server-sent event stream
    never finishes by itself. So the streams are told to end (with a retry hint, clients reconnect
    elsewhere) the moment the shutdown signal arrives, and the graceful shutdown completes at once."""

    def __init__(self, config: uvicorn.Config, app: Litestar) -> None:
        super().__init__(config)
        self.app = app

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        feed = getattr(self.app.state, "feed", None)
        if feed is not None:
            asyncio.get_running_loop().call_soon_threadsafe(feed.close_all)
        super().handle_exit(sig, frame)


def run_server(app: Litestar, settings: Settings) -> None:
    config = uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        log_level=settings.log_level.lower(),
        access_log=settings.access_log,
        log_config=None,  # uvicorn's loggers propagate to the app's handler and format (text or JSON)
        loop="uvloop" if sys.platform != "win32" else "asyncio",
        http="httptools",
        timeout_graceful_shutdown=10,
    )
    server = StreamEndingServer(config, app)
    with contextlib.suppress(KeyboardInterrupt):  # re-raised by uvicorn after a clean shutdown on Ctrl-C
        server.run()
    if not server.started:
        sys.exit(3)  # what uvicorn.run does when startup failed
