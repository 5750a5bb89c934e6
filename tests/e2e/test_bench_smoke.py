"""`python -m bench ingest --smoke` end to end, so the benchmark harness cannot rot unnoticed.

It checks that the harness runs and records sensible figures, never how fast anything is.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def bench_env() -> dict[str, str]:
    env = {
        k: v for k, v in os.environ.items() if k != "BENCH_DATABASE_URL" and not k.startswith("CHARGELINE_")
    }
    configured = os.environ.get("TEST_DATABASE_URL")
    if configured:  # the harness creates (and drops) a scratch database of its own on that server
        env["BENCH_DATABASE_URL"] = configured
    return env


@pytest.mark.parametrize(
    "generator",
    [
        pytest.param(
            "wrk", marks=pytest.mark.skipif(shutil.which("wrk") is None, reason="wrk not installed")
        ),
        "python",  # the fallback a machine without wrk uses
    ],
)
def test_bench_ingest_smoke_writes_results(tmp_path: Path, generator: str) -> None:
    output = tmp_path / "x.json"
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "bench",
            "ingest",
            "--smoke",
            "--generator",
            generator,
            "--output",
            str(output),
        ],
        cwd=ROOT,
        env=bench_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr

    results = json.loads(output.read_text())
    assert results["ok"] is True
    assert results["error"] is None
    for key in ("machine", "settings", "postgres", "runs", "ratios", "half_rate", "targets"):
        assert results[key], key
    assert results["machine"]["cpu_count"] >= 1
    assert results["postgres"]["version"]
    for app in ("baseline", "chargeline"):
        assert results[app]["rps"] > 0
        assert results[app]["latency_ms"]["p99"] >= results[app]["latency_ms"]["p50"] > 0
    assert results["ratios"]["throughput"] > 0
    assert results["half_rate"]["achieved_rps"] > 0
    assert results["half_rate"]["baseline_achieved_rps"] > 0
    kinds = {(run["app"], run["kind"]) for run in results["runs"]}
    assert kinds == {(app, kind) for app in ("baseline", "chargeline") for kind in ("max", "half_rate")}
    for run in results["runs"]:
        assert run["load"]["non_2xx"] == 0
        assert run["stored"] > 0
    assert [target["passed"] for target in results["targets"]] == [None]  # smoke runs judge nothing
