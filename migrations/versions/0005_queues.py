"""The driver queue: the tickets read model, queue snapshots and the dispatcher's view of stations.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-28
"""

from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # One row per ticket ever (a projection of the queue-* streams). The whole ticket is kept as JSON;
    # the columns beside it are what queries filter and sort on.
    op.execute(
        """
        CREATE TABLE tickets (
            id              text PRIMARY KEY,
            location_id     text        NOT NULL,
            driver_id       text        NOT NULL,
            status          text        NOT NULL,
            priority        boolean     NOT NULL,
            rank            bigint      NOT NULL,
            deadline        timestamptz,
            idempotency_key text,
            updated_at      timestamptz NOT NULL,
            ticket          jsonb       NOT NULL,
            position        bigint      NOT NULL
        ) WITH (fillfactor = 70)
        """
    )
    live = "status IN ('waiting', 'offered', 'held')"
    op.execute(f"CREATE INDEX tickets_line_idx ON tickets (location_id, priority DESC, rank) WHERE {live}")
    op.execute(f"CREATE INDEX tickets_due_idx ON tickets (deadline) WHERE {live} AND deadline IS NOT NULL")
    op.execute("CREATE INDEX tickets_driver_idx ON tickets (driver_id, idempotency_key)")
    op.execute("CREATE INDEX tickets_ended_idx ON tickets (location_id, updated_at)")
    # A queue's decision state at some version, so a command folds only the events after it.
    # Written after appends; always a pure function of the stream up to ``version``, so a stale or
    # missing snapshot only costs a longer fold. ``schema`` changes when the state's shape does.
    op.execute(
        """
        CREATE TABLE queue_snapshots (
            location_id text PRIMARY KEY,
            version     integer NOT NULL,
            schema      integer NOT NULL,
            state       bytea   NOT NULL
        )
        """
    )
    # The dispatcher's own fold of the stations (not a read model: it moves with the dispatcher's
    # checkpoint, so a decision never looks at a station the dispatcher has not yet reacted to).
    op.execute(
        """
        CREATE TABLE dispatch_stations (
            id          text PRIMARY KEY,
            location_id text,
            station     bytea  NOT NULL,
            position    bigint NOT NULL
        ) WITH (fillfactor = 70)
        """
    )
    op.execute("CREATE INDEX dispatch_stations_location_idx ON dispatch_stations (location_id)")
    # Site history for waiting-time estimates: recent sessions per station.
    op.execute("CREATE INDEX sessions_station_idx ON sessions (chargestation_id, started_at)")


def downgrade() -> None:
    op.execute("DROP INDEX sessions_station_idx")
    op.execute("DROP TABLE dispatch_stations, queue_snapshots, tickets")
