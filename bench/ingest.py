"""The ingest benchmark: ``POST /webhooks/edrv`` on Chargeline against the bare baseline, same run.

Machines are noisy, so the headline is the ratio to a baseline measured minutes apart on the same
server and database: closed-loop rounds interleaved (baseline, chargeline, baseline, ...), medians per
app, then Chargeline paced at half its own measured maximum, where its p99 must stay within target (and
the baseline paced at that same rate, as a control for the machine's own tail).
Every run is checked: no error responses, and the app's table grew by the completed requests.
"""

from __future__ import annotations

import asyncio
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Literal, Protocol

import asyncpg
from rich.console import Console

from bench.database import postgres_info, row_count, scratch_database, server_url, settled_row_count
from bench.load import Generator, Load, LoadError, PythonLoad, Wrk, wrk_installed
from bench.payload import write_template
from bench.results import Results, Run, RunSettings, machine
from bench.servers import AppServer, ServerFailed

if TYPE_CHECKING:
    Connection = asyncpg.Connection[asyncpg.Record]


GeneratorName = Literal["wrk", "python"]


class BenchFailure(RuntimeError):
    """A run broke a correctness check: the figures cannot be trusted."""


@dataclass(frozen=True)
class App:
    server: AppServer
    table: str  # where each accepted request leaves exactly one row


def resolve_generator(name: str, *, smoke: bool) -> GeneratorName:
    """Which load generator ``--generator name`` means here; raises when wrk is needed but missing."""
    if name == "python":
        return "python"
    if wrk_installed():
        return "wrk"
    if name == "auto" and smoke:
        return "python"
    raise BenchFailure("wrk is not installed: apt-get install wrk")


def _generator(name: GeneratorName, template: Path) -> Generator:
    return Wrk(template) if name == "wrk" else PythonLoad()


class RunLog(Protocol):
    """Where a runner records its runs (the ingest results, or the growth benchmark's)."""

    runs: list[Run]


class Runner:
    """Runs loads one after the other and checks each against the database."""

    def __init__(
        self, generator: Generator, db: Connection, settings: RunSettings, results: RunLog, console: Console
    ) -> None:
        self.generator = generator
        self.db = db
        self.settings = settings
        self.results = results
        self.console = console
        self._runs = 0

    async def measure(
        self, app: App, kind: str, round: int, *, duration_s: int, rate: float | None = None
    ) -> Run:
        self._runs += 1
        connections = self.settings.connections
        load = Load(
            url=f"{app.server.base_url}/webhooks/edrv",
            connections=connections,
            duration_s=duration_s,
            run=self._runs,
            rate=rate,
        )
        before = await row_count(self.db, app.table)
        result = await self.generator.run(load)
        app.server.check_alive()
        stored = await settled_row_count(self.db, app.table) - before
        run = Run(app=app.server.name, kind=kind, round=round, target_rps=rate, stored=stored, load=result)
        self.results.runs.append(run)
        self.console.print(
            f"  {app.server.name:<10} {kind:<9} #{round} {result.rps:6.0f} req/s  "
            f"p50 {result.latency_ms.p50:6.2f}  p99 {result.latency_ms.p99:6.2f} ms  "
            f"{result.requests}→{stored} rows",
            highlight=False,
        )
        self._check(app, run, connections)
        return run

    def _check(self, app: App, run: Run, connections: int) -> None:
        problems = []
        if run.load.non_2xx:
            problems.append(f"{run.load.non_2xx} non-2xx responses")
        if run.load.socket_errors:
            problems.append(f"{run.load.socket_errors} socket errors or timeouts")
        # Requests still in flight when the load stopped may or may not have been stored.
        completed = run.load.requests
        if not completed - connections <= run.stored <= completed + connections:
            problems.append(
                f"{app.table} grew by {run.stored} rows for {completed} completed requests "
                f"(allowed: ±{connections} in flight)"
            )
        if problems:
            raise BenchFailure(
                f"{app.server.name} {run.kind} round {run.round}: {'; '.join(problems)}\n"
                f"--- end of {app.server.name}'s log ---\n{app.server.log_tail()}"
            )


async def run_ingest(settings: RunSettings, generator_name: GeneratorName, console: Console) -> Results:
    """Measure; a failure is recorded in the results (with the runs done so far), not raised."""
    results = Results(started_at=datetime.now(UTC), machine=machine(), settings=settings)
    try:
        await _measure(settings, generator_name, results, console)
        results.ok = True
    except (BenchFailure, ServerFailed, LoadError) as exc:
        results.error = str(exc)
    results.finished_at = datetime.now(UTC)
    return results


async def _measure(
    settings: RunSettings, generator_name: GeneratorName, results: Results, console: Console
) -> None:
    with tempfile.TemporaryDirectory(prefix="chargeline-bench-") as tmp:
        work = Path(tmp)
        template = write_template(work / "body.json")
        generator = _generator(generator_name, template)
        settings.load_generator = generator.name
        server, source = await asyncio.to_thread(server_url)
        async with scratch_database(server, settings.pg_settings) as url:
            db: Connection = await asyncpg.connect(url)
            try:
                results.postgres = await postgres_info(db, source, settings.pg_settings)
                console.print(
                    f"PostgreSQL {results.postgres.version} ({source}), load: {generator.name}, "
                    f"{settings.connections} connections"
                )
                baseline = App(
                    AppServer("baseline", "bench.baseline_app:create_app", "/health", url, work),
                    "bench_baseline",
                )
                chargeline = App(
                    AppServer("chargeline", "bench.chargeline_app:create_app", "/health/ready", url, work),
                    "events",
                )
                async with baseline.server, chargeline.server:
                    runner = Runner(generator, db, settings, results, console)
                    await _rounds(runner, results, baseline, chargeline)
            finally:
                await db.close()


async def _rounds(runner: Runner, results: Results, baseline: App, chargeline: App) -> None:
    settings = runner.settings
    if settings.warmup_s:  # fills pools and caches; recorded, but not part of any median
        for app in (baseline, chargeline):
            await runner.measure(app, "warmup", 0, duration_s=settings.warmup_s)
    for round in range(1, settings.rounds + 1):
        for app in (baseline, chargeline):
            await runner.measure(app, "max", round, duration_s=settings.duration_s)
    results.summarise_max_rounds()
    assert results.chargeline is not None
    half = results.chargeline.rps / 2
    control = await runner.measure(baseline, "half_rate", 1, duration_s=settings.duration_s, rate=half)
    run = await runner.measure(chargeline, "half_rate", 1, duration_s=settings.duration_s, rate=half)
    results.record_half_rate(run, control)
