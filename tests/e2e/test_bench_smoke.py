"""`python -m bench ingest --smoke` end to end, so the benchmark harness cannot rot unnoticed.

It checks that the harness runs and records sensible figures, never how fast anything is.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.e2e.bench_smoke import run_smoke


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
    results = run_smoke("ingest", tmp_path / "x.json", "--generator", generator)
    for key in ("machine", "settings", "postgres", "runs", "ratios", "half_rate", "targets"):
        assert results[key], key
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
