"""Projection bookkeeping (checkpoints, recorded poison events) and the locations read model.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-28
"""

from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        """
        CREATE TABLE projection_checkpoints (
            name       text PRIMARY KEY,
            position   bigint      NOT NULL DEFAULT 0,
            updated_at timestamptz NOT NULL DEFAULT now()
        )
        """
    )
    op.execute(
        """
        CREATE TABLE projection_errors (
            projection  text        NOT NULL,
            position    bigint      NOT NULL,
            event_type  text        NOT NULL,
            error       text        NOT NULL,
            recorded_at timestamptz NOT NULL DEFAULT now(),
            PRIMARY KEY (projection, position)
        )
        """
    )
    op.execute(
        """
        CREATE TABLE locations (
            id            text PRIMARY KEY,
            name          text,
            address       jsonb,
            timezone      text,
            opening_hours jsonb,
            active        boolean     NOT NULL,
            updated_at    timestamptz NOT NULL,
            position      bigint      NOT NULL
        )
        """
    )


def downgrade() -> None:
    op.execute("DROP TABLE locations, projection_errors, projection_checkpoints")
