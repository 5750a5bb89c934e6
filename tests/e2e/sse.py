"""A small server-sent events reader for tests: messages as the wire carries them, comments included."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import httpx


@dataclass
class SseMessage:
    event: str | None = None
    id: str | None = None
    data: str | None = None
    retry: int | None = None
    comments: list[str] = field(default_factory=list)

    def json(self) -> Any:
        assert self.data is not None, self
        return json.loads(self.data)


class SseStream:
    def __init__(self, response: httpx.Response) -> None:
        self.response = response
        self._lines = response.aiter_lines()

    async def next(self, timeout_s: float = 10.0) -> SseMessage | None:
        """The next message (a comment-only one too); None when the server ended the stream."""
        return await asyncio.wait_for(self._read(), timeout_s)

    async def next_event(self, timeout_s: float = 10.0) -> SseMessage:
        """The next message with data, skipping keep-alive comments."""
        while True:
            message = await self.next(timeout_s)
            assert message is not None, "the stream ended"
            if message.data is not None:
                return message

    async def _read(self) -> SseMessage | None:
        message = SseMessage()
        seen = False
        async for line in self._lines:
            if line == "":
                if seen:
                    return message
                continue
            seen = True
            name, _, value = line.partition(":")
            value = value.removeprefix(" ")
            if name == "":
                message.comments.append(value)
            elif name == "data":
                message.data = value if message.data is None else f"{message.data}\n{value}"
            elif name == "event":
                message.event = value
            elif name == "id":
                message.id = value
            elif name == "retry":
                message.retry = int(value)
        return message if seen else None


@asynccontextmanager
async def sse(client: httpx.AsyncClient, path: str, **kwargs: Any) -> AsyncIterator[SseStream]:
    async with client.stream("GET", path, timeout=httpx.Timeout(30, read=None), **kwargs) as response:
        assert response.status_code == 200, (response.status_code, await response.aread())
        assert response.headers["content-type"].startswith("text/event-stream")
        yield SseStream(response)
