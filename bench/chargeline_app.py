"""Chargeline as the benchmark runs it: a uvicorn factory on the scratch database in ``BENCH_DATABASE_URL``.

Settings come from defaults only (not from ``CHARGELINE_*`` in the environment), so the pool size is the
default 10 the baseline also uses, and the webhook secret is unset: the baseline checks no signatures
either. Log level WARNING, matching uvicorn's ``--log-level warning``.

Three exceptions, for the benchmarks that act as an operator and as drivers: the admin token and the
drivers' token key are read from ``CHARGELINE_ADMIN_TOKEN`` and ``CHARGELINE_JWT_SECRET``, and the
growth benchmark raises the drivers' per-token request budget with ``CHARGELINE_DRIVER_RATE_LIMIT`` (it
reads tickets thousands of times a minute with a few tokens; the limiter still runs on every request).
The harness (``bench/servers.py``) removes every ``CHARGELINE_*`` of the caller's shell from the app's
environment and sets these only when a benchmark passes them, so nothing else can leak in; none of them
touches the webhook path the ingest benchmark measures.
"""

from __future__ import annotations

import os
import secrets

from litestar import Litestar

from bench import DATABASE_URL_ENV
from service.app import create_app as create_chargeline
from service.settings import load_settings

ADMIN_TOKEN_ENV = "CHARGELINE_ADMIN_TOKEN"
JWT_SECRET_ENV = "CHARGELINE_JWT_SECRET"
DRIVER_RATE_LIMIT_ENV = "CHARGELINE_DRIVER_RATE_LIMIT"


def create_app() -> Litestar:
    rate_limit = os.environ.get(DRIVER_RATE_LIMIT_ENV)
    settings = load_settings(
        {DRIVER_RATE_LIMIT_ENV: rate_limit} if rate_limit else {},
        webhook_secret=None,
        log_level="WARNING",
        admin_token=os.environ.get(ADMIN_TOKEN_ENV) or None,
        # Without one, a throwaway key: nothing is written to a data directory during a benchmark.
        jwt_secret=os.environ.get(JWT_SECRET_ENV) or secrets.token_urlsafe(32),
    )
    return create_chargeline(settings, database_url=os.environ[DATABASE_URL_ENV])
