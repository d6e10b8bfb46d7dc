"""booking access codes: ``lot_access_keys``, each lot's signing keys (current and retiring)

Table owned by ``cloud_api.access_codes`` (model in ``cloud_api.access_codes._models``). A lot's
first key is made when its first code is asked for; keys are pushed to the lot on the change
feed (``access_keys``) and never logged.

Revision ID: qr01
Revises: st01
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "qr01"
down_revision: str | None = "st01"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "lot_access_keys",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column(
            "lot_id", sa.Integer(), sa.ForeignKey("lots.id", ondelete="CASCADE"), nullable=False
        ),
        sa.Column("kid", sa.String(16), nullable=False),
        sa.Column("secret", sa.String(88), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("retires_at", sa.DateTime(timezone=True), nullable=True),
        sa.UniqueConstraint("lot_id", "kid", name="uq_lot_access_keys_kid"),
    )
    op.create_index("ix_lot_access_keys_lot", "lot_access_keys", ["lot_id"])


def downgrade() -> None:
    op.drop_index("ix_lot_access_keys_lot", table_name="lot_access_keys")
    op.drop_table("lot_access_keys")
