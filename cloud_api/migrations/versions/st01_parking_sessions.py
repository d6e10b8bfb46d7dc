"""parking sessions (stays): one row per stay at a lot; stay payments; occupancy in lot_status

Tables owned by ``cloud_api.stays`` (models in ``cloud_api.models``). A payment may now be
for a stay instead of a booking: ``payments.stay_id`` (nullable) and ``payments.paid_through``
(the moment a stay payment was priced through) are added and ``payments.booking_id`` becomes
nullable. ``lot_status`` keeps what the lot counts inside and its clock offset.

Revision ID: st01
Revises: ct01
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "st01"
down_revision: str | None = "ct01"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _time(name: str, nullable: bool = False) -> sa.Column:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "stays",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("session_id", sa.String(32), nullable=False, unique=True),
        sa.Column(
            "lot_id", sa.Integer(), sa.ForeignKey("lots.id", ondelete="CASCADE"), nullable=False
        ),
        sa.Column("gate_stay_id", sa.String(64), nullable=False),
        sa.Column("plate", sa.String(128), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("booking_id", sa.String(24), sa.ForeignKey("bookings.id"), index=True),
        sa.Column("entry_event_id", sa.String(64)),
        sa.Column("exit_event_id", sa.String(64)),
        _time("entered_at"),
        _time("exited_at", nullable=True),
        sa.Column("policy_version", sa.Integer()),
        sa.Column("vehicle_type", sa.String(16), nullable=False),
        sa.Column("amount_due_cents", sa.Integer(), nullable=False),
        sa.Column("paid_cents", sa.Integer(), nullable=False),
        _time("paid_through", nullable=True),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("time_flag", sa.String(64)),
        _time("overstay_notified_at", nullable=True),
        _time("created_at"),
        _time("updated_at"),
        sa.UniqueConstraint("lot_id", "gate_stay_id", name="uq_stays_lot_gate_stay"),
    )
    op.create_index("ix_stays_lot_plate", "stays", ["lot_id", "plate"])
    with op.batch_alter_table("payments") as batch:
        batch.alter_column("booking_id", existing_type=sa.String(24), nullable=True)
        batch.add_column(sa.Column("stay_id", sa.Integer(), nullable=True))
        batch.add_column(_time("paid_through", nullable=True))
        batch.create_foreign_key("fk_payments_stay_id", "stays", ["stay_id"], ["id"])
        batch.create_index("ix_payments_stay_id", ["stay_id"])
    with op.batch_alter_table("lot_status") as batch:
        batch.add_column(sa.Column("cars_inside", sa.Integer()))
        batch.add_column(sa.Column("drive_up_inside", sa.Integer()))
        batch.add_column(sa.Column("clock_offset_s", sa.Float()))


def downgrade() -> None:
    with op.batch_alter_table("lot_status") as batch:
        batch.drop_column("clock_offset_s")
        batch.drop_column("drive_up_inside")
        batch.drop_column("cars_inside")
    op.execute("DELETE FROM payments WHERE stay_id IS NOT NULL")
    with op.batch_alter_table("payments") as batch:
        batch.drop_index("ix_payments_stay_id")
        batch.drop_constraint("fk_payments_stay_id", type_="foreignkey")
        batch.drop_column("paid_through")
        batch.drop_column("stay_id")
        batch.alter_column("booking_id", existing_type=sa.String(24), nullable=False)
    op.drop_index("ix_stays_lot_plate", table_name="stays")
    op.drop_table("stays")
