"""payments that complete: an unguessable public id (the pay page's address), the checkout the
customer pays through, the amounts captured and refunded, and which charge a refund refunds

- ``public_id``: 32 hex characters (128 random bits, PostgreSQL 122) naming the payment in
  ``/pay/{public_id}``; on PostgreSQL a server default, so ``parkgate_create_booking``'s payment
  rows get one too; existing rows get one here.
- ``captured_cents`` / ``refunded_cents``: what the provider took for this payment and how much
  of it has been asked back (reserved when a refund is requested, so no refund exceeds it);
  succeeded payments are backfilled as fully captured.
- ``refund_of``: a refund row's charge; ``checkout_ref`` / ``checkout_url``: the open checkout
  (Stripe Checkout Session id and URL); ``checkouts``: how many expired (the next one's
  idempotency key counts them).

Revision ID: pm01
Revises: po01
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "pm01"
down_revision: str | None = "po01"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

PG_RANDOM = "replace(gen_random_uuid()::text, '-', '')"
SQLITE_RANDOM = "lower(hex(randomblob(16)))"


def upgrade() -> None:
    postgres = op.get_bind().dialect.name == "postgresql"
    with op.batch_alter_table("payments") as batch:
        batch.add_column(
            sa.Column(
                "public_id",
                sa.String(32),
                server_default=sa.text(PG_RANDOM) if postgres else None,
            )
        )
        batch.add_column(
            sa.Column("captured_cents", sa.Integer(), nullable=False, server_default="0")
        )
        batch.add_column(
            sa.Column("refunded_cents", sa.Integer(), nullable=False, server_default="0")
        )
        batch.add_column(sa.Column("refund_of", sa.Integer()))
        batch.add_column(sa.Column("checkout_ref", sa.String(128)))
        batch.add_column(sa.Column("checkout_url", sa.Text()))
        batch.add_column(sa.Column("checkouts", sa.Integer(), nullable=False, server_default="0"))
    if not postgres:
        op.execute(f"UPDATE payments SET public_id = {SQLITE_RANDOM} WHERE public_id IS NULL")
    op.execute(
        "UPDATE payments SET captured_cents = amount_cents "
        "WHERE status = 'succeeded' AND kind <> 'refund'"
    )
    op.create_index("ix_payments_public_id", "payments", ["public_id"], unique=True)
    op.create_index("ix_payments_checkout_ref", "payments", ["checkout_ref"])


def downgrade() -> None:
    op.drop_index("ix_payments_checkout_ref", "payments")
    op.drop_index("ix_payments_public_id", "payments")
    with op.batch_alter_table("payments") as batch:
        for name in (
            "checkouts",
            "checkout_url",
            "checkout_ref",
            "refund_of",
            "refunded_cents",
            "captured_cents",
            "public_id",
        ):
            batch.drop_column(name)
