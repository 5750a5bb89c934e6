"""The application factory: ``create_app()`` is what uvicorn, the CLI and the tests all start from."""

from __future__ import annotations

from litestar import Litestar

from service.api.hardening import MAX_JSON_BODY
from service.api.openapi_docs import StrictStructSchemaPlugin
from service.plugin import ChargelinePlugin
from service.settings import Settings, load_settings


def create_app(settings: Settings | None = None, *, database_url: str | None = None) -> Litestar:
    """Build the app. Nothing connects until startup; ``database_url`` overrides the settings'."""
    settings = settings or load_settings()
    # Plugins given here come before Litestar's own: our struct schemas replace its struct schemas. The
    # body limit is an argument because Litestar 2 ignores one that a plugin sets; the eDRV webhook route
    # allows 1 MiB of its own.
    return Litestar(
        plugins=[StrictStructSchemaPlugin(), ChargelinePlugin(settings, database_url)],
        request_max_body_size=MAX_JSON_BODY,
    )
