"""Request bodies streamed without a Content-Length (chunked) to the real server: the limits hold while the
bytes arrive, and nothing of an oversized delivery is stored. (Litestar's test client cannot stream a
request body, hence a real server.)"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import httpx
import pytest

from service.api.hardening import MAX_JSON_BODY
from service.api.webhooks import MAX_WEBHOOK_BODY
from tests.conftest import FIXTURES, Db, empty_the_log, stored
from tests.e2e.server import Server

STARTED = (FIXTURES / "session.started.json").read_bytes()
ADMIN = {"Authorization": "Bearer e2e"}


@pytest.fixture
def running(server: Server, database_url: str) -> Iterator[Server]:
    server.env["CHARGELINE_DATABASE_URL"] = database_url
    server.start()
    yield server
    server.stop()


async def chunked(head: bytes, padding: int, tail: bytes) -> AsyncIterator[bytes]:
    yield head
    for _ in range(padding // 65_536):
        yield b"x" * 65_536
    yield b"x" * (padding % 65_536)
    yield tail


async def test_a_chunked_delivery_over_one_mebibyte_gets_413_and_stores_nothing(
    running: Server, db: Db
) -> None:
    await empty_the_log(db)
    async with httpx.AsyncClient(base_url=running.url, timeout=30) as http:
        body = chunked(STARTED[:-1] + b', "padding": "', MAX_WEBHOOK_BODY, b'"}')
        response = await http.post("/webhooks/edrv", content=body)
        assert "content-length" not in response.request.headers
        assert response.request.headers["transfer-encoding"] == "chunked"
        assert response.status_code == 413, response.text
        assert response.headers["content-type"] == "application/problem+json"
        assert await stored(db) == (0, 0, 0)
        # A chunked delivery within the limit is taken whole.
        response = await http.post("/webhooks/edrv", content=chunked(STARTED, 0, b""))
        assert (response.status_code, response.content) == (200, b"")
        assert await stored(db) == (1, 1, 0)


async def test_a_chunked_json_body_over_the_api_limit_gets_413_and_changes_nothing(
    running: Server, db: Db
) -> None:
    await empty_the_log(db)
    async with httpx.AsyncClient(base_url=running.url, timeout=30) as http:
        body = chunked(b'{"url": "https://app.example.com/hooks", "description": "', MAX_JSON_BODY, b'"}')
        response = await http.post("/v1/admin/subscriptions", content=body, headers=ADMIN)
        assert "content-length" not in response.request.headers
        assert response.status_code == 413, response.text
        assert response.headers["content-type"] == "application/problem+json"
        assert (await http.get("/v1/admin/subscriptions", headers=ADMIN)).json() == []
