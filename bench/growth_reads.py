"""The growth benchmark's queue reads: a driver's ticket and a location's public queue, at a location
whose queue holds many live tickets against one that holds a few, on the same app in the same run.

Set-up (not measured), through the real API: per location one station with one CCS2 connector reported
``Charging`` (so nobody is offered anything and every ticket stays ``waiting``), the queue policy's
``max_queue_length`` raised to 10,000, then one driver after another joins, each with a token of its own.
A queue's state loads from its snapshot (written after every command) and the events after it, so each
read decodes a state of N tickets.

Measured: wrk (``bench/wrk/get_paths.lua``), closed loop, interleaved rounds of the four reads (ticket
at few, ticket at many, queue at few, queue at many); the ticket reads go round every ticket of the
location, each with its driver's token. Checked: no error responses, no socket errors.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

import asyncpg
import httpx
import msgspec

from bench.load import WRK_SCRIPT, Latency, LoadResult, run_wrk, wrk_threads
from bench.queue_latency import CAUGHT_UP, RUNNERS
from bench.results import median_figures
from service.api.drivers import mint_token
from service.simulate.edrv import Connector, Station

if TYPE_CHECKING:
    Connection = asyncpg.Connection[asyncpg.Record]

GET_SCRIPT = WRK_SCRIPT.parent / "get_paths.lua"
CONNECTOR_TYPE = "CCS2"
MAX_QUEUE_LENGTH = 10_000  # the policy's upper bound; the default (200) would refuse the 201st driver
JOINS_IN_FLIGHT = 4  # commands on one queue take turns in the app anyway
SETUP_TIMEOUT_S = 120.0
ENDPOINTS = ("ticket", "queue")
_LIVE = "SELECT count(*) FROM tickets WHERE location_id = $1 AND status = 'waiting'"


class ReadFailure(RuntimeError):
    """The set-up or a read went wrong: the figures cannot be trusted."""


class ReadRun(msgspec.Struct, frozen=True, kw_only=True):
    endpoint: str  # "ticket": GET /v1/tickets/{id} (the driver's); "queue": GET /v1/locations/{id}/queue
    tickets: int  # live tickets in the location's queue
    round: int
    load: LoadResult


class ReadFigures(msgspec.Struct, frozen=True, kw_only=True):
    endpoint: str
    tickets: int
    rps: float  # medians over the rounds
    latency_ms: Latency
    rps_by_round: list[float]


class ReadRatio(msgspec.Struct, frozen=True, kw_only=True):
    """Many tickets ÷ few tickets, same endpoint: latency above 1 is slower, throughput below 1 is."""

    endpoint: str
    tickets: int
    few_tickets: int
    p50: float
    p90: float
    p99: float
    throughput: float


@dataclass
class QueueSite:
    location_id: str
    tickets: list[tuple[str, str]]  # (ticket id, its driver's token)


async def set_up_sites(
    http: httpx.AsyncClient, db: Connection, admin_token: str, jwt_secret: str, sizes: list[int]
) -> list[QueueSite]:
    admin = {"Authorization": f"Bearer {admin_token}"}
    sites = []
    for number in range(1, len(sizes) + 1):
        location_id, station_id = f"6670{number:020x}", f"6671{number:020x}"  # 24 hex digits, as eDRV's
        connector = Connector(f"6672{number:020x}", CONNECTOR_TYPE, 150, "Charging")
        body = Station(station_id, location_id, [connector]).status(connector.id, "Charging")
        _expect(await http.post("/webhooks/edrv", content=body), 200, "POST /webhooks/edrv")
        sites.append(QueueSite(location_id, []))
    for site in sites:
        await _wait(partial(_listed, db, site.location_id), "the availability read model lists the site")
        policy = {"max_queue_length": MAX_QUEUE_LENGTH}
        path = f"/v1/admin/locations/{site.location_id}/queue-policy"
        _expect(await http.put(path, json=policy, headers=admin), 200, "PUT queue-policy")
    for number, (site, size) in enumerate(zip(sites, sizes, strict=True), start=1):
        await _join_all(http, site, number, size, jwt_secret)
        await _wait(partial(_has_live, db, site), f"the tickets read model shows {size} waiting")
    await _wait(partial(_caught_up, db), "the read models and the dispatcher caught up")
    for site in sites:
        await _check_reads(http, site)
    return sites


async def _join_all(http: httpx.AsyncClient, site: QueueSite, number: int, size: int, secret: str) -> None:
    slots = asyncio.Semaphore(JOINS_IN_FLIGHT)

    async def join(driver: str) -> tuple[str, str]:
        token = mint_token(secret, driver)
        async with slots:
            response = await http.post(
                f"/v1/locations/{site.location_id}/tickets",
                json={"connector_types": [CONNECTOR_TYPE]},
                headers={"Authorization": f"Bearer {token}"},
            )
        _expect(response, 201, "POST tickets (join)")
        if response.json()["status"] != "waiting":
            raise ReadFailure(f"{driver} joined as {response.json()['status']!r}, expected waiting")
        return str(response.json()["id"]), token

    drivers = [f"growth-driver-{number}-{n}" for n in range(1, size + 1)]
    site.tickets = list(await asyncio.gather(*(join(driver) for driver in drivers)))


async def _check_reads(http: httpx.AsyncClient, site: QueueSite) -> None:
    """What the measured reads must answer: the whole line, and each driver's ticket in it."""
    board = await http.get(f"/v1/locations/{site.location_id}/queue")
    _expect(board, 200, "GET queue")
    waiting, line = board.json()["counts"].get("waiting"), board.json()["line"]
    if waiting != len(site.tickets) or len(line) != len(site.tickets):
        raise ReadFailure(f"the queue shows {waiting} waiting, {len(line)} in line for {len(site.tickets)}")
    ticket_id, token = site.tickets[-1]
    ticket = await http.get(f"/v1/tickets/{ticket_id}", headers={"Authorization": f"Bearer {token}"})
    _expect(ticket, 200, "GET ticket")
    if ticket.json()["status"] != "waiting":
        raise ReadFailure(f"the last driver's ticket reads {ticket.json()['status']!r}, expected waiting")


