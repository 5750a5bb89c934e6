"""The apps under test, each in its own uvicorn process, configured identically.

Single worker, uvloop, httptools, no access log, log level warning: the production-like settings that
keep the comparison about the apps and not about uvicorn's logging. Output goes to a log file that is
shown when something fails.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import resource
import signal
import socket
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType

import httpx
import psutil

from bench import DATABASE_URL_ENV, ROOT

READY_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 15.0


class ServerFailed(RuntimeError):
    """An app did not start, or died; the message carries the end of its log."""


def raise_open_files_limit() -> tuple[int, int]:
    """Raise this process's soft ``RLIMIT_NOFILE`` to its hard limit, so that it, and every process it
    starts afterwards (they inherit it: the app, a client), can hold that many sockets. Returns the
    limits in force, (soft, hard)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = hard
    if target == resource.RLIM_INFINITY:  # the kernel still caps it at fs.nr_open
        try:
            target = int(Path("/proc/sys/fs/nr_open").read_text())
        except (OSError, ValueError):
            target = max(soft, 65_536)
    if soft != resource.RLIM_INFINITY and soft < target:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    return soft, hard


def tree_rss(pid: int) -> int:
    """Resident memory of a process and its children, in bytes (0 if it is gone)."""
    try:
        process = psutil.Process(pid)
        total = int(process.memory_info().rss)
        for child in process.children(recursive=True):
            with contextlib.suppress(psutil.Error):
                total += int(child.memory_info().rss)
        return total
    except psutil.Error:
        return 0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class AppServer:
    def __init__(
        self,
        name: str,
        factory: str,
        ready_path: str,
        database_url: str,
        log_dir: Path,
        *,
        env: Mapping[str, str] | None = None,
    ) -> None:
        self.name = name
        self.factory = factory
        self.ready_path = ready_path
        self.database_url = database_url
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.log_path = log_dir / f"{name}.log"
        self.env = dict(env or {})
        """More environment for the app, set on purpose by the benchmark (e.g. the admin token)."""
        self._process: asyncio.subprocess.Process | None = None

    @property
    def pid(self) -> int | None:
        return None if self._process is None else self._process.pid

    def command(self) -> list[str]:
        return [
            sys.executable, "-m", "uvicorn", "--factory", self.factory,
            "--host", "127.0.0.1", "--port", str(self.port),
            "--workers", "1", "--loop", "uvloop", "--http", "httptools",
            "--no-access-log", "--log-level", "warning",
        ]  # fmt: skip

    async def start(self) -> None:
        # CHARGELINE_* from the caller's shell must not change what is measured.
        env = {key: value for key, value in os.environ.items() if not key.startswith("CHARGELINE_")}
        env[DATABASE_URL_ENV] = self.database_url
        env.update(self.env)
        with self.log_path.open("wb") as log:
            self._process = await asyncio.create_subprocess_exec(
                *self.command(), cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT
            )
        await self._wait_ready()

    async def _wait_ready(self) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + READY_TIMEOUT_S
        async with httpx.AsyncClient(base_url=self.base_url, timeout=2) as client:
            while loop.time() < deadline:
                self.check_alive()
                try:
                    if (await client.get(self.ready_path)).status_code == 200:
                        return
                except httpx.TransportError:
                    pass
                await asyncio.sleep(0.2)
        raise ServerFailed(f"{self.name} was not ready after {READY_TIMEOUT_S:.0f} s\n{self.log_tail()}")

    def check_alive(self) -> None:
        if self._process is not None and self._process.returncode is not None:
            raise ServerFailed(f"{self.name} exited with code {self._process.returncode}\n{self.log_tail()}")

    def log_tail(self, lines: int = 30) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:]) or "(empty log)"

    async def stop(self) -> None:
        process, self._process = self._process, None
        if process is None or process.returncode is not None:
            return
        process.send_signal(signal.SIGTERM)  # graceful: Chargeline's lifespan drains its group committer
        try:
            await asyncio.wait_for(process.wait(), STOP_TIMEOUT_S)
        except TimeoutError:
            process.kill()
            await process.wait()

    async def __aenter__(self) -> AppServer:
        try:
            await self.start()
        except BaseException:
            await self.stop()
            raise
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.stop()
