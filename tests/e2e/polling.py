"""Waiting for the running service to get somewhere, with a generous timeout and a clear failure."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

import httpx


async def until(check: Callable[[], Awaitable[Any]], what: str, timeout_s: float = 30.0) -> Any:
    """The first truthy result of ``check``, polled; a connection refused (a server restarting) counts
    as not yet. Fails naming ``what`` after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            if result := await check():
                return result
        except httpx.TransportError:
            pass
        await asyncio.sleep(0.1)
    raise AssertionError(f"never: {what}")
