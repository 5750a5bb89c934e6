"""The real service as a subprocess (`chargeline serve`), on its own port."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Server:
    def __init__(self, data_dir: Path, **settings: str) -> None:
        """``settings``: more CHARGELINE_* variables, by field name (e.g. ``database_url=...``)."""
        self.port = free_port()
        self.env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("CHARGELINE_")},
            "CHARGELINE_DATA_DIR": str(data_dir),
            "CHARGELINE_PORT": str(self.port),
            "CHARGELINE_ADMIN_TOKEN": "e2e",
            **{f"CHARGELINE_{name.upper()}": value for name, value in settings.items()},
        }
        self.url = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen[str] | None = None
        # A file, not a pipe: a server logging every webhook would fill a pipe nobody reads and block.
        self.log_path = data_dir.with_name(data_dir.name + ".log")

    def start(self) -> None:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("a") as log:  # restarts append: output() holds every run
            self.process = subprocess.Popen(
                [str(BIN / "chargeline"), "serve"],
                env=self.env,
                stdout=log,
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
        """Everything the server printed so far (every start of it)."""
        return self.log_path.read_text(errors="replace")

    def chargeline(self, *args: str) -> str:
        return subprocess.run(
            [str(BIN / "chargeline"), *args],
            env=self.env,
            capture_output=True,
            text=True,
            check=True,
            timeout=60,
        ).stdout
