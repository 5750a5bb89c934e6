"""The append-only event log, the webhook inbox, its conflict records and the quarantine.

Revision ID: 0001
Revises:
Create Date: 2026-11-28
"""

from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        """
        CREATE TABLE events (
            position    bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            stream_id   text        NOT NULL,
            version     integer     NOT NULL CHECK (version > 0),
            type        text        NOT NULL,
            data        jsonb       NOT NULL CHECK (jsonb_typeof(data) = 'object'),
            metadata    jsonb       NOT NULL CHECK (jsonb_typeof(metadata) = 'object'),
            occurred_at timestamptz NOT NULL,
            recorded_at timestamptz NOT NULL DEFAULT now(),
            CONSTRAINT events_stream_id_version_key UNIQUE (stream_id, version)
        )
        """
    )
    op.execute("CREATE INDEX events_type_position_idx ON events (type, position)")
    op.execute(
        "COMMENT ON TABLE events IS 'Append-only log. position = commit order: appends hold "
        "a transaction-scoped advisory lock, so a reader past position p never sees a lower one appear.'"
    )
    # Append-only is PostgreSQL's job, not a convention: statement-level, so even a no-op UPDATE fails.
    op.execute(
        """
        CREATE FUNCTION events_reject_change() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            RAISE EXCEPTION 'the event log is append-only: % on events is not allowed', TG_OP
                USING ERRCODE = 'insufficient_privilege';
        END
        $$
        """
    )
    op.execute(
        """
        CREATE TRIGGER events_append_only
            BEFORE UPDATE OR DELETE OR TRUNCATE ON events
            FOR EACH STATEMENT EXECUTE FUNCTION events_reject_change()
        """
    )
    op.execute(
        """
        CREATE TABLE inbox (
            source         text        NOT NULL,
            external_id    text        NOT NULL,
            payload_sha256 bytea       NOT NULL,
            position       bigint      NOT NULL,
            received_at    timestamptz NOT NULL DEFAULT now(),
            PRIMARY KEY (source, external_id)
        )
        """
    )
    op.execute(
        """
        CREATE TABLE inbox_conflicts (
            id                bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            source            text        NOT NULL,
            external_id       text        NOT NULL,
            payload_sha256    bytea       NOT NULL,
            body              bytea       NOT NULL,
            original_position bigint      NOT NULL,
            received_at       timestamptz NOT NULL DEFAULT now(),
            UNIQUE (source, external_id, payload_sha256)
        )
        """
    )
    op.execute(
        """
        CREATE TABLE quarantine (
            id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            source       text        NOT NULL,
            reason       text        NOT NULL,
            content_type text,
            body         bytea       NOT NULL,
            received_at  timestamptz NOT NULL DEFAULT now()
        )
        """
    )


def downgrade() -> None:
    op.execute("DROP TABLE quarantine, inbox_conflicts, inbox, events")
    op.execute("DROP FUNCTION events_reject_change()")
