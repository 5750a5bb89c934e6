"""``python -m bench [ingest|rebuild|queue|subscribers|webhooks|growth|all] [options]``; no command runs
``ingest``."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import click
from rich.console import Console

from bench import RESULTS_DIR
from bench.database import parse_setting
from bench.growth_command import growth_command
from bench.ingest import BenchFailure, resolve_generator, run_ingest
from bench.queue_latency import print_queue_report, run_queue
from bench.queue_latency import settings_for as queue_settings_for
from bench.rebuild import print_rebuild_report, run_rebuild, settings_for
from bench.report import print_report, write_json
from bench.results import CONNECTIONS, DURATION_S, ROUNDS, WARMUP_S, RunSettings
from bench.subscribers import print_subscribers_report, run_subscribers
from bench.subscribers import settings_for as subscribers_settings_for
from bench.suite import all_command
from bench.webhooks import LOOP_FACTORY, PER_ENDPOINT, print_webhooks_report, run_webhooks
from bench.webhooks import settings_for as webhooks_settings_for

# (full, smoke): smoke only proves the harness still works end to end, in a few seconds.
REBUILD_EVENTS = (1_000_000, 5_000)
REBUILD_ROUNDS = (2, 1)
QUEUE_SITES = (50, 3)
SUBSCRIBERS = (10_000, 200)
SINGLE_BROADCASTS = (10, 4)  # even: the connector ends Faulted, as it started
COMPOUND_BROADCASTS = (4, 2)
BROADCAST_SPACING_S = (2.0, 0.5)
WEBHOOK_EVENTS = (1_500, 200)  # x 4 endpoints: 6,000 deliveries a round, ~2 minutes in all
WEBHOOK_ENDPOINTS = (4, 2)
WEBHOOK_ROUNDS = (3, 1)


@click.group(invoke_without_command=True)
@click.pass_context
def main(context: click.Context) -> None:
    """Chargeline benchmarks (see bench/README.md)."""
    if context.invoked_subcommand is None:
        context.invoke(ingest)


@main.command()
@click.option(
    "--smoke", is_flag=True, help="A few seconds, tiny sizes: checks the harness, measures nothing."
)
@click.option("--duration", type=click.IntRange(min=1), help="Seconds per run [10; smoke 1].")
@click.option(
    "--warmup",
    type=click.IntRange(min=0),
    help="Seconds of warm-up per app, kept out of the medians [2; smoke 0].",
)
@click.option(
    "--rounds", type=click.IntRange(min=1), help="Interleaved closed-loop rounds per app [3; smoke 1]."
)
@click.option("--connections", type=click.IntRange(min=1), help="Concurrent connections [32; smoke 8].")
@click.option(
    "--generator",
    type=click.Choice(["auto", "wrk", "python"]),
    default="auto",
    show_default=True,
    help="Load generator; auto is wrk, or the built-in Python one for --smoke when wrk is missing.",
)
@click.option(
    "--pg-set",
    "pg_set",
    multiple=True,
    metavar="NAME=VALUE",
    help="PostgreSQL setting for the scratch database (both apps), for what-if runs; repeatable.",
)
@click.option(
    "--output", type=click.Path(dir_okay=False, path_type=Path), help="Where to write the JSON results."
)
def ingest(
    smoke: bool,
    duration: int | None,
    warmup: int | None,
    rounds: int | None,
    connections: int | None,
    generator: str,
    pg_set: tuple[str, ...],
    output: Path | None,
) -> None:
    """POST /webhooks/edrv on Chargeline vs. a bare baseline app: throughput, latency, p99 at half rate."""
    pick = 1 if smoke else 0
    settings = RunSettings(
        smoke=smoke,
        duration_s=duration or DURATION_S[pick],
        warmup_s=WARMUP_S[pick] if warmup is None else warmup,
        rounds=rounds or ROUNDS[pick],
        connections=connections or CONNECTIONS[pick],
        pg_settings=dict(_parse_settings(pg_set)),
    )
    if not smoke and settings.rounds < 2:
        raise click.BadParameter(
            "at least 2 rounds: a single round says nothing about noise", param_hint="--rounds"
        )
    output = output or RESULTS_DIR / ("ingest-smoke.json" if smoke else "ingest.json")
    console = Console()
    try:  # before anything starts, and without overwriting earlier results
        resolved = resolve_generator(generator, smoke=smoke)
    except BenchFailure as exc:
        raise click.ClickException(str(exc)) from None
    if resolved != "wrk":
        console.print("[yellow]Load from the built-in Python generator: not comparable with wrk figures[/]")
    results = asyncio.run(run_ingest(settings, resolved, console))
    print_report(results, console)
    write_json(results, output)
    console.print(f"Results written to {output}")
    sys.exit(0 if results.ok else 1)


@main.command("rebuild")
@click.option("--smoke", is_flag=True, help="5,000 events, one round: checks the harness, measures nothing.")
@click.option("--events", type=click.IntRange(min=1), help="Events in the log [1,000,000; smoke 5,000].")
@click.option(
    "--output", type=click.Path(dir_okay=False, path_type=Path), help="Where to write the JSON results."
)
def rebuild_command(smoke: bool, events: int | None, output: Path | None) -> None:
    """Rebuild of the sessions projection vs. a raw scan-and-decode of the same log: events/s, ratio."""
    pick = 1 if smoke else 0
    settings = settings_for(smoke=smoke, events=events or REBUILD_EVENTS[pick], rounds=REBUILD_ROUNDS[pick])
    output = output or RESULTS_DIR / ("rebuild-smoke.json" if smoke else "rebuild.json")
    console = Console()
    results = asyncio.run(run_rebuild(settings, console))
    print_rebuild_report(results, console)
    write_json(results, output)
    console.print(f"Results written to {output}")
    sys.exit(0 if results.ok else 1)


@main.command("queue")
@click.option("--smoke", is_flag=True, help="3 sites: checks the harness, judges nothing.")
@click.option(
    "--sites",
    type=click.IntRange(min=1),
    help="Sites, each one connector freed for one waiting driver [50; smoke 3].",
)
@click.option(
    "--output", type=click.Path(dir_okay=False, path_type=Path), help="Where to write the JSON results."
)
def queue_command(smoke: bool, sites: int | None, output: Path | None) -> None:
    """Freed connector → offer (committed; seen by the driver); how late unanswered offers pass on."""
    settings = queue_settings_for(smoke=smoke, sites=sites or QUEUE_SITES[1 if smoke else 0])
    output = output or RESULTS_DIR / ("queue-smoke.json" if smoke else "queue.json")
    console = Console()
    results = asyncio.run(run_queue(settings, console))
    print_queue_report(results, console)
    write_json(results, output)
    console.print(f"Results written to {output}")
    sys.exit(0 if results.ok else 1)


@main.command("subscribers")
@click.option(
    "--smoke",
    is_flag=True,
    help="200 subscribers, 4 single-change and 2 compound broadcasts: checks the harness, judges nothing.",
)
@click.option(
    "--subscribers",
    type=click.IntRange(min=1),
    help="Concurrent SSE streams of one location's board [10,000; smoke 200].",
)
@click.option(
    "--output", type=click.Path(dir_okay=False, path_type=Path), help="Where to write the JSON results."
)
def subscribers_command(smoke: bool, subscribers: int | None, output: Path | None) -> None:
    """N SSE subscribers on one process: the app's RSS, and how soon a broadcast reaches all of them."""
    pick = 1 if smoke else 0
    settings = subscribers_settings_for(
        smoke=smoke,
        subscribers=subscribers or SUBSCRIBERS[pick],
        single_broadcasts=SINGLE_BROADCASTS[pick],
        compound_broadcasts=COMPOUND_BROADCASTS[pick],
        spacing_s=BROADCAST_SPACING_S[pick],
    )
    output = output or RESULTS_DIR / ("subscribers-smoke.json" if smoke else "subscribers.json")
    console = Console()
    results = asyncio.run(run_subscribers(settings, console))
    print_subscribers_report(results, console)
    write_json(results, output)
    console.print(f"Results written to {output}")
    sys.exit(0 if results.ok else 1)


