"""payments, webhooks, notifications: webhook_events, outbox_dead_letters, booking_reminders

Tables owned by cloud_api.webhooks (WebhookEvent), cloud_api.outbox (DeadLetter) and
cloud_api.notifications (BookingReminder).

Revision ID: pn01
Revises: 0001
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "pn01"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "webhook_events",
        sa.Column("event_id", sa.String(length=255), nullable=False),
        sa.Column("type", sa.String(length=64), nullable=False),
        sa.Column("outcome", sa.Text(), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("event_id", name=op.f("pk_webhook_events")),
    )
    op.create_table(
        "outbox_dead_letters",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("outbox_id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=64), nullable=False),
        sa.Column("payload", sa.JSON(), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_outbox_dead_letters")),
        sa.UniqueConstraint("outbox_id", name=op.f("uq_outbox_dead_letters_outbox_id")),
    )
    op.create_index(
        op.f("ix_outbox_dead_letters_kind"), "outbox_dead_letters", ["kind"], unique=False
    )
    op.create_table(
        "booking_reminders",
        sa.Column("booking_id", sa.String(length=24), nullable=False),
        sa.Column("enqueued_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["booking_id"],
            ["bookings.id"],
            name=op.f("fk_booking_reminders_booking_id_bookings"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("booking_id", name=op.f("pk_booking_reminders")),
    )


def downgrade() -> None:
    op.drop_table("booking_reminders")
    op.drop_index(op.f("ix_outbox_dead_letters_kind"), table_name="outbox_dead_letters")
    op.drop_table("outbox_dead_letters")
    op.drop_table("webhook_events")
