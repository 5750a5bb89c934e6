"""``chargeline demo`` (what ``make demo`` runs) as a newcomer starts it: an embedded PostgreSQL of its
own, the board's URL printed, sites and queues filling within seconds, and Ctrl-C stopping everything
with a summary."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import httpx

from tests.e2e.server import BIN, free_port
from tests.e2e.test_serve import postmaster_running


def test_the_demo_prints_the_board_fills_queues_within_seconds_and_stops_cleanly(tmp_path: Path) -> None:
    port, data_dir, log = free_port(), tmp_path / "demo", tmp_path / "demo.out"
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("CHARGELINE_")},
        "CHARGELINE_DATA_DIR": str(data_dir),
        "CHARGELINE_PORT": str(port),
    }
    with log.open("w") as out:
        demo = subprocess.Popen([str(BIN / "chargeline"), "demo"], env=env, stdout=out, stderr=out)
    try:
        board = f"http://127.0.0.1:{port}/board/#token=demo"
        deadline = time.monotonic() + 180  # a fresh embedded PostgreSQL cluster first
        while board not in log.read_text():
            assert demo.poll() is None, log.read_text()
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.2)

        joined_at = None
        started = time.monotonic()
        while joined_at is None and time.monotonic() - started < 30:
            locations = httpx.get(f"http://127.0.0.1:{port}/v1/locations", timeout=5).json()["locations"]
            for location in locations:
                queue = httpx.get(f"http://127.0.0.1:{port}/v1/locations/{location['id']}/queue", timeout=5)
                if queue.json()["line"]:
                    joined_at = time.monotonic() - started
            time.sleep(0.5)
        assert len(locations) == 6
        assert joined_at is not None, "no driver joined a queue within 30 s"
        assert httpx.get(board.split("#")[0], timeout=5).status_code == 200
    finally:
        demo.send_signal(signal.SIGINT)
        code = demo.wait(timeout=120)
    output = log.read_text()
    assert code == 0, output
    assert "Simulation (seed 1, 60x speed)" in output
    assert not postmaster_running(data_dir)
