"""The subscribers benchmark's client: N server-sent event streams in a process of their own.

Started by ``bench/subscribers.py`` as ``python -m bench.subscribers_client ...``; it talks JSON lines:
it writes progress and results on stdout and takes commands on stdin. Kept out of the harness's process
so that the harness's own work (HTTP calls, psutil, printing) never delays a stream's reader, and so
that its cost can be seen apart (it reports its CPU time and memory).

Each stream is one ``asyncio.open_connection`` with a hand-written GET (``bench/sse_client.py``); its
reader only looks for whole ``event: queue`` messages in the raw bytes (``MessageScanner``), counts them,
and checks whether each carries the marker of the board the harness is waiting for. Nothing is decoded.

Messages are counted per stream in **windows**: a window starts when the streams are open and at every
``arm``, and ends at the next ``arm`` or ``tally``, which report it. The harness arms a broadcast just
before sending the change, so the window of a broadcast holds every message its change caused (and any
other that arrived before the next one was armed), whether or not it was the one waited for.

Protocol (one JSON object a line):

- on start it opens ``--count`` streams, at most ``--window`` being opened at a time (so the server's
  listen backlog is never overrun), each counted once its first ``event: queue`` message (which must
  contain ``--first``) has arrived; ``{"type": "progress", ...}`` every 1,000, then
  ``{"type": "ready", ...}`` (or ``{"type": "failed", ...}`` and exit 1 when any stream failed to open);
- ``{"cmd": "arm", "marker": "..."}``: ends the current window and starts a new one; from now on, the
  first ``event: queue`` message carrying the marker on each stream is stamped (``time.monotonic()``:
  CLOCK_MONOTONIC, the same clock in every process on the machine) → ``{"type": "armed", "window": W}``
  with W the window that just ended;
- ``{"cmd": "collect", "timeout_s": T}``: wait until every stream has one, or T seconds →
  ``{"type": "arrivals", "arrivals": [... or null], ...}``; stamping stops, the window goes on;
- ``{"cmd": "tally"}``: ends the current window and starts a new one → ``{"type": "tally", "window": W}``;
- a window W: ``{"messages": total, "fewest": f, "most": m, "last_unmarked": u}``: ``event: queue``
  messages received by all streams, the fewest and most on one stream, and how many streams' last
  message lacked the window's marker (streams without a message not counted; none before the first arm);
- ``{"cmd": "close"}``: close every stream → ``{"type": "closed", ...}``, exit 0.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import resource
import sys
import time
from collections.abc import Callable
from typing import Any

import msgspec
import psutil

from bench.servers import raise_open_files_limit
from bench.sse_client import MessageScanner, SseError, Stream, open_stream

LOOP_FACTORY: Callable[[], asyncio.AbstractEventLoop] | None
try:  # the cheaper event loop, installed with the app; plain asyncio without it
    import uvloop

    LOOP_FACTORY, LOOP_NAME = uvloop.new_event_loop, "uvloop"
except ImportError:  # pragma: no cover
    LOOP_FACTORY, LOOP_NAME = None, "asyncio"

READ_SIZE = 64 * 1024
PROGRESS_EVERY = 1000
MAX_ERRORS = 5  # reported; the count is reported in full

_encode = msgspec.json.Encoder().encode


def _emit(message: dict[str, Any]) -> None:
    sys.stdout.buffer.write(_encode(message) + b"\n")
    sys.stdout.buffer.flush()


def _cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


class Subscribers:
    def __init__(self, args: argparse.Namespace) -> None:
        self.host: str = args.host
        self.port: int = args.port
        self.path: str = args.path
        self.count: int = args.count
        self.sources: list[str | None] = list(args.sources.split(",")) if args.sources else [None]
        self.first = args.first.encode()
        self.open_timeout_s: float = args.open_timeout
        self.window = asyncio.Semaphore(args.window)
        self.streams: list[Stream | None] = [None] * self.count
        self.readers: list[asyncio.Task[None]] = []
        self.opened = 0
        self.closed_by_server = 0
        # The armed broadcast: what to look for, and when each stream got it.
        self.marker: bytes | None = None  # stamping arrivals (until collected)
        self.arrivals: list[float | None] = [None] * self.count
        self.arrived = 0
        self.all_in = asyncio.Event()
        # The current window: messages per stream, and whether each one's last carried the marker.
        self.expected: bytes | None = None  # the window's marker (until the next arm or tally)
        self.counts = [0] * self.count
        self.last_marked = [False] * self.count
        self.started = time.monotonic()

    # -- opening ------------------------------------------------------------------------------------

    async def open_all(self) -> list[BaseException]:
        outcomes = await asyncio.gather(
            *(self._open_one(index) for index in range(self.count)), return_exceptions=True
        )
        return [outcome for outcome in outcomes if isinstance(outcome, BaseException)]

    async def _open_one(self, index: int) -> None:
        source = self.sources[index % len(self.sources)]
        async with self.window:
            stream, scanner, more = await asyncio.wait_for(self._connect(source), self.open_timeout_s)
        self.streams[index] = stream
        self.counts[index] += more
        self.readers.append(asyncio.create_task(self._follow(index, stream, scanner)))
        self.opened += 1
        if self.opened % PROGRESS_EVERY == 0:
            _emit(
                {
                    "type": "progress",
                    "opened": self.opened,
                    "elapsed_s": round(time.monotonic() - self.started, 3),
                }
            )

    async def _connect(self, source: str | None) -> tuple[Stream, MessageScanner, int]:
        """A stream whose first board has arrived: it is subscribed and live; and how many more messages
        came with that first one (counted in the first window)."""
        stream = await open_stream(self.host, self.port, self.path, local_host=source)
        scanner = MessageScanner("queue")
        try:
            while True:
                data = await stream.reader.read(READ_SIZE)
                if not data:
                    raise SseError("the stream ended before its first message")
                found = scanner.feed(data)
                if found:
                    break
        except BaseException:
            stream.close()
            raise
        if self.first not in found[0]:
            stream.close()
            raise SseError(f"the first board lacks {self.first!r}: {found[0][:300]!r}")
        return stream, scanner, len(found) - 1

    # -- following ----------------------------------------------------------------------------------

    async def _follow(self, index: int, stream: Stream, scanner: MessageScanner) -> None:
        read = stream.reader.read
        while True:
            try:
                data = await read(READ_SIZE)
            except OSError:
                data = b""
            if not data:
                self.closed_by_server += 1
                return
            now = time.monotonic()
            for message in scanner.feed(data):
                self.counts[index] += 1
                marked = self.expected is not None and self.expected in message
                self.last_marked[index] = marked
                if marked and self.marker is not None and self.arrivals[index] is None:
                    self.arrivals[index] = now
                    self.arrived += 1
                    if self.arrived == self.count:
                        self.all_in.set()

    def tally(self) -> dict[str, int]:
        """Ends the current window (and reports it); the next one starts empty, with no marker."""
        counts, last_marked = self.counts, self.last_marked
        window = {
            "messages": sum(counts),
            "fewest": min(counts, default=0),
            "most": max(counts, default=0),
            "last_unmarked": sum(
                1 for count, marked in zip(counts, last_marked, strict=True) if count and not marked
            ),
        }
        self.counts = [0] * self.count
        self.last_marked = [False] * self.count
        self.expected = None
        return window

    def arm(self, marker: str) -> dict[str, int]:
        window = self.tally()
        self.arrivals = [None] * self.count
        self.arrived = 0
        self.all_in = asyncio.Event()
        self.marker = self.expected = marker.encode()
        return window

    async def collect(self, timeout_s: float) -> dict[str, Any]:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.all_in.wait(), timeout_s)
        self.marker = None
        return {
            "type": "arrivals",
            "arrivals": self.arrivals,
            "arrived": self.arrived,
            "closed_by_server": self.closed_by_server,
            "cpu_s": _cpu_s(),
        }

    async def close(self) -> None:
        for stream in self.streams:
            if stream is not None:
                stream.close()
        for reader in self.readers:
            reader.cancel()
        await asyncio.gather(*self.readers, return_exceptions=True)


async def _commands() -> asyncio.StreamReader:
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    return reader


async def _main(args: argparse.Namespace) -> int:
    subscribers = Subscribers(args)
    failures = await subscribers.open_all()
    rss = psutil.Process().memory_info().rss
    if failures:
        await subscribers.close()
        _emit(
            {
                "type": "failed",
                "opened": subscribers.opened,
                "failed": len(failures),
                "errors": [repr(failure) for failure in failures[:MAX_ERRORS]],
            }
        )
        return 1
    _emit(
        {
            "type": "ready",
            "opened": subscribers.opened,
            "open_s": round(time.monotonic() - subscribers.started, 3),
            "rss": rss,
            "cpu_s": _cpu_s(),
            "nofile": list(resource.getrlimit(resource.RLIMIT_NOFILE)),
            "loop": LOOP_NAME,
        }
    )
    commands = await _commands()
    while True:
        line = await commands.readline()
        if not line:  # the harness went away
            await subscribers.close()
            return 1
        command = msgspec.json.decode(line)
        match command["cmd"]:
            case "arm":
                _emit({"type": "armed", "window": subscribers.arm(command["marker"])})
            case "tally":
                _emit({"type": "tally", "window": subscribers.tally()})
            case "collect":
                _emit(await subscribers.collect(float(command["timeout_s"])))
            case "close":
                rss = psutil.Process().memory_info().rss
                closed_by_server = subscribers.closed_by_server
                await subscribers.close()
                _emit({"type": "closed", "closed_by_server": closed_by_server, "rss": rss})
                return 0
            case other:
                _emit({"type": "failed", "errors": [f"unknown command {other!r}"]})
                return 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--path", required=True)
    parser.add_argument("--count", type=int, required=True)
    parser.add_argument("--window", type=int, default=250, help="streams being opened at a time")
    parser.add_argument("--sources", default="", help="local addresses to spread the streams over, a,b,c")
    parser.add_argument("--first", default="", help="what each stream's first board must contain")
    parser.add_argument("--open-timeout", type=float, default=60.0)
    args = parser.parse_args(argv)
    raise_open_files_limit()
    with asyncio.Runner(loop_factory=LOOP_FACTORY) as runner:
        return runner.run(_main(args))


if __name__ == "__main__":
    sys.exit(main())
