"""`chargeline serve` as a newcomer runs it: embedded PostgreSQL, real HTTP, data kept across restarts."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import httpx

from tests.conftest import FIXTURES
from tests.e2e.server import BIN, Server


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
    # It migrated as the embedded server's superuser and served as its least-privileged login.
    assert "may UPDATE, DELETE or TRUNCATE the event log" not in output
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
