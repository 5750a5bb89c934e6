"""`python -m bench webhooks --smoke` end to end, so the webhooks benchmark harness cannot rot unnoticed.

It checks that the harness runs, that its own delivery checks passed (every delivery delivered, received
by the right endpoint with a valid signature, in order per ticket and endpoint) and that figures were
recorded, never how fast anything is.
"""

from __future__ import annotations

from pathlib import Path

from tests.e2e.bench_smoke import run_smoke


def test_bench_webhooks_smoke_writes_results(tmp_path: Path) -> None:
    results = run_smoke("webhooks", tmp_path / "webhooks.json")
    assert results["benchmark"] == "webhooks"
    assert results["settings"] == {
        "smoke": True,
        "events": 200,
        "tickets": 67,
        "endpoints": 2,
        "deliveries": 400,
        "rounds": 1,
        "per_endpoint": 4,
        "max_in_flight": 100,
        "concurrency": 8,
        "locations": 8,
        "timeout_s": 10.0,
        "loop": "uvloop",
    }
    [batch] = results["batches"]
    assert batch["deliveries"] == 400
    assert batch["last_position"] - batch["first_position"] == 199  # the round's 200 events, and no others

    assert [(run["kind"], run["round"]) for run in results["runs"]] == [("baseline", 1), ("sender", 1)]
    for run in results["runs"]:
        assert run["deliveries"] == 400
        assert run["attempts"] >= 400  # retries would add to them
        assert run["seconds"] > 0
        assert run["deliveries_per_s"] > 0
        assert 0 < run["latency_ms"]["p50"] <= run["latency_ms"]["p99"] <= run["latency_ms"]["max"]
        assert run["cpu_us_per_delivery"] > 0

    # The harness's own checks, against what the receiver recorded (and the database, for the sender).
    assert [(check["kind"], check["round"]) for check in results["checks"]] == [
        ("baseline", 1),
        ("sender", 1),
    ]
    for check in results["checks"]:
        assert check["expected"] == 400
        assert check["received"] >= 400
        assert check["missing"] == 0
        assert check["unexpected"] == 0
        assert check["unverified"] == 0
        assert check["not_delivered"] == 0
    baseline_check, sender_check = results["checks"]
    assert baseline_check["out_of_order"] is None  # the baseline does not order
    assert sender_check["out_of_order"] == 0

    figures = results["figures"]
    assert figures["baseline_per_s"] > 0
    assert figures["sender_per_s"] > 0
    assert figures["ratio"] > 0
    assert [target["passed"] for target in results["targets"]] == [None]  # smoke runs judge nothing
