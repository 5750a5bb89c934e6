"""Chargeline as the benchmark runs it: a uvicorn factory on the scratch database in ``BENCH_DATABASE_URL``.

Settings come from defaults only (not from ``CHARGELINE_*`` in the environment), so the pool size is the
default 10 the baseline also uses, and the webhook secret is unset: the baseline checks no signatures
either. Log level WARNING, matching uvicorn's ``--log-level warning``.
"""

from __future__ import annotations

import os

from litestar import Litestar

from bench import DATABASE_URL_ENV
from service.app import create_app as create_chargeline
from service.settings import load_settings


def create_app() -> Litestar:
    settings = load_settings({}, webhook_secret=None, log_level="WARNING")
    return create_chargeline(settings, database_url=os.environ[DATABASE_URL_ENV])
