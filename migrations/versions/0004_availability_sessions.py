"""Read models for connector availability (chargestations, connectors) and charging sessions.

Their rows are rewritten on nearly every event, so pages keep 30 % free: updates stay on the page
(HOT) and the page prunes its own dead versions, even where autovacuum is slow or off.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-28
"""

from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        """
        CREATE TABLE chargestations (
            id          text PRIMARY KEY,
            location_id text,
            protocol    text,
            online      boolean     NOT NULL,
            active      boolean     NOT NULL,
            reported_at timestamptz NOT NULL,
            position    bigint      NOT NULL
        ) WITH (fillfactor = 70)
        """
    )
    op.execute("CREATE INDEX chargestations_location_idx ON chargestations (location_id)")
    op.execute(
        """
        CREATE TABLE connectors (
            id                text        NOT NULL,
            chargestation_id  text        NOT NULL,
            location_id       text,
            status            text        NOT NULL,
            raw_status        text,
            type              text,
            format            text,
            power_type        text,
            power_kw          double precision,
            active            boolean     NOT NULL,
            offerable         boolean     NOT NULL,
            status_changed_at timestamptz,
            reported_at       timestamptz NOT NULL,
            position          bigint      NOT NULL,
            -- Keyed by station too: a connector appears where its station's payload lists it, even if
            -- (against eDRV's unique ids) two stations list the same one.
            PRIMARY KEY (chargestation_id, id)
        ) WITH (fillfactor = 70)
        """
    )
    op.execute("CREATE INDEX connectors_location_idx ON connectors (location_id, offerable)")
    op.execute(
        """
        CREATE TABLE sessions (
            id               text PRIMARY KEY,
            user_id          text,
            chargestation_id text,
            connector_id     text,
            status           text        NOT NULL,
            started_at       timestamptz,
            ended_at         timestamptz,
            energy_kwh       double precision,
            power_kw         double precision,
            soc_percent      double precision,
            cost_amount      double precision,
            cost_currency    text,
            updated_at       timestamptz NOT NULL,
            position         bigint      NOT NULL
        ) WITH (fillfactor = 70)
        """
    )


def downgrade() -> None:
    op.execute("DROP TABLE sessions, connectors, chargestations")
