"""Outbound webhooks: app backends' subscriptions, the outbox of ticket messages, deliveries, attempts.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-28
"""

from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Operators' configuration, not history: plain rows. ``secret`` signs every delivery; during a
    # rotation ``previous_secret`` signs alongside it until it expires. ``after_position`` is the log's
    # head when the subscription was made: it receives events after it, never older ones (replay can).
    op.execute(
        """
        CREATE TABLE webhook_subscriptions (
            id                          text PRIMARY KEY,
            url                         text        NOT NULL,
            event_types                 text[]      NOT NULL,
            description                 text        NOT NULL,
            enabled                     boolean     NOT NULL,
            disabled_reason             text,
            secret                      text        NOT NULL,
            previous_secret             text,
            previous_secret_expires_at  timestamptz,
            after_position              bigint      NOT NULL,
            failing_since               timestamptz,
            last_success_at             timestamptz,
            last_failure_at             timestamptz,
            last_error                  text,
            created_at                  timestamptz NOT NULL,
            updated_at                  timestamptz NOT NULL
        )
        """
    )
    # One message per ticket event, whatever the subscriptions: the ticket as it was after the event.
    # It is what every delivery of that event sends, and the outbox's fold state for the next event.
    op.execute(
        """
        CREATE TABLE webhook_messages (
            position    bigint PRIMARY KEY,
            ticket_id   text        NOT NULL,
            type        text        NOT NULL,
            created_at  timestamptz NOT NULL,
            ticket      bytea       NOT NULL
        )
        """
    )
    op.execute("CREATE INDEX webhook_messages_ticket_idx ON webhook_messages (ticket_id, position)")
    op.execute("CREATE INDEX webhook_messages_created_idx ON webhook_messages (created_at)")
    # A message on its way to one subscription. A ticket's pending deliveries go out in position order.
    # ``note`` says why a delivery ended without being delivered when no attempt says it (cancelled).
    op.execute(
        """
        CREATE TABLE webhook_deliveries (
            id               bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            subscription_id  text        NOT NULL REFERENCES webhook_subscriptions ON DELETE CASCADE,
            position         bigint      NOT NULL REFERENCES webhook_messages,
            ticket_id        text        NOT NULL,
            status           text        NOT NULL
                             CHECK (status IN ('pending', 'delivered', 'failed', 'cancelled')),
            attempts         integer     NOT NULL DEFAULT 0,
            next_attempt_at  timestamptz,
            created_at       timestamptz NOT NULL,
            finished_at      timestamptz,
            note             text,
            replay           boolean     NOT NULL DEFAULT false
        )
        """
    )
    # The outbox enqueues each event once per subscription (replays add more, on purpose).
    op.execute(
        "CREATE UNIQUE INDEX webhook_deliveries_once_idx ON webhook_deliveries (subscription_id, position)"
        " WHERE NOT replay"
    )
    pending = "WHERE status = 'pending'"
    op.execute(
        "CREATE INDEX webhook_deliveries_due_idx"
        f" ON webhook_deliveries (subscription_id, next_attempt_at, position) {pending}"
    )
    op.execute(f"CREATE INDEX webhook_deliveries_next_idx ON webhook_deliveries (next_attempt_at) {pending}")
    op.execute(
        "CREATE INDEX webhook_deliveries_order_idx"
        f" ON webhook_deliveries (subscription_id, ticket_id, position) {pending}"
    )
    op.execute("CREATE INDEX webhook_deliveries_list_idx ON webhook_deliveries (subscription_id, id)")
    op.execute(
        """
        CREATE TABLE webhook_attempts (
            delivery_id   bigint      NOT NULL REFERENCES webhook_deliveries ON DELETE CASCADE,
            attempt       integer     NOT NULL,
            attempted_at  timestamptz NOT NULL,
            status_code   integer,
            latency_ms    double precision NOT NULL,
            error         text,
            PRIMARY KEY (delivery_id, attempt)
        )
        """
    )


def downgrade() -> None:
    op.execute("DROP TABLE webhook_attempts, webhook_deliveries, webhook_messages, webhook_subscriptions")
