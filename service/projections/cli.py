"""``chargeline projections status | rebuild``: what operators run against the live database."""

from __future__ import annotations

import asyncio

import click
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn, TimeRemainingColumn
from rich.table import Table

from service.db.engine import create_engine, resolve_database_url
from service.eventlog.store import EventStore
from service.projections.catalog import PROJECTIONS
from service.projections.rebuild import RebuildInProgress, rebuild
from service.projections.status import projection_statuses
from service.settings import Settings


async def show_status(settings: Settings) -> None:
    store = await _store(settings)
    try:
        head, statuses = await projection_statuses(store)
    finally:
        await store.engine.dispose()
    table = Table(title=f"projections (log head {head})")
    for column in ("name", "position", "lag", "errors", "updated"):
        table.add_column(column, justify="left" if column in ("name", "updated") else "right")
    for s in statuses:
        updated = s.updated_at.isoformat(timespec="seconds") if s.updated_at else "never"
        table.add_row(s.name, str(s.position), str(s.lag), str(s.errors), updated)
    Console().print(table)


async def rebuild_projections(settings: Settings, names: tuple[str, ...]) -> None:
    unknown = [name for name in names if name not in PROJECTIONS]
    if unknown:
        raise click.BadParameter(
            f"unknown projection(s) {', '.join(unknown)}; there are: {', '.join(PROJECTIONS)}"
        )
    store = await _store(settings)
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[rate]}"),
        TimeRemainingColumn(),
    )
    try:
        with Progress(*columns) as progress:
            for name in names or tuple(PROJECTIONS):
                task = progress.add_task(name, total=None, rate="")

                def advance(position: int, head: int, task: TaskID = task) -> None:
                    progress.update(task, completed=position, total=head)
                    speed = progress.tasks[task].speed
                    progress.update(task, rate=f"{speed:,.0f} events/s" if speed else "")

                try:
                    swapped_at = await rebuild(store, PROJECTIONS[name], advance)
                except RebuildInProgress as exc:
                    raise click.ClickException(str(exc)) from None
                progress.update(task, description=f"{name} ✓ swapped in at {swapped_at}")
    finally:
        await store.engine.dispose()


async def _store(settings: Settings) -> EventStore:
    url = await asyncio.to_thread(resolve_database_url, settings)
    return EventStore(create_engine(url, pool_size=2))
