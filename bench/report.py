"""Printing ingest results; saving any benchmark's results."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import NoReturn, Protocol

import msgspec
from rich.console import Console
from rich.table import Table

from bench.load import Latency
from bench.results import Figures, Results, Target

VERDICTS = {True: "[green]PASS[/]", False: "[red]FAIL[/]", None: "[dim]not evaluated (smoke)[/]"}


class Judged(Protocol):
    """What every benchmark's results hold besides its figures."""

    ok: bool
    error: str | None
    targets: list[Target]


def write_json(results: msgspec.Struct, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(msgspec.json.format(msgspec.json.encode(results), indent=2) + b"\n")


def save_and_exit(results: Judged, path: Path, console: Console) -> NoReturn:
    """Write the JSON and exit as every benchmark does: 1 when a check failed, not for a missed target."""
    assert isinstance(results, msgspec.Struct)
    write_json(results, path)
    console.print(f"Results written to {path}")
    sys.exit(0 if results.ok else 1)


def target_sign(unit: str) -> str:
    """Ratios ("x") are floors; everything else (ms, MiB) is a ceiling."""
    return "≥" if unit == "x" else "≤"


def print_verdicts(results: Judged, console: Console) -> None:
    """Each target against its limit, then the error that stopped the run, if one did."""
    for target in results.targets:
        console.print(
            f"Target: {target.name} {target_sign(target.unit)} {target.limit:g} {target.unit}: "
            f"{target.value:.2f} {target.unit} {VERDICTS[target.passed]}"
        )
    if results.error:
        console.print(f"[bold red]Benchmark failed:[/] {results.error}", highlight=False)


def print_report(results: Results, console: Console) -> None:
    if results.baseline and results.chargeline and results.ratios:
        console.print(_summary_table(results, results.baseline, results.chargeline))
    if results.half_rate:
        half = results.half_rate
        console.print(
            f"Paced at half Chargeline's max rate ({half.target_rps:.0f} req/s asked):\n"
            f"  chargeline {half.achieved_rps:6.0f} req/s  p50 {half.latency_ms.p50:6.2f}  "
            f"p99 {half.latency_ms.p99:6.2f} ms\n"
            f"  baseline   {half.baseline_achieved_rps:6.0f} req/s  p50 {half.baseline_latency_ms.p50:6.2f}  "
            f"p99 {half.baseline_latency_ms.p99:6.2f} ms (control: same rate)",
            highlight=False,
        )
    for target in results.targets:
        verdict = {True: "[green]PASS[/]", False: "[red]FAIL[/]", None: "[dim]not evaluated (smoke)[/]"}
        console.print(
            f"Target: {target.name} ≤ {target.limit:g} {target.unit}: "
            f"{target.value:.2f} {target.unit} {verdict[target.passed]}"
        )
    if results.error:
        console.print(f"[bold red]Benchmark failed:[/] {results.error}", highlight=False)


def _summary_table(results: Results, baseline: Figures, chargeline: Figures) -> Table:
    settings = results.settings
    postgres = results.postgres
    what_if = "".join(f"; {name}={value}" for name, value in settings.pg_settings.items())
    table = Table(
        title=(
            f"POST /webhooks/edrv, {settings.connections} connections closed loop, "
            f"median of {settings.rounds} x {settings.duration_s} s"
        ),
        caption=(
            f"{results.machine.cpu_count} CPUs, {results.machine.platform}; "
            f"PostgreSQL {postgres.version if postgres else '?'}{what_if}; load: {settings.load_generator}"
        ),
    )
    table.add_column("")
    for column in ("req/s", "p50 ms", "p90 ms", "p99 ms", "req/s by round"):
        table.add_column(column, justify="right")
    for name, figures in (("baseline", baseline), ("chargeline", chargeline)):
        by_round = " ".join(f"{rps:.0f}" for rps in figures.rps_by_round)
        table.add_row(name, f"{figures.rps:.0f}", *latency_cells(figures.latency_ms), by_round)
    ratios = results.ratios
    assert ratios is not None
    table.add_row(
        "chargeline / baseline",
        *(f"{value:.2f}x" for value in (ratios.throughput, ratios.p50, ratios.p90, ratios.p99)),
        "",
        style="bold",
    )
    return table


def latency_cells(latency: Latency) -> list[str]:
    return [f"{latency.p50:.2f}", f"{latency.p90:.2f}", f"{latency.p99:.2f}"]
