"""`python -m bench rebuild --smoke` end to end, so the rebuild benchmark harness cannot rot unnoticed.

It checks that the harness runs, the rebuilt projection passed its checks and figures were recorded,
never how fast anything is.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.e2e.test_bench_smoke import ROOT, bench_env


def test_bench_rebuild_smoke_writes_results(tmp_path: Path) -> None:
    output = tmp_path / "rebuild.json"
    done = subprocess.run(
        [sys.executable, "-m", "bench", "rebuild", "--smoke", "--output", str(output)],
        cwd=ROOT,
        env=bench_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr

    results = json.loads(output.read_text())
    assert results["benchmark"] == "rebuild"
    assert results["ok"] is True
    assert results["error"] is None
    assert results["machine"]["cpu_count"] >= 1
    assert results["postgres"]["version"]
    assert results["settings"] == {
        "smoke": True,
        "events": 5000,
        "sessions": 50,
        "rounds": 1,
        "page": 10000,
    }
    assert results["setup"]["head"] == 5000
    assert [(run["kind"], run["round"]) for run in results["runs"]] == [("raw", 1), ("rebuild", 1)]
    for run in results["runs"]:
        assert run["events"] == 5000
        assert run["seconds"] > 0
        assert run["events_per_s"] > 0
    figures = results["figures"]
    assert figures["raw_events_per_s"] > 0
    assert figures["rebuild_events_per_s"] > 0
    assert figures["ratio"] > 0
    assert [target["passed"] for target in results["targets"]] == [None]  # smoke runs judge nothing
