"""The application factory: ``create_app()`` is what uvicorn, the CLI and the tests all start from."""

from __future__ import annotations

from litestar import Litestar

from service.plugin import ChargelinePlugin
from service.settings import Settings, load_settings


def create_app(settings: Settings | None = None, *, database_url: str | None = None) -> Litestar:
    """Build the app. Nothing connects until startup; ``database_url`` overrides the settings'."""
    settings = settings or load_settings()
    return Litestar(plugins=[ChargelinePlugin(settings, database_url)])
