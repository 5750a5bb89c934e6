"""The database roles: whoever runs migrations owns the log; the service logs in with less.

``chargeline_service`` (no login) holds what the running service may do: read and append to the log
(never change or remove an event, never alter its table or trigger), keep its read models and
operational tables, and build rebuilt read models beside the live ones. Operators grant it to the
login role the service uses (``docs/operations.md``); the embedded PostgreSQL and the tests use
``chargeline``, created here.
"""

from __future__ import annotations

import asyncpg
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine

SERVICE_ROLE = "chargeline_service"
SERVICE_LOGIN = "chargeline"

# Roles are cluster-wide: several databases (or test runs) may create one at the same instant, and the
# loser sees a duplicate (or a unique violation on the catalog). Either way the role now exists.
_CREATE_ROLE = """
DO $$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '{name}') THEN
        CREATE ROLE {name} {options};
    END IF;
EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL;
END $$;
"""


def create_role_sql(name: str, options: str) -> str:
    return _CREATE_ROLE.format(name=name, options=options)


def ensure_service_login_sql() -> str:
    """SQL (for an owner or superuser) that makes ``chargeline`` a login in ``chargeline_service``."""
    return "\n".join(
        [
            create_role_sql(SERVICE_ROLE, "NOLOGIN"),
            create_role_sql(SERVICE_LOGIN, "LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE"),
            f"GRANT {SERVICE_ROLE} TO {SERVICE_LOGIN};",
        ]
    )


def service_login_url(owner_url: str) -> str:
    """The same database as ``owner_url``, logged in as ``chargeline`` (no password: local trust)."""
    login = make_url(owner_url).set(username=SERVICE_LOGIN, password=None)
    return login.render_as_string(hide_password=False)


async def ensure_service_login(owner_dsn: str) -> None:
    connection = await asyncpg.connect(owner_dsn)
    try:
        await connection.execute(ensure_service_login_sql())
    finally:
        await connection.close()


async def privilege_warning(engine: AsyncEngine) -> str | None:
    """A warning when the service's login could change the log (it owns it, or was granted too much)."""
    try:
        async with engine.connect() as connection:
            too_much = await connection.scalar(
                text("SELECT has_table_privilege('public.events', 'UPDATE, DELETE, TRUNCATE')")
            )
    except Exception:  # the database is down or not migrated yet: readiness reports that
        return None
    if not too_much:
        return None
    return (
        "the service's database login may UPDATE, DELETE or TRUNCATE the event log: give it a login "
        f"in role {SERVICE_ROLE} and run migrations as the owner (CHARGELINE_MIGRATION_DATABASE_URL); "
        "see docs/operations.md"
    )
