"""Least privilege: the service's role may append to the log but never change it.

``chargeline_service`` gets SELECT and INSERT on the log tables and nothing more, so UPDATE, DELETE,
TRUNCATE, ALTER and DROP on ``events`` are refused by privilege before the append-only trigger is even
reached (and the trigger cannot be disabled: that takes ownership). It owns the read models, because a
rebuild swaps fresh tables in for them without downtime, and may create the schema it builds them in.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-29
"""

from alembic import op

from service.db.roles import SERVICE_ROLE, create_role_sql

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

LOG_TABLES = ("events", "inbox", "inbox_conflicts", "quarantine")
READ_MODELS = ("locations", "chargestations", "connectors", "sessions", "tickets")
STATE_TABLES = (
    "projection_checkpoints",
    "projection_errors",
    "queue_snapshots",
    "dispatch_stations",
    "webhook_subscriptions",
    "webhook_messages",
    "webhook_deliveries",
    "webhook_attempts",
)


def upgrade() -> None:
    op.execute(create_role_sql(SERVICE_ROLE, "NOLOGIN"))
    # Handing a table to a role takes membership in it (PostgreSQL 15); superusers need none, but then
    # this grant is harmless. Membership goes this way only: the service never acts as the owner.
    op.execute(f"GRANT {SERVICE_ROLE} TO CURRENT_USER")
    op.execute(f"GRANT USAGE, CREATE ON SCHEMA public TO {SERVICE_ROLE}")
    op.execute(
        f"DO $$ BEGIN EXECUTE format('GRANT CONNECT, CREATE ON DATABASE %I TO {SERVICE_ROLE}', "
        "current_database()); END $$"
    )
    op.execute(f"GRANT SELECT, INSERT ON {', '.join(LOG_TABLES)} TO {SERVICE_ROLE}")
    op.execute(f"GRANT SELECT ON alembic_version TO {SERVICE_ROLE}")  # readiness compares revisions
    op.execute(f"GRANT SELECT, INSERT, UPDATE, DELETE ON {', '.join(STATE_TABLES)} TO {SERVICE_ROLE}")
    op.execute(f"GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO {SERVICE_ROLE}")
    for table in READ_MODELS:
        op.execute(f"ALTER TABLE {table} OWNER TO {SERVICE_ROLE}")
    # An interrupted rebuild left its schema behind; the next rebuild, now the service's, drops it.
    op.execute(
        f"""
        DO $$
        DECLARE leftover name;
        BEGIN
            FOR leftover IN SELECT nspname FROM pg_namespace
                            WHERE nspname LIKE 'rebuild\\_%' OR nspname LIKE 'replaced\\_%' LOOP
                EXECUTE format('ALTER SCHEMA %I OWNER TO {SERVICE_ROLE}', leftover);
            END LOOP;
        END $$
        """
    )


def downgrade() -> None:
    for table in READ_MODELS:
        op.execute(f"ALTER TABLE {table} OWNER TO CURRENT_USER")
    op.execute(f"REVOKE ALL ON ALL SEQUENCES IN SCHEMA public FROM {SERVICE_ROLE}")
    op.execute(f"REVOKE ALL ON ALL TABLES IN SCHEMA public FROM {SERVICE_ROLE}")
    op.execute(f"REVOKE ALL ON SCHEMA public FROM {SERVICE_ROLE}")
    op.execute(
        f"DO $$ BEGIN EXECUTE format('REVOKE ALL ON DATABASE %I FROM {SERVICE_ROLE}', "
        "current_database()); END $$"
    )
