"""outbox: ``handling_since``, the marker a claim commits before the worker runs the handler

Set with the claim's lease, cleared with the recorded outcome. Found still set on a later claim,
it says a worker stopped mid-attempt (outcome unknown); the worker dead-letters an at-most-once
kind (email) instead of trying again (``cloud_api.outbox._worker``).

Revision ID: cf01
Revises: qr01
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "cf01"
down_revision: str | None = "qr01"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("outbox", schema=None) as batch_op:
        batch_op.add_column(sa.Column("handling_since", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("outbox", schema=None) as batch_op:
        batch_op.drop_column("handling_since")
