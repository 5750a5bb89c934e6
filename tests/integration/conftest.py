from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from service.db.engine import create_engine
from service.eventlog.store import EventStore
from tests.conftest import Db, empty_the_log


@pytest.fixture(autouse=True)
async def _empty_log(db: Db) -> None:
    await empty_the_log(db)


@pytest.fixture
async def engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(database_url, pool_size=4)
    yield engine
    await engine.dispose()


@pytest.fixture
async def store(engine: AsyncEngine) -> AsyncIterator[EventStore]:
    store = EventStore(engine)
    await store.start()
    yield store
    await store.close()
