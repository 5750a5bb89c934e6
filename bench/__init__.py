"""Benchmarks for Chargeline, each measured against a bare baseline app in the same run.

Run with ``python -m bench`` (``make bench``); see ``bench/README.md``. Kept dependency-free: the
baseline app imports this package too and must not pull in Chargeline.
"""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS_DIR = ROOT / "bench" / "results"  # gitignored; each benchmark writes <name>[-smoke].json

DATABASE_URL_ENV = "BENCH_DATABASE_URL"
"""Both app factories read their database from it; the harness reads the server to use from it."""


def plain_dsn(url: str) -> str:
    """The spelling asyncpg, SQLAlchemy (through Chargeline's ``asyncpg_url``) and both apps accept."""
    for prefix in ("postgresql+asyncpg://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql://" + url.removeprefix(prefix)
    return url