@main.command("webhooks")
@click.option(
    "--smoke", is_flag=True, help="200 events x 2 endpoints, one round: checks the harness, judges nothing."
)
@click.option("--events", type=click.IntRange(min=1), help="Ticket events per round [1,500; smoke 200].")
@click.option(
    "--endpoints", type=click.IntRange(min=1), help="Subscriptions, each a path on the receiver [4; smoke 2]."
)
@click.option(
    "--rounds", type=click.IntRange(min=1), help="Interleaved rounds (baseline, sender) [3; smoke 1]."
)
@click.option(
    "--per-endpoint",
    type=click.IntRange(min=1),
    default=PER_ENDPOINT,
    show_default=True,
    help="The sender's attempts in flight per endpoint (its default); the baseline gets the same total.",
)
@click.option(
    "--output", type=click.Path(dir_okay=False, path_type=Path), help="Where to write the JSON results."
)
def webhooks_command(
    smoke: bool,
    events: int | None,
    endpoints: int | None,
    rounds: int | None,
    per_endpoint: int,
    output: Path | None,
) -> None:
    """Outbound webhooks: deliveries/s of the sender vs. the same POSTs from plain httpx, no database."""
    pick = 1 if smoke else 0
    settings = webhooks_settings_for(
        smoke=smoke,
        events=events or WEBHOOK_EVENTS[pick],
        endpoints=endpoints or WEBHOOK_ENDPOINTS[pick],
        rounds=rounds or WEBHOOK_ROUNDS[pick],
        per_endpoint=per_endpoint,
    )
    if not smoke and settings.rounds < 2:
        raise click.BadParameter(
            "at least 2 rounds: a single round says nothing about noise", param_hint="--rounds"
        )
    output = output or RESULTS_DIR / ("webhooks-smoke.json" if smoke else "webhooks.json")
    console = Console()
    with asyncio.Runner(loop_factory=LOOP_FACTORY) as runner:  # uvloop, as the app runs on under uvicorn
        results = runner.run(run_webhooks(settings, console))
    print_webhooks_report(results, console)
    write_json(results, output)
    console.print(f"Results written to {output}")
    sys.exit(0 if results.ok else 1)


main.add_command(growth_command)
main.add_command(all_command)


def _parse_settings(texts: tuple[str, ...]) -> list[tuple[str, str]]:
    try:
        return [parse_setting(text) for text in texts]
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--pg-set") from None


if __name__ == "__main__":
    main()
