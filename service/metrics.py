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

WEBHOOKS_RECEIVED = Counter(
    "chargeline_webhooks_received",
    "eDRV deliveries by outcome: stored, duplicate (already stored), conflict (same id, other body: kept "
    "for operators), bad_signature (401), not_json (400), quarantined (400), unavailable (503)",
    ["outcome"],
)
WEBHOOK_SECONDS = Histogram(
    "chargeline_webhook_seconds",
    "Time from an eDRV delivery's body being read to its answer (the commit included)",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0),
)
APPEND_BATCH_SIZE = Histogram(
    "chargeline_append_batch_size",
    "Appends committed together in one transaction by the group commit (1 at low load)",
    buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256, 512),
)
QUEUE_EVENTS = Counter(
    "chargeline_queue_events",
    "Queue events this process appended, by type: ticket.joined, ticket.offered, ticket.accepted and the "
    "outcomes (ticket.fulfilled, ticket.no_show, ticket.offer_revoked, ticket.cancelled, ticket.removed)",
    ["type"],
)
