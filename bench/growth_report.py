"""Printing the growth benchmark's results: ingest on a big log against an empty one, and queue reads."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table

from bench.growth import GrowthResults
from bench.report import latency_cells, print_verdicts


def print_growth_report(results: GrowthResults, console: Console) -> None:
    settings, postgres, fill = results.settings, results.postgres, results.fill
    caption = (
        f"{results.machine.cpu_count} CPUs, {results.machine.platform}; "
        f"PostgreSQL {postgres.version if postgres else '?'} ({postgres.source if postgres else '?'})"
    )
    if fill is not None:
        console.print(
            f"Big log: {fill.head:,} events ({fill.events_bytes / 2**30:.2f} GiB with indexes; inbox "
            f"{fill.inbox_bytes / 2**30:.2f} GiB), filled in {fill.fill_s:.0f} s + {fill.vacuum_s:.0f} s "
            "vacuum",
            highlight=False,
        )
    if results.ingest is not None:
        ingest, run = results.ingest, settings.ingest
        table = Table(
            title=(
                f"POST /webhooks/edrv, {run.connections} connections closed loop, "
                f"median of {run.rounds} x {run.duration_s} s"
            ),
            caption=f"{caption}; load: {run.load_generator}",
        )
        _columns(table, "req/s by round")
        for name, figures in (("empty log", ingest.empty), (f"{settings.events:,} events", ingest.big)):
            by_round = " ".join(f"{rps:.0f}" for rps in figures.rps_by_round)
            table.add_row(name, f"{figures.rps:.0f}", *latency_cells(figures.latency_ms), by_round)
        ratios = ingest.ratios
        table.add_row(
            "big / empty",
            *(f"{value:.2f}x" for value in (ratios.throughput, ratios.p50, ratios.p90, ratios.p99)),
            "",
            style="bold",
        )
        console.print(table)
    if results.reads:
        table = Table(
            title=(
                f"Queue reads (ticket: GET /v1/tickets/{{id}}; queue: GET /v1/locations/{{id}}/queue), "
                f"{settings.read_connections} connection(s) closed loop, "
                f"median of {settings.read_rounds} x {settings.read_duration_s} s"
            ),
            caption=caption,
        )
        _columns(table, "req/s by round")
        for read in results.reads:
            by_round = " ".join(f"{rps:.0f}" for rps in read.rps_by_round)
            table.add_row(
                f"{read.endpoint}, {read.tickets:,} live",
                f"{read.rps:.0f}",
                *latency_cells(read.latency_ms),
                by_round,
            )
        for ratio in results.read_ratios:
            table.add_row(
                f"{ratio.endpoint}: {ratio.tickets:,} / {ratio.few_tickets:,} live",
                *(f"{value:.2f}x" for value in (ratio.throughput, ratio.p50, ratio.p90, ratio.p99)),
                "",
                style="bold",
            )
        console.print(table)
    print_verdicts(results, console)


def _columns(table: Table, last: str) -> None:
    table.add_column("")
    for column in ("req/s", "p50 ms", "p90 ms", "p99 ms", last):
        table.add_column(column, justify="right")
