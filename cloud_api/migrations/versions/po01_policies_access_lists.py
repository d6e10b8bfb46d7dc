"""lot policies, access lists, audit; policy version on bookings and lot status; bookings priced
in Python (parkgate_create_booking takes the price)

Tables owned by ``cloud_api.policies`` (models in ``cloud_api.policies._models``). The booking
price now comes from the lot policy's tariff through ``parkgate_protocol.price_stay``, computed
in Python by both booking paths; on PostgreSQL ``parkgate_create_booking`` is replaced by one
taking the price and the policy version as parameters, and ``parkgate_price`` is dropped.

Revision ID: po01
Revises: bk01
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from cloud_api.migrations.versions import bk01_booking_function as bk01

revision: str = "po01"
down_revision: str | None = "bk01"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

OLD_SIGNATURE = (
    "parkgate_create_booking(text, integer, integer, integer, text, text, timestamptz, "
    "timestamptz, timestamptz, timestamptz, text, text, text, text)"
)
NEW_SIGNATURE = (
    "parkgate_create_booking(text, integer, integer, integer, text, text, timestamptz, "
    "timestamptz, timestamptz, timestamptz, text, text, text, text, integer, integer)"
)


def _priced_in_python(sql: str) -> str:
    """bk01's ``parkgate_create_booking`` taking the price and the policy version as parameters
    (computed in Python: ``price_stay`` on the lot's policy) instead of reading ``lot_prices``."""
    lookup_start = sql.index("    SELECT lp.hourly_cents")
    lookup_end = sql.index("v_price := parkgate_price(p_start, p_end, v_hourly, v_cap);")
    replaced = (
        sql[:lookup_start]
        + "    v_price := p_price;  -- priced in Python: price_stay on the lot's policy"
        + sql[lookup_end + len("v_price := parkgate_price(p_start, p_end, v_hourly, v_cap);") :]
    )
    for old, new in (
        (
            "p_idem_key text, p_idem_hash text\n)",
            "p_idem_key text, p_idem_hash text,\n    p_price integer, p_policy_version integer\n)",
        ),
        (
            "refunded_cents, arrived_at, exited_at, created_at, updated_at)",
            "refunded_cents, arrived_at, exited_at, created_at, updated_at, policy_version)",
        ),
        (
            "v_lot.currency, 0, 0, NULL, NULL, p_now, p_now);",
            "v_lot.currency, 0, 0, NULL, NULL, p_now, p_now,\n                p_policy_version);",
        ),
        ("    v_hourly integer;\n    v_cap integer;\n", ""),
    ):
        if replaced.count(old) != 1:
            raise RuntimeError(f"po01: bk01's function changed near {old[:40]!r}")
        replaced = replaced.replace(old, new)
    return replaced


CREATE_BOOKING = _priced_in_python(bk01.CREATE_BOOKING)


def _time(name: str, nullable: bool = False) -> sa.Column:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def _lot_fk() -> sa.Column:
    return sa.Column(
        "lot_id", sa.Integer(), sa.ForeignKey("lots.id", ondelete="CASCADE"), nullable=False
    )


def upgrade() -> None:
    op.create_table(
        "lot_policies",
        sa.Column("id", sa.Integer(), primary_key=True),
        _lot_fk(),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("body", sa.JSON(), nullable=False),
        sa.Column("created_by", sa.Integer()),
        _time("created_at"),
        sa.UniqueConstraint("lot_id", "version"),
    )
    op.create_table(
        "access_list_entries",
        sa.Column("entry_id", sa.String(40), primary_key=True),
        _lot_fk(),
        sa.Column("plate", sa.String(16), nullable=False),
        sa.Column("kind", sa.String(8), nullable=False),
        sa.Column("category", sa.String(16), nullable=False),
        _time("valid_from", nullable=True),
        _time("valid_until", nullable=True),
        sa.Column("note", sa.String(500), nullable=False),
        sa.Column("lanes", sa.JSON()),
        sa.Column("created_by", sa.Integer()),
        _time("created_at"),
    )
    op.create_index("ix_access_list_lot_plate", "access_list_entries", ["lot_id", "plate"])
    op.create_table(
        "lot_audit",
        sa.Column("id", sa.Integer(), primary_key=True),
        _lot_fk(),
        sa.Column("actor_id", sa.Integer()),
        sa.Column("actor", sa.String(320), nullable=False),
        sa.Column("action", sa.String(32), nullable=False),
        sa.Column("detail", sa.JSON(), nullable=False),
        _time("created_at"),
    )
    op.create_index("ix_lot_audit_lot_time", "lot_audit", ["lot_id", "created_at"])
    with op.batch_alter_table("bookings") as batch:
        batch.add_column(sa.Column("policy_version", sa.Integer()))
    with op.batch_alter_table("lot_status") as batch:
        batch.add_column(sa.Column("policy_version", sa.Integer()))
        batch.add_column(sa.Column("policy_problem", sa.String(500)))
    if op.get_bind().dialect.name == "postgresql":
        op.execute(f"DROP FUNCTION IF EXISTS {OLD_SIGNATURE}")
        op.execute(CREATE_BOOKING)
        op.execute(
            "DROP FUNCTION IF EXISTS parkgate_price(timestamptz, timestamptz, integer, integer)"
        )


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(f"DROP FUNCTION IF EXISTS {NEW_SIGNATURE}")
        op.execute(bk01.PRICE)
        op.execute(bk01.CREATE_BOOKING)
    with op.batch_alter_table("lot_status") as batch:
        batch.drop_column("policy_problem")
        batch.drop_column("policy_version")
    with op.batch_alter_table("bookings") as batch:
        batch.drop_column("policy_version")
    op.drop_index("ix_lot_audit_lot_time", table_name="lot_audit")
    op.drop_table("lot_audit")
    op.drop_index("ix_access_list_lot_plate", table_name="access_list_entries")
    op.drop_table("access_list_entries")
    op.drop_table("lot_policies")
