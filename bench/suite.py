"""``python -m bench all``: every benchmark in turn, each writing its own JSON, then one summary screen.

The benchmarks are run by invoking their own commands (the same defaults as when run by name), so the
suite adds no second way of running anything. A benchmark that fails (exit 1) does not stop the others;
the summary is read back from the JSON files they wrote, so it shows exactly what was recorded.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.table import Table

from bench import RESULTS_DIR
from bench.report import VERDICTS, target_sign

SUITE = ("ingest", "rebuild", "queue", "subscribers", "webhooks", "growth")


@click.command("all")
@click.option(
    "--smoke", is_flag=True, help="Every benchmark's --smoke: checks every harness, judges nothing."
)
@click.pass_context
def all_command(context: click.Context, smoke: bool) -> None:
    """Every benchmark in turn (ingest, rebuild, queue, subscribers, webhooks, growth), then a summary."""
    group = context.parent.command if context.parent else None
    assert isinstance(group, click.Group)
    console = Console()
    codes: dict[str, int] = {}
    for name in SUITE:
        console.rule(f"bench {name}{' --smoke' if smoke else ''}")
        try:
            context.invoke(group.commands[name], smoke=smoke)
            codes[name] = 0
        except SystemExit as exit:  # each command exits with its own code; the suite goes on
            codes[name] = exit.code if isinstance(exit.code, int) else 1
        except click.ClickException as exc:  # e.g. wrk missing: said, and the next one runs
            exc.show()
            codes[name] = exc.exit_code
    print_summary(codes, smoke, console)
    sys.exit(0 if not any(codes.values()) else 1)


def result_path(name: str, smoke: bool) -> Path:
    return RESULTS_DIR / (f"{name}-smoke.json" if smoke else f"{name}.json")


def print_summary(codes: dict[str, int], smoke: bool, console: Console) -> None:
    table = Table(title=f"Benchmark suite{' (smoke: nothing judged)' if smoke else ''}")
    for column in ("benchmark", "figure", "value", "target", "verdict"):
        table.add_column(column, justify="right" if column in ("value", "target") else "left")
    for name, code in codes.items():
        path = result_path(name, smoke)
        try:
            results: dict[str, Any] = json.loads(path.read_text())
        except (OSError, ValueError):
            table.add_row(name, "no results written", "", "", "[red]error[/]")
            continue
        if code or not results.get("ok"):
            error = str(results.get("error") or f"exit code {code}").splitlines()[0][:70]
            table.add_row(name, error, "", "", "[red]failed[/]")
        for figure, value in _headlines(name, results):
            table.add_row(name, figure, value, "", "")
        for target in results.get("targets", []):
            table.add_row(name, target["name"], *_judged(target))
    console.print(table)


def _judged(target: dict[str, Any]) -> tuple[str, str, str]:
    unit = target["unit"]
    limit = f"{target_sign(unit)} {target['limit']:g} {unit}"
    return f"{target['value']:.2f} {unit}", limit, VERDICTS[target["passed"]]


def _headlines(name: str, results: dict[str, Any]) -> list[tuple[str, str]]:
    """Each benchmark's headline ratios that no target judges (the targets are listed anyway)."""
    if name == "ingest" and results.get("ratios"):
        return [("throughput Chargeline / baseline", f"{results['ratios']['throughput']:.2f} x")]
    if name == "growth":
        return [
            (
                f"GET {ratio['endpoint']}: {ratio['tickets']:,} / {ratio['few_tickets']:,} live tickets, p50",
                f"{ratio['p50']:.2f} x",
            )
            for ratio in results.get("read_ratios", [])
        ]
    return []
