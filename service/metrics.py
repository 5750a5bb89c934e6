"""Prometheus metrics, served at ``/metrics`` by Litestar's ``PrometheusController``."""

from __future__ import annotations

from prometheus_client import Counter, Gauge

PROJECTION_POSITION = Gauge(
    "chargeline_projection_position", "Last log position a projection has applied", ["projection"]
)
PROJECTION_LAG = Gauge(
    "chargeline_projection_lag_events", "Events in the log after a projection's position", ["projection"]
)
PROJECTION_SKIPPED = Counter(
    "chargeline_projection_skipped_events",
    "Events a projection could not apply (recorded in projection_errors)",
    ["projection"],
)
SSE_SUBSCRIBERS = Gauge("chargeline_sse_subscribers", "Open server-sent event streams in this process")
