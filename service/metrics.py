"""Prometheus metrics, served at ``/metrics`` by Litestar's ``PrometheusController``."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

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
WEBHOOK_PENDING = Gauge(
    "chargeline_webhook_deliveries_pending",
    "Outbound webhook deliveries waiting to go out (the outbox depth)",
)
WEBHOOK_ATTEMPTS = Counter(
    "chargeline_webhook_attempts",
    "Outbound webhook delivery attempts by outcome (delivered, retryat: will retry, gaveup: final failure)",
    ["outcome"],
)
WEBHOOK_ATTEMPT_SECONDS = Histogram(
    "chargeline_webhook_attempt_seconds",
    "Time from sending an outbound webhook to its endpoint's answer (or the timeout)",
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
)
WEBHOOK_DISABLED = Counter(
    "chargeline_webhook_endpoints_disabled", "Subscriptions disabled after failing for the whole retry window"
)
