"""The PostgreSQL a benchmark run writes to: a fresh scratch database, migrated, dropped afterwards.

The server is ``BENCH_DATABASE_URL``'s when set, else a throwaway embedded one. Every run gets its own
database on it so figures never depend on what an earlier run left behind, and both apps write to the
same one so they share every server setting.
"""

from __future__ import annotations

import asyncio
import atexit
import functools
import os
import re
import secrets
import shutil
import tempfile
from collections.abc import AsyncIterator, Iterable, Mapping
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import asyncpg
import msgspec
from sqlalchemy.engine import make_url

from bench import DATABASE_URL_ENV, plain_dsn
from service.db.embedded import start_embedded_postgres
from service.db.migrate import upgrade_to_head_async

if TYPE_CHECKING:
    Connection = asyncpg.Connection[asyncpg.Record]

# Settings that change what a commit or a cached plan costs; recorded so figures can be compared.
# (autovacuum matters: without autoanalyze, a prepared statement's plan made on an empty table stays.)
REPORTED_SETTINGS = (
    "fsync",
    "synchronous_commit",
    "shared_buffers",
    "max_connections",
    "wal_level",
    "autovacuum",
    "plan_cache_mode",
)

SETTING_NAME = re.compile(r"[a-z_][a-z0-9_.]*")


class PostgresInfo(msgspec.Struct, frozen=True, kw_only=True):
    source: str  # "embedded" or "BENCH_DATABASE_URL"
    version: str
    settings: dict[str, str]


def with_database(url: str, database: str) -> str:
    return make_url(url).set(database=database).render_as_string(hide_password=False)


@functools.cache
def server_url() -> tuple[str, str]:
    """(URL of a database on the server to use, where it came from). Blocking: starts PostgreSQL.

    One embedded server per process: ``bench all`` runs every benchmark on it (each in a scratch
    database of its own) instead of leaving one idle server per benchmark until the process exits."""
    configured = os.environ.get(DATABASE_URL_ENV)
    if configured:
        return plain_dsn(configured), DATABASE_URL_ENV
    parent = Path(tempfile.mkdtemp(prefix="chargeline-bench-pg-"))
    # atexit runs last-registered first: registered before the server's own hook (which stops the
    # server and deletes pgdata), this removes the then-empty parent after it.
    atexit.register(shutil.rmtree, parent, ignore_errors=True)
    return plain_dsn(start_embedded_postgres(parent / "pgdata", cleanup="delete")), "embedded"


@asynccontextmanager
async def scratch_database(server: str, settings: Mapping[str, str]) -> AsyncIterator[str]:
    """A new, migrated database on ``server``'s server; yields its URL and drops it afterwards.

    ``settings`` become the database's defaults (``ALTER DATABASE ... SET``) before anyone connects,
    for what-if runs (``--pg-set plan_cache_mode=force_custom_plan``) that change both apps alike.
    """
    name = f"bench_{secrets.token_hex(4)}"
    admin = await asyncpg.connect(server)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
        try:
            for setting, value in settings.items():
                await admin.execute(f'ALTER DATABASE "{name}" SET {setting} = {_literal(value)}')
            url = with_database(server, name)
            await upgrade_to_head_async(url)
            yield url
        finally:
            # FORCE: an app that was killed rather than stopped may still hold connections.
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()


def _literal(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def parse_setting(text: str) -> tuple[str, str]:
    """``name=value`` from the command line; the name must look like a PostgreSQL setting."""
    name, sep, value = text.partition("=")
    if not sep or not SETTING_NAME.fullmatch(name):
        raise ValueError(f"expected NAME=VALUE with a PostgreSQL setting name, got {text!r}")
    return name, value


async def postgres_info(connection: Connection, source: str, extra: Iterable[str] = ()) -> PostgresInfo:
    names = dict.fromkeys([*REPORTED_SETTINGS, *extra])  # ordered, without repeats
    settings = {name: str(await connection.fetchval(f"SHOW {name}")) for name in names}
    version = str(await connection.fetchval("SHOW server_version"))
    return PostgresInfo(source=source, version=version, settings=settings)


async def row_count(connection: Connection, table: str) -> int:
    return int(await connection.fetchval(f"SELECT count(*) FROM {table}"))


async def settled_row_count(connection: Connection, table: str, *, timeout_s: float = 5.0) -> int:
    """The row count once it stops moving: requests in flight when the load stopped may still commit,
    and they must be counted in this run, not leak into the next one's."""
    last = await row_count(connection, table)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while loop.time() < deadline:
        await asyncio.sleep(0.2)
        current = await row_count(connection, table)
        if current == last:
            break
        last = current
    return last
