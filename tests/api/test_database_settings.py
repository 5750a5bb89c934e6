"""The app's database sessions carry the limits and the login the operator configured."""

from __future__ import annotations

from pathlib import Path

from litestar.testing import AsyncTestClient
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from service.app import create_app
from service.db.roles import SERVICE_LOGIN
from tests.api.conftest import settings_for_tests


async def test_the_apps_sessions_use_the_configured_statement_and_idle_transaction_limits(
    database_url: str, tmp_path: Path
) -> None:
    settings = settings_for_tests(tmp_path, db_statement_timeout_s=7, db_idle_in_transaction_timeout_s=3.5)
    async with AsyncTestClient(app=create_app(settings, database_url=database_url)) as client:
        engine: AsyncEngine = client.app.state.engine
        async with engine.connect() as connection:
            assert await connection.scalar(text("SELECT current_user")) == SERVICE_LOGIN
            assert await connection.scalar(text("SHOW statement_timeout")) == "7s"
            assert await connection.scalar(text("SHOW idle_in_transaction_session_timeout")) == "3500ms"
