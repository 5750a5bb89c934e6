"""`chargeline serve` as a newcomer runs it: embedded PostgreSQL, real HTTP, data kept across restarts."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import FIXTURES

BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Server:
    def __init__(self, data_dir: Path) -> None:
        self.port = free_port()
        self.env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("CHARGELINE_")},
            "CHARGELINE_DATA_DIR": str(data_dir),
            "CHARGELINE_PORT": str(self.port),
            "CHARGELINE_ADMIN_TOKEN": "e2e",
        }
        self.url = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen[str] | None = None

    def start(self) -> None:
        self.process = subprocess.Popen(
            [str(BIN / "chargeline"), "serve"],
            env=self.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            assert self.process.poll() is None, self.output()
            try:
                if httpx.get(f"{self.url}/health/ready", timeout=1).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.2)
        raise AssertionError("server did not become ready:\n" + self.output())

    def stop(self) -> str:
        assert self.process is not None
        self.process.send_signal(signal.SIGTERM)
        self.process.wait(timeout=30)
        return self.output()

    def output(self) -> str:
        assert self.process is not None
        if self.process.poll() is None:
            return "(still running)"
        assert self.process.stdout is not None
        return self.process.stdout.read()

    def chargeline(self, *args: str) -> str:
        return subprocess.run(
            [str(BIN / "chargeline"), *args],
            env=self.env,
            capture_output=True,
            text=True,
            check=True,
            timeout=60,
        ).stdout


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    server = Server(tmp_path / "data")
    yield server
    if server.process is not None and server.process.poll() is None:
        server.process.kill()


def postmaster_running(data_dir: Path) -> bool:
    pid_file = data_dir / "postgres" / "postmaster.pid"
    if not pid_file.exists():
        return False
    pid = int(pid_file.read_text().split()[0])
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_serve_accepts_the_scenario_and_keeps_it_across_a_restart(server: Server, tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    server.start()
    assert postmaster_running(data_dir)
    lines = (FIXTURES / "scenario.one-location-day.jsonl").read_bytes().splitlines()
    with httpx.Client(base_url=server.url) as http:
        for line in lines:
            response = http.post("/webhooks/edrv", content=line, headers={"content-type": "application/json"})
            assert (response.status_code, response.content) == (200, b"")
    tail = server.chargeline("events", "tail", "-n", "20").splitlines()
    assert len(tail) == 14
    assert tail[-1].split()[-1] == json.loads(lines[-1])["type"]
    rebuilt = server.chargeline("projections", "rebuild")  # beside the running service
    assert rebuilt.count("swapped in at") == 4  # every projection, tickets too
    status = server.chargeline("projections", "status")
    assert all(name in status for name in ("locations", "connector_availability", "sessions", "tickets"))
    with httpx.Client(base_url=server.url) as http:
        connectors = http.get("/v1/connectors", params={"offerable": "true"}).json()["connectors"]
        assert [c["id"][-2:] for c in connectors] == ["d1"]

    output = server.stop()
    assert server.process is not None
    assert server.process.returncode == 0, output
    assert "http://127.0.0.1" in output  # the URLs are printed for the newcomer
    assert not postmaster_running(data_dir), "the embedded PostgreSQL must stop with the service"

    server.start()  # a second start reuses the data
    with httpx.Client(base_url=server.url) as http:
        page = http.get(
            "/v1/admin/events", params={"limit": 100}, headers={"Authorization": "Bearer e2e"}
        ).json()
        assert len(page["events"]) == 14
        assert http.post("/webhooks/edrv", content=lines[0]).status_code == 200  # still deduplicated
        page = http.get(
            "/v1/admin/events", params={"limit": 100}, headers={"Authorization": "Bearer e2e"}
        ).json()
        assert len(page["events"]) == 14
    server.stop()


def test_events_tail_follow_prints_new_events_as_they_commit(server: Server) -> None:
    server.start()
    follower = subprocess.Popen(
        [str(BIN / "chargeline"), "events", "tail", "--follow", "--json", "-n", "0"],
        env=server.env,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        time.sleep(2)  # let it connect and start listening
        body = (FIXTURES / "session.started.json").read_bytes()
        assert httpx.post(f"{server.url}/webhooks/edrv", content=body).status_code == 200
        assert follower.stdout is not None
        line = follower.stdout.readline()
        assert '"type":"session.started"' in line
        assert '"stream_id":"session-6601bb0000000000000000e1"' in line
    finally:
        follower.send_signal(signal.SIGINT)
        follower.wait(timeout=10)
        server.stop()
