"""bearer tokens expire: ``api_tokens.expires_at``

Tokens issued by the API get ``created_at`` + the settings' lifetime; rows from before this
migration (and tokens seeded by ``demo-data``) keep ``NULL``, which never expires — revoke them
with ``POST /auth/tokens/revoke`` or by rotating the lot's device token.

Revision ID: ct01
Revises: pm01
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "ct01"
down_revision: str | None = "pm01"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("api_tokens", schema=None) as batch_op:
        batch_op.add_column(sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("api_tokens", schema=None) as batch_op:
        batch_op.drop_column("expires_at")
