"""`python -m bench subscribers --smoke` end to end, so the subscribers benchmark harness cannot rot.

It checks that the harness runs, every stream opened and received every broadcast of both kinds (the
run's own checks: a single change as exactly one message a stream), and figures were recorded for each,
never how fast anything is or how much memory it takes.
"""

from __future__ import annotations

from pathlib import Path

from tests.e2e.bench_smoke import run_smoke


def test_bench_subscribers_smoke_writes_results(tmp_path: Path) -> None:
    results = run_smoke("subscribers", tmp_path / "subscribers.json")
    assert results["benchmark"] == "subscribers"
    assert results["clock"]["round_trip_ms"] >= 0
    settings = results["settings"]
    assert (settings["smoke"], settings["subscribers_requested"], settings["subscribers"]) == (True, 200, 200)
    assert (settings["single_broadcasts"], settings["compound_broadcasts"], settings["spacing_s"]) == (
        4,
        2,
        0.5,
    )
    assert settings["client_loop"]

    limits = results["limits"]
    assert limits["limited_by"] is None
    soft, hard = limits["server_nofile"]
    assert soft == hard or soft >= 200  # raised to the hard limit (or as far as the machine allows)
    assert limits["client_nofile"][0] >= 200

    memory = results["memory"]
    assert memory["server_rss_open"] > 0
    assert memory["server_rss_before"] > 0
    assert memory["server_rss_peak"] >= memory["server_rss_open"]
    assert memory["server_fds_open"] >= 200  # one socket per stream, at least
    assert memory["client_rss_open"] > 0
    assert results["ramp"]["open_s"] > 0

    broadcasts = results["broadcasts"]
    flips = ["Available", "Faulted"]
    assert [(b["kind"], b["number"], b["connector_status"]) for b in broadcasts] == [
        *(("single", n, status) for n, status in enumerate(flips * 2, 1)),
        *(("compound", n, status) for n, status in enumerate(flips, 1)),
    ]
    for broadcast in broadcasts:
        assert (broadcast["reached"], broadcast["missing"]) == (200, 0)
        assert broadcast["webhook_ms"] > 0
        latency = broadcast["latency_ms"]
        assert latency["max"] >= latency["p99"] >= latency["p90"] >= latency["p50"] >= broadcast["first_ms"]
        if broadcast["kind"] == "single":  # one change: exactly one board a stream
            assert (broadcast["messages"], broadcast["messages_per_stream"]) == (200, [1, 1])
            assert broadcast["committed_ms"] is None
        else:  # the connector's change and the offer (revocation): one or two boards a stream
            fewest, most = broadcast["messages_per_stream"]
            assert 1 <= fewest <= most <= 2
            assert 200 <= broadcast["messages"] <= 400
            assert broadcast["committed_ms"] is not None
    for key, kind in (("figures", "single"), ("compound_figures", "compound")):
        figures = results[key]
        assert figures["kind"] == kind
        assert figures["last_ms"] == [b["latency_ms"]["max"] for b in broadcasts if b["kind"] == kind]
        assert figures["worst_last_ms"] == max(figures["last_ms"])
    targets = results["targets"]
    assert len(targets) == 2  # RSS, a single change to all; the compound broadcast is not a target
    assert targets[1]["value"] == results["figures"]["worst_last_ms"]
    assert [target["passed"] for target in targets] == [None, None]  # smoke runs judge nothing
