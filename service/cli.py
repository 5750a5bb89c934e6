"""The ``chargeline`` command: serve, migrate, tail the log, look after projections, mint driver tokens,
export the OpenAPI document."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import signal
import sys
from pathlib import Path

import click
import msgspec

from service.logs import configure_cli_logging
from service.settings import Settings, SettingsError, load_settings


def _settings() -> Settings:
    try:
        return load_settings()
    except SettingsError as exc:
        raise click.ClickException(str(exc)) from exc


@click.group(help="Chargeline: a fair, automatic queue for busy EV chargers, fed by eDRV webhooks.")
def main() -> None:
    # Read directly: a malformed setting is reported by the command itself, through this logging.
    as_json = os.environ.get("CHARGELINE_LOG_FORMAT", "").strip().lower() == "json"
    configure_cli_logging("INFO", "json" if as_json else "text")
    logging.getLogger("alembic.runtime.plugins").setLevel(logging.WARNING)


@main.command(help="Apply database migrations, then serve HTTP on CHARGELINE_HOST:CHARGELINE_PORT.")
def serve() -> None:
    from service.app import create_app
    from service.db.engine import resolve_database_url, resolve_migration_url
    from service.db.migrate import upgrade_to_head
    from service.server import run_server

    settings = _settings()
    try:
        settings.check_startup()
    except SettingsError as exc:
        raise click.ClickException(str(exc)) from exc
    upgrade_to_head(resolve_migration_url(settings))
    url = resolve_database_url(settings)
    where = (
        "embedded PostgreSQL in " + str(settings.data_dir.resolve())
        if not settings.database_url
        else "PostgreSQL"
    )
    base = f"http://{settings.host}:{settings.port}"
    if settings.log_format == "json":  # log pipelines get one JSON object per line, the banner too
        logging.getLogger("service").info("Chargeline is starting", extra={"url": base, "database": where})
    else:
        _print_banner(base, where)
    # uvicorn re-raises the signal that stopped it once it has shut down; turning SIGTERM into a normal
    # exit lets the embedded PostgreSQL stop cleanly with us (its atexit hook), as Ctrl-C already does.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    run_server(create_app(settings, database_url=url), settings)


def _print_banner(base: str, where: str) -> None:
    click.echo(
        f"database: {where}\n"
        f"Chargeline is starting on {base}\n"
        f"  eDRV webhooks   POST {base}/webhooks/edrv\n"
        f"  event log       GET  {base}/v1/admin/events  (Authorization: Bearer $CHARGELINE_ADMIN_TOKEN)\n"
        f"  health          GET  {base}/health/ready\n"
        f"  API docs             {base}/schema"
    )


@main.command(help="Apply pending database migrations and exit.")
def migrate() -> None:
    from service.db.engine import resolve_migration_url
    from service.db.migrate import head_revision, upgrade_to_head

    upgrade_to_head(resolve_migration_url(_settings()))
    click.echo(f"database schema at {head_revision()}")


@main.group(help="Look at the event log.")
def events() -> None:
    pass


@events.command(help="Print the latest events; with --follow, keep printing new ones as they commit.")
@click.option(
    "-n", "--lines", default=10, show_default=True, help="How many of the latest events to show first."
)
@click.option("-f", "--follow", is_flag=True, help="Wait for new events (Ctrl-C to stop).")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per event, with data and metadata.")
@click.option("--type", "event_type", default=None, help="Only events of this type.")
@click.option("--stream", "stream_id", default=None, help="Only events of this stream.")
def tail(lines: int, follow: bool, as_json: bool, event_type: str | None, stream_id: str | None) -> None:
    from service.eventlog.tail import tail_events

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(
            tail_events(
                _settings(),
                lines=lines,
                follow=follow,
                as_json=as_json,
                event_type=event_type,
                stream_id=stream_id,
            )
        )


@main.group(help="Look after the read models folded from the log.")
def projections() -> None:
    pass


@projections.command(help="Each projection's position, lag behind the log, and skipped events.")
def status() -> None:
    from service.projections.cli import show_status

    asyncio.run(show_status(_settings()))


@projections.command(help="Rebuild projections (all, or NAMES) by replay beside the live ones, then swap.")
@click.argument("names", nargs=-1)
def rebuild(names: tuple[str, ...]) -> None:
    from service.projections.cli import rebuild_projections

    asyncio.run(rebuild_projections(_settings(), names))


@main.command(help="Mint a driver's token (HS256 with CHARGELINE_JWT_SECRET, or the development key).")
@click.option("--driver", "driver_id", required=True, help="The driver id (the token's `sub`).")
@click.option("--edrv-user", default=None, help="The driver's eDRV user id (`edrv_user` claim).")
@click.option("--ttl", default=86_400, show_default=True, type=click.IntRange(min=1), help="Seconds valid.")
def token(driver_id: str, edrv_user: str | None, ttl: int) -> None:
    from service.api.drivers import mint_token, token_secret

    click.echo(mint_token(token_secret(_settings()), driver_id, edrv_user_id=edrv_user, ttl_s=ttl))


@main.command(help="Drive a Chargeline with a simulated eDRV network and its drivers, over HTTP only.")
@click.option("--url", default=None, help="The service [http://CHARGELINE_HOST:CHARGELINE_PORT].")
@click.option("--seed", default=1, show_default=True, help="Same seed, same network, traffic and drivers.")
@click.option(
    "--run-id", default=None,
    help="Part of every delivery, session and driver id [the start time]; the same again resends the same.",
)  # fmt: skip
@click.option("--locations", default=5, show_default=True, type=click.IntRange(1, 1000))
@click.option("--stations", default=3, show_default=True, type=click.IntRange(1, 50), help="Per location.")
@click.option(
    "--speed", default=60.0, show_default=True, type=click.FloatRange(min=0.1, max=3600),
    help="Simulated seconds per real second (60: a 40-minute charge takes 40 s).",
)  # fmt: skip
@click.option("--duration", type=click.FloatRange(min=0), default=None, help="Real seconds [until Ctrl-C].")
@click.option(
    "--drivers", default=1.0, show_default=True, type=click.FloatRange(min=0),
    help="Queue drivers as a multiple of the usual demand.",
)  # fmt: skip
@click.option(
    "--start-hour", default=16.0, show_default=True, type=click.FloatRange(0, 24, max_open=True),
    help="Hour of the simulated day to start at.",
)  # fmt: skip
@click.option(
    "--json", "json_path", type=click.Path(dir_okay=False, path_type=Path), help="Write the summary."
)
@click.option("--quiet", is_flag=True, help="No progress lines, only the summary.")
def simulate(
    url: str | None,
    seed: int,
    run_id: str | None,
    locations: int,
    stations: int,
    speed: float,
    duration: float | None,
    drivers: float,
    start_hour: float,
    json_path: Path | None,
    quiet: bool,
) -> None:
    from datetime import UTC, datetime

    from rich.console import Console

    from service.api.drivers import token_secret
    from service.simulate.runner import SimulationOptions
    from service.simulate.runner import simulate as run_simulation
    from service.simulate.summary import Summary

    logging.getLogger("httpx").setLevel(logging.WARNING)  # a line per request would bury the progress
    settings = _settings()
    options = SimulationOptions(
        url=url or f"http://{settings.host}:{settings.port}",
        jwt_secret=token_secret(settings),
        webhook_secret=settings.webhook_secret,
        admin_token=settings.admin_token,
        seed=seed,
        run=run_id or datetime.now(UTC).strftime("%Y%m%dT%H%M%S"),
        locations=locations,
        stations=stations,
        speed=speed,
        duration_s=duration,
        drivers=drivers,
        start_hour=start_hour,
        progress_every_s=None if quiet else 10.0,
    )
    console = Console(stderr=True)
    console.log(f"simulating {locations} locations x {stations} stations at {speed:g}x against {options.url}")

    async def main() -> Summary:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stop.set)  # Ctrl-C ends the run with its summary
        return await run_simulation(options, console, stop)

    summary = asyncio.run(main())
    summary.print(console)
    if json_path is not None:
        json_path.write_text(json.dumps(summary.as_json(), indent=2) + "\n")
    sys.exit(1 if summary.error_count else 0)


@main.command(
    help="The service on its embedded PostgreSQL with the simulator driving it (Ctrl-C stops both)."
)
@click.option("--seed", default=1, show_default=True)
@click.option("--locations", default=6, show_default=True, type=click.IntRange(1, 1000))
@click.option("--speed", default=60.0, show_default=True, type=click.FloatRange(min=0.1, max=3600))
@click.option("--drivers", default=1.5, show_default=True, type=click.FloatRange(min=0))
def demo(seed: int, locations: int, speed: float, drivers: float) -> None:
    from rich.console import Console

    from service.simulate.demo import run_demo

    logging.getLogger("httpx").setLevel(logging.WARNING)
    console = Console(stderr=True)
    summary = run_demo(console, seed=seed, locations=locations, speed=speed, drivers=drivers)
    if summary is None:
        sys.exit(1)
    summary.print(console)
    sys.exit(1 if summary.error_count else 0)


@main.command(help="Write the OpenAPI document generated from the app.")
@click.option(
    "--output", type=click.Path(path_type=Path), default=None, help="File to write (default: stdout)."
)
def openapi(output: Path | None) -> None:
    text = openapi_document()
    if output is None:
        click.echo(text, nl=False)
    else:
        output.write_text(text)
        click.echo(f"wrote {output}")


def openapi_document() -> str:
    """The app's OpenAPI document, serialised deterministically (the committed file is compared to it)."""
    from service.app import create_app

    schema = create_app(load_settings({})).openapi_schema.to_schema()
    return json.dumps(msgspec.to_builtins(schema), indent=2, sort_keys=True) + "\n"
