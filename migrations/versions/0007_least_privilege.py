"""Least privilege: the service's role may append to the log but never change it.

``chargeline_service`` reads the log and appends only through ``append_events()``, which runs with its
owner's rights: no INSERT on ``events`` or ``inbox`` of its own, so it cannot choose a position
(``OVERRIDING SYSTEM VALUE``), skip the append lock or claim a delivery id in advance. UPDATE, DELETE,
TRUNCATE, ALTER and DROP on the log are refused by privilege before the append-only trigger is even
reached (and the trigger cannot be disabled: that takes ownership). It owns the read models, because a
rebuild swaps fresh tables in for them without downtime, and may create the schema it builds them in.

The migration needs to create the role (CREATEROLE) or find it already granted to the migrating role;
otherwise it stops and says what a superuser must run.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-29
"""

from alembic import op

from service.db.roles import SERVICE_ROLE

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

APPENDED_THROUGH_FUNCTION = ("events", "inbox")
KEPT_RAW = ("inbox_conflicts", "quarantine")
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
    op.execute(
        f"""
        DO $$
        BEGIN
            IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '{SERVICE_ROLE}') THEN
                CREATE ROLE {SERVICE_ROLE} NOLOGIN;
            END IF;
            -- Handing a table to a role takes membership in it. Membership goes this way only: the
            -- service never acts as the owner.
            IF NOT pg_has_role(current_user, '{SERVICE_ROLE}', 'MEMBER') THEN
                EXECUTE format('GRANT {SERVICE_ROLE} TO %I', current_user);
            END IF;
        EXCEPTION WHEN insufficient_privilege THEN
            RAISE EXCEPTION 'role {SERVICE_ROLE} is missing or not granted to %', current_user
                USING HINT = format('as a superuser: CREATE ROLE {SERVICE_ROLE} NOLOGIN; '
                                    'GRANT {SERVICE_ROLE} TO %I; (see docs/operations.md)', current_user);
        END $$
        """
    )
    op.execute(f"GRANT USAGE, CREATE ON SCHEMA public TO {SERVICE_ROLE}")
    op.execute(
        f"DO $$ BEGIN EXECUTE format('GRANT CONNECT, CREATE ON DATABASE %I TO {SERVICE_ROLE}', "
        "current_database()); END $$"
    )
    op.execute(f"GRANT SELECT ON {', '.join(APPENDED_THROUGH_FUNCTION)} TO {SERVICE_ROLE}")
    op.execute(f"GRANT SELECT, INSERT ON {', '.join(KEPT_RAW)} TO {SERVICE_ROLE}")
    # Appends run with the owner's rights; a search path the service cannot put objects ahead of (pg_catalog
    # first, temporary objects last) keeps the function's names meaning what they mean.
    op.execute("ALTER FUNCTION append_events SECURITY DEFINER SET search_path = pg_catalog, public, pg_temp")
    op.execute("REVOKE EXECUTE ON FUNCTION append_events FROM PUBLIC")
    op.execute(f"GRANT EXECUTE ON FUNCTION append_events TO {SERVICE_ROLE}")
    op.execute(f"GRANT SELECT ON alembic_version TO {SERVICE_ROLE}")  # readiness compares revisions
    op.execute(f"GRANT SELECT, INSERT, UPDATE, DELETE ON {', '.join(STATE_TABLES)} TO {SERVICE_ROLE}")
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
    op.execute("ALTER FUNCTION append_events SECURITY INVOKER RESET search_path")
    op.execute("GRANT EXECUTE ON FUNCTION append_events TO PUBLIC")
    op.execute(f"REVOKE ALL ON ALL TABLES IN SCHEMA public FROM {SERVICE_ROLE}")
    op.execute(f"REVOKE ALL ON SCHEMA public FROM {SERVICE_ROLE}")
    op.execute(
        f"DO $$ BEGIN EXECUTE format('REVOKE ALL ON DATABASE %I FROM {SERVICE_ROLE}', "
        "current_database()); END $$"
    )
