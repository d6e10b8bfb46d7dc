"""shared rate limits: ``rate_hits``, hits per key per time bucket (``cloud_api.rate_limits``)

Pay by plate's limits (per client address, per lot) were counted in each worker's memory, so
with N workers an enumeration got N times the limit. Counting in the database makes the limit
one for every worker and process; the periodic sweep deletes buckets that no longer count.

Revision ID: rl01
Revises: lg01
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "rl01"
down_revision: str | None = "lg01"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "rate_hits",
        sa.Column("key", sa.String(160), primary_key=True),
        sa.Column("bucket", sa.Integer(), primary_key=True),
        sa.Column("hits", sa.Integer(), nullable=False),
    )
    op.create_index("ix_rate_hits_bucket", "rate_hits", ["bucket"])


def downgrade() -> None:
    op.drop_index("ix_rate_hits_bucket", table_name="rate_hits")
    op.drop_table("rate_hits")
