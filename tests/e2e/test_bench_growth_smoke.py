"""`python -m bench growth --smoke` end to end, so the growth benchmark harness cannot rot unnoticed.

It checks that the harness runs (the fill, both apps, every ingest and read run, their checks) and that
figures were recorded, never how fast anything is. Both parts need wrk: without it the test is skipped.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.e2e.bench_smoke import run_smoke

pytestmark = pytest.mark.skipif(shutil.which("wrk") is None, reason="wrk not installed (make wrk)")


def test_bench_growth_smoke_writes_results(tmp_path: Path) -> None:
    results = run_smoke("growth", tmp_path / "growth.json")
    assert results["benchmark"] == "growth"
    settings = results["settings"]
    assert (settings["smoke"], settings["events"], settings["tickets"], settings["few_tickets"]) == (
        True,
        20_000,
        20,
        10,
    )
    fill = results["fill"]
    assert fill["head"] == 20_000
    assert sum(fill["types"].values()) == 20_000
    assert len(fill["types"]) >= 5  # sessions, stations and locations, as the intake writes them
    assert fill["events_bytes"] > 0
    assert fill["inbox_bytes"] > 0

    ingest_runs = [(run["app"], run["kind"]) for run in results["runs"]]
    assert ingest_runs == [("empty-log", "max"), ("big-log", "max")]
    for run in results["runs"]:
        assert run["load"]["requests"] > 0
        assert run["stored"] > 0
    ingest = results["ingest"]
    assert ingest["empty"]["rps"] > 0
    assert ingest["big"]["rps"] > 0
    assert ingest["ratios"]["throughput"] > 0

    reads = {(run["endpoint"], run["tickets"]) for run in results["read_runs"]}
    assert reads == {("ticket", 10), ("ticket", 20), ("queue", 10), ("queue", 20)}
    for run in results["read_runs"]:
        assert run["load"]["requests"] > 0
        assert run["load"]["non_2xx"] == 0
    assert len(results["reads"]) == 4
    ratios = {(ratio["endpoint"], ratio["tickets"]): ratio for ratio in results["read_ratios"]}
    assert set(ratios) == {("ticket", 20), ("queue", 20)}
    for ratio in ratios.values():
        assert ratio["p50"] > 0
        assert ratio["throughput"] > 0
    assert [target["passed"] for target in results["targets"]] == [None]  # smoke runs judge nothing
