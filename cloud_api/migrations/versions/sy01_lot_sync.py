"""lot sync: lot_changes.relayed_at, gate_events, ingest_dead_letters, lot_status, lot_commands

Tables owned by cloud_api.lot_sync (relay, ingest; models in cloud_api.lot_sync._models).

Revision ID: sy01
Revises: pn01
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "sy01"
down_revision: str | None = "pn01"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

UNRELAYED = sa.text("relayed_at IS NULL")


def _time(name: str, nullable: bool = False) -> sa.Column:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    with op.batch_alter_table("lot_changes") as batch:
        batch.add_column(_time("relayed_at", nullable=True))
    op.create_index(
        "ix_lot_changes_unrelayed",
        "lot_changes",
        ["lot_id", "seq"],
        postgresql_where=UNRELAYED,
        sqlite_where=UNRELAYED,
    )
    lot_fk = sa.ForeignKey("lots.id", ondelete="CASCADE")
    op.create_table(
        "gate_events",
        sa.Column("event_id", sa.String(64), primary_key=True),
        sa.Column("lot_id", sa.Integer(), lot_fk, nullable=False),
        sa.Column("lane_id", sa.String(64)),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("reason", sa.String(64)),
        sa.Column("reservation_id", sa.String(64), index=True),
        sa.Column("visit_id", sa.String(64)),
        sa.Column("plate", sa.String(128)),
        _time("occurred_at"),
        _time("received_at"),
        sa.Column("outcome", sa.String(64), nullable=False),
        sa.Column("payload", sa.JSON(), nullable=False),
    )
    op.create_index("ix_gate_events_lot_time", "gate_events", ["lot_id", "occurred_at"])
    op.create_table(
        "ingest_dead_letters",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("topic", sa.String(255), nullable=False),
        sa.Column("reason", sa.String(64), nullable=False, index=True),
        sa.Column("detail", sa.Text(), nullable=False),
        sa.Column("payload", sa.Text(), nullable=False),
        sa.Column("truncated", sa.Boolean(), nullable=False),
        _time("received_at"),
    )
    op.create_table(
        "lot_status",
        sa.Column(
            "lot_id", sa.Integer(), sa.ForeignKey("lots.id", ondelete="CASCADE"), primary_key=True
        ),
        sa.Column("state", sa.String(16), nullable=False),
        _time("at", nullable=True),
        sa.Column("outbox_depth", sa.Integer()),
        sa.Column("last_applied_seq", sa.Integer()),
        sa.Column("lanes", sa.JSON(), nullable=False),
        _time("received_at"),
    )
    op.create_table(
        "lot_commands",
        sa.Column("command_id", sa.String(64), primary_key=True),
        sa.Column(
            "lot_id",
            sa.Integer(),
            sa.ForeignKey("lots.id", ondelete="CASCADE"),
            nullable=False,
            index=True,
        ),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("lane_id", sa.String(64)),
        sa.Column("actor", sa.String(128)),
        sa.Column("reason", sa.String(500)),
        sa.Column("full", sa.Boolean(), nullable=False),
        _time("created_at"),
        _time("expires_at", nullable=True),
        _time("published_at", nullable=True),
        sa.Column("outcome", sa.String(32)),
    )
    op.create_index("ix_lot_commands_pending", "lot_commands", ["published_at", "created_at"])


def downgrade() -> None:
    op.drop_table("lot_commands")
    op.drop_table("lot_status")
    op.drop_table("ingest_dead_letters")
    op.drop_index("ix_gate_events_lot_time", table_name="gate_events")
    op.drop_table("gate_events")
    op.drop_index("ix_lot_changes_unrelayed", table_name="lot_changes")
    with op.batch_alter_table("lot_changes") as batch:
        batch.drop_column("relayed_at")
