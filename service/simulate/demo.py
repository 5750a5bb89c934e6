"""``make demo``: Chargeline on its embedded PostgreSQL with the simulator driving it, in one command.

The service runs as its own process (``chargeline serve``), exactly as ``make run`` starts it, with
its log in a file so the terminal shows the simulation; the simulator reaches it over HTTP only. An
admin token and an eDRV signing secret are made up for the demo unless they are set already.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
from rich.console import Console

from service.api.drivers import token_secret
from service.settings import load_settings
from service.simulate.runner import SimulationOptions, simulate
from service.simulate.summary import Summary

DEMO_DATA_DIR = ".chargeline/demo"
"""Its own database, next to (not inside) the one ``make run`` uses."""
READY_TIMEOUT_S = 180  # the first start creates the embedded PostgreSQL cluster


def run_demo(console: Console, *, seed: int, locations: int, speed: float, drivers: float) -> Summary | None:
    env = {
        **os.environ,
        "CHARGELINE_DATA_DIR": os.environ.get("CHARGELINE_DATA_DIR") or DEMO_DATA_DIR,
        "CHARGELINE_ADMIN_TOKEN": os.environ.get("CHARGELINE_ADMIN_TOKEN") or "demo",
        "CHARGELINE_WEBHOOK_SECRET": os.environ.get("CHARGELINE_WEBHOOK_SECRET") or secrets.token_urlsafe(24),
        "CHARGELINE_LOG_LEVEL": os.environ.get("CHARGELINE_LOG_LEVEL") or "WARNING",
    }
    settings = load_settings(env)
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    log_path = settings.data_dir / "server.log"
    base = f"http://{settings.host}:{settings.port}"
    console.print(f"starting Chargeline on {base} (database and log in {settings.data_dir}) ...")
    with log_path.open("w") as log:
        server = subprocess.Popen(
            [str(Path(sys.executable).parent / "chargeline"), "serve"],
            env=env,
            stdout=log,
            stderr=log,
            start_new_session=True,  # Ctrl-C reaches the simulator only; the service is stopped after it
        )
        try:
            if not _wait_until_ready(server, base):
                console.print(f"[red]the service did not start[/red]; its log ({log_path}):")
                console.print(log_path.read_text()[-3000:], markup=False)
                return None
            admin = settings.admin_token
            console.print(
                f"\n[bold]Chargeline demo[/bold]: {locations} simulated sites at {speed:g}x speed\n"
                f"  live board   {base}/board/#token={admin}\n"
                f"  API docs     {base}/schema\n"
                f"  server log   {log_path}\n"
                "Ctrl-C stops the simulation and the service.\n"
            )
            options = SimulationOptions(
                url=base,
                jwt_secret=token_secret(settings),
                webhook_secret=settings.webhook_secret,
                admin_token=admin,
                seed=seed,
                run=time.strftime("%Y%m%dT%H%M%S"),
                locations=locations,
                speed=speed,
                drivers=drivers,
                start_hour=17.0,  # the after-work peak: queues form within seconds
            )
            return asyncio.run(_simulate_until_stopped(options, console))
        finally:
            server.send_signal(signal.SIGTERM)  # the service stops its embedded PostgreSQL on the way out
            try:
                server.wait(timeout=30)
            except subprocess.TimeoutExpired:
                server.kill()


def _wait_until_ready(server: subprocess.Popen[bytes], base: str) -> bool:
    deadline = time.monotonic() + READY_TIMEOUT_S
    while time.monotonic() < deadline and server.poll() is None:
        try:
            if httpx.get(f"{base}/health/ready", timeout=2).status_code == 200:
                return True
        except httpx.TransportError:
            pass
        time.sleep(0.3)
    return False


async def _simulate_until_stopped(options: SimulationOptions, console: Console) -> Summary:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    return await simulate(options, console, stop)
