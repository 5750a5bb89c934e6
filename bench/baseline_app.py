"""The bare baseline: Litestar + a plain asyncpg pool, one INSERT per request and nothing else.

No signature check, no envelope decoding, no dedupe, no group commit: what the stack itself costs for
"durably store this body". Chargeline's figures are read as ratios against it, measured in the same run
on the same database. Run it as a uvicorn factory: ``uvicorn --factory bench.baseline_app:create_app``
with ``BENCH_DATABASE_URL`` set.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

import asyncpg
from litestar import Litestar, Request, Response, get, post
from litestar.datastructures import State

from bench import DATABASE_URL_ENV, plain_dsn

if TYPE_CHECKING:
    Pool = asyncpg.Pool[asyncpg.Record]

POOL_SIZE = 10  # Chargeline's default CHARGELINE_DB_POOL_SIZE, so both apps get the same connections

CREATE_TABLE = "CREATE TABLE IF NOT EXISTS bench_baseline (id bigserial primary key, body jsonb not null)"
INSERT = "INSERT INTO bench_baseline (body) VALUES ($1::jsonb)"


@post("/webhooks/edrv", status_code=200)
async def receive(request: Request[Any, Any, Any], state: State) -> Response[bytes]:
    body = await request.body()
    pool: Pool = state.pool
    await pool.execute(INSERT, body.decode())  # asyncpg's jsonb codec takes text
    return Response(b"", status_code=200, media_type="text/plain")


@get("/health", media_type="text/plain")
async def health() -> str:
    return "ok"  # uvicorn only accepts connections once the lifespan (pool, table) is up


def create_app() -> Litestar:
    dsn = plain_dsn(os.environ[DATABASE_URL_ENV])

    @asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        pool: Pool = await asyncpg.create_pool(dsn, min_size=POOL_SIZE, max_size=POOL_SIZE)
        try:
            await pool.execute(CREATE_TABLE)
            app.state.pool = pool
            yield
        finally:
            await pool.close()

    return Litestar(route_handlers=[receive, health], lifespan=[lifespan], openapi_config=None)
