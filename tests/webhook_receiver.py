"""A real app backend for outbound webhook tests: an HTTP server on 127.0.0.1 that checks each delivery's
Standard Webhooks signature with the reference library, records it, and answers as the test tells it
(succeed, fail, stall, 429 with Retry-After, ...)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
from collections import deque
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any

import msgspec
import uvicorn
from standardwebhooks import Webhook


class Reply(msgspec.Struct, frozen=True):
    status: int = 204
    headers: dict[str, str] = {}
    body: bytes = b""
    stall_s: float = 0.0
    """Wait this long before answering (longer than the sender's timeout: no answer at all)."""


class Received(msgspec.Struct, frozen=True):
    id: str
    timestamp: int
    signatures: list[str]
    verified: bool
    """Some signature is the HMAC of this body under one of the receiver's secrets (timestamps are the
    sender's clock, which tests may have moved, so they are not checked against ours)."""
    body: str
    message: dict[str, Any]
    at: datetime

    @property
    def type(self) -> str:
        return str(self.message["type"])

    @property
    def ticket(self) -> dict[str, Any]:
        data: dict[str, Any] = self.message["data"]
        return data


class Receiver:
    def __init__(self, *secrets: str) -> None:
        self.secrets = list(secrets)
        self.received: list[Received] = []
        self.replies: deque[Reply] = deque()
        """Answers for the next deliveries, in order; then ``default``."""
        self.default = Reply()
        self.url = ""
        self.begun = 0
        """Requests that have arrived, including those still being answered (stalled)."""
        self._arrived = asyncio.Event()

    def verified_by(self, body: str, msg_id: str, timestamp: int, signatures: list[str]) -> bool:
        moment = datetime.fromtimestamp(timestamp, UTC)
        for secret in self.secrets:
            expected = Webhook(secret).sign(msg_id, moment, body)
            if expected in signatures:
                return True
        return False

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        headers = {k.decode().lower(): v.decode() for k, v in scope["headers"]}
        reply = self.replies.popleft() if self.replies else self.default
        self.begun += 1
        self._arrived.set()
        if reply.stall_s:
            await asyncio.sleep(reply.stall_s)
        msg_id = headers.get("webhook-id", "")
        timestamp = int(headers.get("webhook-timestamp", "0"))
        signatures = headers.get("webhook-signature", "").split(" ")
        self.received.append(
            Received(
                id=msg_id,
                timestamp=timestamp,
                signatures=signatures,
                verified=self.verified_by(body.decode(), msg_id, timestamp, signatures),
                body=body.decode(),
                message=json.loads(body),
                at=datetime.now(UTC),
            )
        )
        self._arrived.set()
        await send(
            {
                "type": "http.response.start",
                "status": reply.status,
                "headers": [(k.encode(), v.encode()) for k, v in reply.headers.items()],
            }
        )
        await send({"type": "http.response.body", "body": reply.body})

    async def wait_for(self, count: int, timeout_s: float = 10.0) -> list[Received]:
        """The first ``count`` deliveries, once they have arrived (and been answered)."""
        await self._until(lambda: len(self.received) >= count, timeout_s)
        return self.received[:count]

    async def wait_until_begun(self, count: int, timeout_s: float = 10.0) -> None:
        """Until ``count`` requests have arrived, answered or not."""
        await self._until(lambda: self.begun >= count, timeout_s)

    async def _until(self, condition: Callable[[], bool], timeout_s: float) -> None:
        async with asyncio.timeout(timeout_s):
            while not condition():
                self._arrived.clear()
                await self._arrived.wait()


@asynccontextmanager
async def running(receiver: Receiver) -> AsyncIterator[Receiver]:
    """Serve the receiver on a free port of 127.0.0.1 for the block's duration."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    config = uvicorn.Config(receiver, host="127.0.0.1", port=port, log_level="warning", lifespan="off")
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    while not server.started:  # noqa: ASYNC110 (uvicorn offers no event for it)
        await asyncio.sleep(0.01)
    receiver.url = f"http://127.0.0.1:{port}/hooks"
    try:
        yield receiver
    finally:
        server.should_exit = True
        server.force_exit = True  # do not wait for stalled replies
        with contextlib.suppress(asyncio.CancelledError):
            await task
