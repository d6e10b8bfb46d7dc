"""the unpaid-hold limit checked inside parkgate_create_booking, under the customer's row lock
(PostgreSQL only)

``LotPolicy.max_unpaid_holds`` was counted by ``cloud_api.booking_pg`` in its own statement just
before the booking statement, so concurrent requests of one customer could all pass it together
and hold more unpaid spaces than the lot allows. po01's function now takes the limit
(``p_max_holds``, NULL: no check) and, for a priced booking, first locks the customer's ``users``
row (``FOR NO KEY UPDATE``: bookings' foreign-key share locks on it do not wait), then counts the
customer's live holds at the lot on a fresh snapshot: a concurrent request of the same customer
waits for the first to commit and counts its hold. The lock comes before the lot's row lock, the
order the ORM path (``cloud_api.bookings.create_booking``) takes them in too. Over the limit the
function answers ``too_many_unpaid_holds`` with the count in ``detail`` and writes nothing.

Revision ID: lg01
Revises: cf01
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

from cloud_api.migrations.versions import po01_policies_access_lists as po01

revision: str = "lg01"
down_revision: str | None = "cf01"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

NEW_SIGNATURE = (
    "parkgate_create_booking(text, integer, integer, integer, text, text, timestamptz, "
    "timestamptz, timestamptz, timestamptz, text, text, text, text, integer, integer, integer)"
)

_LOCK_AND_COUNT = """    IF p_price > 0 AND p_max_holds IS NOT NULL THEN
        -- the customer's row lock orders their bookings: a concurrent request waits for this
        -- one to commit, and its count (a fresh snapshot) sees this hold
        PERFORM 1 FROM users u WHERE u.id = p_user_id FOR NO KEY UPDATE;
        SELECT count(*) INTO v_held FROM bookings b
            WHERE b.user_id = p_user_id AND b.lot_id = p_lot_id AND b.status = 'pending'
              AND b.hold_expires_at > p_now;
        IF v_held >= p_max_holds THEN
            RETURN QUERY SELECT 'too_many_unpaid_holds', NULL::integer, NULL::text, NULL::text,
                NULL::integer, NULL::text, NULL::timestamptz, NULL::integer, v_held::text;
            RETURN;
        END IF;
    END IF;
"""


def _holds_checked_inside(sql: str) -> str:
    """po01's function taking ``p_max_holds`` and checking it under the customer's lock, before
    it locks the lot's row."""
    lot_lock = "    SELECT * INTO v_lot FROM lots WHERE id = p_lot_id FOR NO KEY UPDATE;\n"
    replaced = sql
    for old, new in (
        (
            "p_price integer, p_policy_version integer\n)",
            "p_price integer, p_policy_version integer,\n    p_max_holds integer\n)",
        ),
        ("    v_seq integer;\n", "    v_seq integer;\n    v_held bigint;\n"),
        (lot_lock, _LOCK_AND_COUNT + lot_lock),
    ):
        if replaced.count(old) != 1:
            raise RuntimeError(f"lg01: po01's function changed near {old[:40]!r}")
        replaced = replaced.replace(old, new)
    return replaced


CREATE_BOOKING = _holds_checked_inside(po01.CREATE_BOOKING)


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute(f"DROP FUNCTION IF EXISTS {po01.NEW_SIGNATURE}")
    op.execute(CREATE_BOOKING)


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute(f"DROP FUNCTION IF EXISTS {NEW_SIGNATURE}")
    op.execute(po01.CREATE_BOOKING)