def write_requests(work: Path, site: QueueSite) -> dict[str, Path]:
    """The request lists for ``get_paths.lua``: every ticket with its token; the location's queue."""
    tickets, queue = work / f"tickets-{site.location_id}.txt", work / f"queue-{site.location_id}.txt"
    tickets.write_text("".join(f"/v1/tickets/{ticket}\t{token}\n" for ticket, token in site.tickets))
    queue.write_text(f"/v1/locations/{site.location_id}/queue\n")
    return {"ticket": tickets, "queue": queue}


async def measure_read(
    base_url: str, requests: Path, *, connections: int, duration_s: int, what: str
) -> LoadResult:
    threads = wrk_threads(connections)
    command = [
        "wrk", f"-c{connections}", f"-t{threads}", f"-d{duration_s}s", "--latency",
        "-s", str(GET_SCRIPT), base_url, "--", str(requests),
    ]  # fmt: skip
    result = await run_wrk(command)
    problems = []
    if result.non_2xx:
        problems.append(f"{result.non_2xx} error responses")
    if result.socket_errors:
        problems.append(f"{result.socket_errors} socket errors or timeouts")
    if not result.requests:
        problems.append("no request completed")
    if problems:
        raise ReadFailure(f"{what}: {'; '.join(problems)}")
    return result


def summarise_reads(runs: list[ReadRun], few: int) -> tuple[list[ReadFigures], list[ReadRatio]]:
    figures: dict[tuple[str, int], ReadFigures] = {}
    for endpoint, tickets in dict.fromkeys((run.endpoint, run.tickets) for run in runs):
        mine = [run for run in runs if run.endpoint == endpoint and run.tickets == tickets]
        median = median_figures([run.load for run in mine])
        figures[endpoint, tickets] = ReadFigures(
            endpoint=endpoint,
            tickets=tickets,
            rps=median.rps,
            latency_ms=median.latency_ms,
            rps_by_round=median.rps_by_round,
        )
    ratios = []
    for (endpoint, tickets), many in figures.items():
        base = figures.get((endpoint, few))
        if tickets == few or base is None:
            continue
        ratios.append(
            ReadRatio(
                endpoint=endpoint,
                tickets=tickets,
                few_tickets=few,
                p50=many.latency_ms.p50 / base.latency_ms.p50,
                p90=many.latency_ms.p90 / base.latency_ms.p90,
                p99=many.latency_ms.p99 / base.latency_ms.p99,
                throughput=many.rps / base.rps,
            )
        )
    return list(figures.values()), ratios


async def _listed(db: Connection, location_id: str) -> bool:
    return bool(await db.fetchval("SELECT count(*) FROM connectors WHERE location_id = $1", location_id))


async def _has_live(db: Connection, site: QueueSite) -> bool:
    return bool(await db.fetchval(_LIVE, site.location_id) == len(site.tickets))


async def _caught_up(db: Connection) -> bool:
    return bool(await db.fetchval(CAUGHT_UP, RUNNERS) == len(RUNNERS))


async def _wait(done: Callable[[], Awaitable[bool]], what: str) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + SETUP_TIMEOUT_S
    while not await done():
        if loop.time() > deadline:
            raise ReadFailure(f"not within {SETUP_TIMEOUT_S:.0f} s: {what}")
        await asyncio.sleep(0.05)


def _expect(response: httpx.Response, status: int, what: str) -> None:
    if response.status_code != status:
        raise ReadFailure(f"{what} answered {response.status_code}, expected {status}: {response.text}")
