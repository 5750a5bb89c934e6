"""``python -m bench growth``: its options and defaults (the benchmark itself is ``bench/growth.py``)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import click
from rich.console import Console

from bench import RESULTS_DIR
from bench.growth import GrowthSettings, run_growth
from bench.growth_report import print_growth_report
from bench.report import save_and_exit
from bench.results import CONNECTIONS, DURATION_S, ROUNDS, WARMUP_S, RunSettings

# (full, smoke), as in bench/__main__.py; the ingest runs use bench ingest's defaults.
GROWTH_EVENTS = (10_000_000, 20_000)
GROWTH_TICKETS = (1_000, 20)
FEW_TICKETS = 10
READ_DURATION_S = (5, 1)
READ_CONNECTIONS = 1  # one request at a time: the latency of a read, without queueing in the app


@click.command("growth")
@click.option("--smoke", is_flag=True, help="20,000 events, 20 tickets, one short round: judges nothing.")
@click.option(
    "--events", type=click.IntRange(min=1), help="Events in the big log [10,000,000; smoke 20,000]."
)
@click.option(
    "--tickets", type=click.IntRange(min=2), help="Live tickets in the big queue [1,000; smoke 20]."
)
@click.option("--duration", type=click.IntRange(min=1), help="Seconds per ingest run [10; smoke 1].")
@click.option(
    "--rounds", type=click.IntRange(min=1), help="Interleaved rounds, ingest and reads [3; smoke 1]."
)
@click.option(
    "--output", type=click.Path(dir_okay=False, path_type=Path), help="Where to write the JSON results."
)
def growth_command(
    smoke: bool,
    events: int | None,
    tickets: int | None,
    duration: int | None,
    rounds: int | None,
    output: Path | None,
) -> None:
    """Ingest with a big log vs. an empty one; queue reads with 1,000 live tickets vs. 10."""
    pick = 1 if smoke else 0
    rounds = rounds or ROUNDS[pick]
    if not smoke and rounds < 2:
        raise click.BadParameter(
            "at least 2 rounds: a single round says nothing about noise", param_hint="--rounds"
        )
    settings = GrowthSettings(
        smoke=smoke,
        events=events or GROWTH_EVENTS[pick],
        ingest=RunSettings(
            smoke=smoke,
            duration_s=duration or DURATION_S[pick],
            warmup_s=WARMUP_S[pick],
            rounds=rounds,
            connections=CONNECTIONS[pick],
        ),
        tickets=tickets or GROWTH_TICKETS[pick],
        few_tickets=min(FEW_TICKETS, (tickets or GROWTH_TICKETS[pick]) - 1),
        read_duration_s=READ_DURATION_S[pick],
        read_rounds=rounds,
        read_connections=READ_CONNECTIONS,
    )
    output = output or RESULTS_DIR / ("growth-smoke.json" if smoke else "growth.json")
    console = Console()
    results = asyncio.run(run_growth(settings, console))
    print_growth_report(results, console)
    save_and_exit(results, output, console)
