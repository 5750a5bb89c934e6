from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient

from service.app import create_app
from service.settings import Settings, load_settings
from tests.conftest import Db, empty_the_log

SECRET = "whsec_api_tests"
ADMIN_TOKEN = "admin-token-for-tests"
JWT_SECRET = "jwt-secret-for-tests-0123456789abcdef"

Client = AsyncTestClient[Litestar]


@pytest.fixture(autouse=True)
async def _empty_log(db: Db) -> None:
    await empty_the_log(db)


def settings_for_tests(tmp_path: Path, **overrides: object) -> Settings:
    base: dict[str, object] = {
        "data_dir": tmp_path,
        "admin_token": ADMIN_TOKEN,
        "webhook_secret": None,
        "jwt_secret": JWT_SECRET,
        # Tests poll a driver's ticket far faster than any app; the rate limit has tests of its own.
        "driver_rate_limit": 100_000,
    }
    base.update(overrides)
    return load_settings({}, **base)


MakeClient = Callable[..., AsyncTestClient[Litestar]]


@pytest.fixture
async def client(database_url: str, tmp_path: Path) -> AsyncIterator[Client]:
    """The real app on the test database; webhook signatures off (see ``signed_client``)."""
    app = create_app(settings_for_tests(tmp_path), database_url=database_url)
    async with AsyncTestClient(app=app) as client:
        yield client


@pytest.fixture
async def signed_client(database_url: str, tmp_path: Path) -> AsyncIterator[Client]:
    """The real app with ``CHARGELINE_WEBHOOK_SECRET`` set."""
    app = create_app(settings_for_tests(tmp_path, webhook_secret=SECRET), database_url=database_url)
    async with AsyncTestClient(app=app) as client:
        yield client
