"""`python -m bench rebuild --smoke` end to end, so the rebuild benchmark harness cannot rot unnoticed.

It checks that the harness runs, the rebuilt projection passed its checks and figures were recorded,
never how fast anything is.
"""

from __future__ import annotations

from pathlib import Path

from tests.e2e.bench_smoke import run_smoke


def test_bench_rebuild_smoke_writes_results(tmp_path: Path) -> None:
    results = run_smoke("rebuild", tmp_path / "rebuild.json")
    assert results["benchmark"] == "rebuild"
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
