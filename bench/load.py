"""Load generators: wrk (the real one) and a small asyncio fallback that keeps ``--smoke`` runnable.

Both send the same unique bodies (see ``bench/payload.py``), run closed loop (each connection sends its
next request when the previous one is answered) unless given a rate to pace at, and report the same
``LoadResult``.
"""

from __future__ import annotations

import asyncio
import json
import math
import shutil
import subprocess
from pathlib import Path
from typing import Protocol

import httpx
import msgspec

from bench.payload import Bodies

WRK_SCRIPT = Path(__file__).parent / "wrk" / "post_edrv.lua"
RESULT_MARK = "BENCH_RESULT "  # the line the Lua script's done() prints


class LoadError(RuntimeError):
    """The load generator itself failed (not the app under test)."""


class Latency(msgspec.Struct, frozen=True):
    """Milliseconds, over the requests that completed."""

    p50: float
    p90: float
    p99: float
    max: float


class Load(msgspec.Struct, frozen=True, kw_only=True):
    url: str
    connections: int
    duration_s: int
    run: int  # goes into every event id, so ids stay unique across all runs on one database
    rate: float | None = None  # total requests/s to pace at; None: as fast as the app answers


class LoadResult(msgspec.Struct, frozen=True, kw_only=True):
    duration_s: float
    requests: int  # completed (answered) requests, whatever their status
    rps: float
    non_2xx: int
    socket_errors: int  # connect/read/write errors and timeouts
    latency_ms: Latency


class Generator(Protocol):
    name: str

    async def run(self, load: Load) -> LoadResult: ...


def wrk_threads(connections: int) -> int:
    # -t2 as specified; wrk splits connections evenly over threads, so an odd count gets one thread.
    return 2 if connections % 2 == 0 else 1


class Wrk:
    def __init__(self, template: Path) -> None:
        self.template = template
        self.name = wrk_version()

    def command(self, load: Load) -> list[str]:
        threads = wrk_threads(load.connections)
        args = [str(self.template), str(load.run)]
        if load.rate is not None:
            args += [str(threads), f"{load.rate:.3f}"]
        return [
            "wrk", f"-c{load.connections}", f"-t{threads}", f"-d{load.duration_s}s", "--latency",
            "-s", str(WRK_SCRIPT), load.url, "--", *args,
        ]  # fmt: skip

    async def run(self, load: Load) -> LoadResult:
        return await run_wrk(self.command(load))


async def run_wrk(command: list[str]) -> LoadResult:
    """Run wrk with one of the scripts in ``bench/wrk`` (they all print the same result line)."""
    process = await asyncio.create_subprocess_exec(
        *command, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    stdout, stderr = await process.communicate()
    output = stdout.decode(errors="replace")
    lines = [line for line in output.splitlines() if line.startswith(RESULT_MARK)]
    if process.returncode != 0 or not lines:
        raise LoadError(f"wrk failed ({process.returncode}):\n{output}\n{stderr.decode(errors='replace')}")
    raw = json.loads(lines[-1].removeprefix(RESULT_MARK))
    duration_s = raw["duration_us"] / 1e6
    errors = raw["errors"]
    latency = {key: value / 1000 for key, value in raw["latency_us"].items()}
    return LoadResult(
        duration_s=duration_s,
        requests=raw["requests"],
        rps=raw["requests"] / duration_s,
        non_2xx=errors["status"],  # wrk counts status >= 400 here (its "Non-2xx or 3xx responses")
        socket_errors=errors["connect"] + errors["read"] + errors["write"] + errors["timeout"],
        latency_ms=Latency(latency["p50"], latency["p90"], latency["p99"], latency["max"]),
    )


def wrk_installed() -> bool:
    return shutil.which("wrk") is not None


def wrk_version() -> str:
    # `wrk -v` prints its banner and exits 1; the first words name the build.
    done = subprocess.run(["wrk", "-v"], capture_output=True, text=True, check=False)
    banner = (done.stdout or done.stderr).strip().splitlines()
    return " ".join(banner[0].split()[:2]) if banner else "wrk"


class PythonLoad:
    """httpx on asyncio, in this process: far weaker than wrk (the figures are not comparable), but
    enough to exercise the whole harness where wrk is not installed."""

    name = "python (httpx)"

    async def run(self, load: Load) -> LoadResult:
        latencies: list[float] = []
        failures = {"non_2xx": 0, "socket": 0}
        limits = httpx.Limits(max_connections=load.connections, max_keepalive_connections=load.connections)
        loop = asyncio.get_running_loop()
        headers = {"content-type": "application/json"}

        async def worker(index: int, client: httpx.AsyncClient, start: float) -> None:
            bodies = Bodies(load.run, index + 1)
            deadline = start + load.duration_s
            interval = load.connections / load.rate if load.rate else 0.0
            slot = start + interval * index / load.connections  # staggered, like wrk's per-thread slots
            while (now := loop.time()) < deadline:
                if interval:  # the same pacing as the Lua script: no catching up on missed slots
                    slot = max(slot, now)
                    await asyncio.sleep(slot - now)
                    slot += interval
                sent = loop.time()
                try:
                    response = await client.post(load.url, content=bodies.next(), headers=headers)
                except httpx.TransportError:
                    failures["socket"] += 1
                    continue
                latencies.append(loop.time() - sent)
                if not 200 <= response.status_code < 300:
                    failures["non_2xx"] += 1

        async with httpx.AsyncClient(limits=limits, timeout=10) as client:
            start = loop.time()
            await asyncio.gather(*(worker(index, client, start) for index in range(load.connections)))
            duration_s = loop.time() - start
        if not latencies:
            raise LoadError("the Python load generator completed no request")
        return LoadResult(
            duration_s=duration_s,
            requests=len(latencies),
            rps=len(latencies) / duration_s,
            non_2xx=failures["non_2xx"],
            socket_errors=failures["socket"],
            latency_ms=latency_summary(latencies),
        )


def latency_summary(seconds: list[float]) -> Latency:
    ordered = sorted(seconds)

    def percentile(p: float) -> float:  # nearest rank
        return ordered[max(0, math.ceil(p / 100 * len(ordered)) - 1)] * 1000

    return Latency(percentile(50), percentile(90), percentile(99), ordered[-1] * 1000)
