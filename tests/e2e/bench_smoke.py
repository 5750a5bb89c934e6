"""Running a benchmark's smoke mode as `make bench` would: the tests that keep the harness from rotting."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]


def bench_env() -> dict[str, str]:
    env = {
        k: v for k, v in os.environ.items() if k != "BENCH_DATABASE_URL" and not k.startswith("CHARGELINE_")
    }
    configured = os.environ.get("TEST_DATABASE_URL")
    if configured:  # the harness creates (and drops) a scratch database of its own on that server
        env["BENCH_DATABASE_URL"] = configured
    return env


def run_smoke(benchmark: str, output: Path, *options: str) -> dict[str, Any]:
    """``python -m bench <benchmark> --smoke``: it must exit 0 and write results that passed their own
    checks, on a described machine and PostgreSQL. Returns the results for the benchmark's own checks."""
    done = subprocess.run(
        [sys.executable, "-m", "bench", benchmark, "--smoke", *options, "--output", str(output)],
        cwd=ROOT,
        env=bench_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    results: dict[str, Any] = json.loads(output.read_text())
    assert results["ok"] is True
    assert results["error"] is None
    assert results["machine"]["cpu_count"] >= 1
    assert results["postgres"]["version"]
    return results
