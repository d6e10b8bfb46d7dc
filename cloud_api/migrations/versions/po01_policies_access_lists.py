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


CREATE_BOOKING = """
CREATE OR REPLACE FUNCTION parkgate_create_booking(
    p_id text, p_user_id integer, p_lot_id integer, p_space_id integer, p_plate text,
    p_vehicle_type text, p_start timestamptz, p_end timestamptz, p_now timestamptz,
    p_wall timestamptz, p_starts_at text, p_ends_at text, p_idem_key text, p_idem_hash text,
    p_price integer, p_policy_version integer
) RETURNS TABLE (
    outcome text, space_id integer, space_label text, status text, price_cents integer,
    currency text, hold_expires_at timestamptz, payment_id integer, detail text
) LANGUAGE plpgsql AS $$
#variable_conflict use_column
DECLARE
    v_lot lots%ROWTYPE;
    v_price integer;
    v_status text;
    v_hold timestamptz;
    v_space record;
    v_inserted boolean := false;
    v_payment integer;
    v_seq integer;
BEGIN
    SELECT * INTO v_lot FROM lots WHERE id = p_lot_id FOR NO KEY UPDATE;
    IF NOT FOUND THEN
        RETURN QUERY SELECT 'unknown_lot', NULL::integer, NULL::text, NULL::text, NULL::integer,
            NULL::text, NULL::timestamptz, NULL::integer, NULL::text;
        RETURN;
    END IF;
    v_price := p_price;  -- priced in Python: price_stay on the lot's policy
    v_status := CASE WHEN v_price > 0 THEN 'pending' ELSE 'confirmed' END;
    v_hold := CASE WHEN v_price > 0 THEN p_now + make_interval(mins => v_lot.hold_minutes) END;

    IF p_space_id IS NOT NULL THEN
        SELECT s.id, s.label, s.vehicle_type, s.active, s.lot_id INTO v_space
            FROM spaces s WHERE s.id = p_space_id;
        IF NOT FOUND OR v_space.lot_id <> p_lot_id OR NOT v_space.active THEN
            RETURN QUERY SELECT 'unknown_space', NULL::integer, NULL::text, NULL::text,
                NULL::integer, NULL::text, NULL::timestamptz, NULL::integer, NULL::text;
            RETURN;
        END IF;
        IF v_space.vehicle_type <> p_vehicle_type THEN
            RETURN QUERY SELECT 'space_incompatible', NULL::integer, NULL::text, NULL::text,
                NULL::integer, NULL::text, NULL::timestamptz, NULL::integer,
                v_space.vehicle_type::text;
            RETURN;
        END IF;
    END IF;

    FOR v_space IN
        SELECT s.id, s.label FROM spaces s
        WHERE s.lot_id = p_lot_id AND s.active AND s.vehicle_type = p_vehicle_type
          AND (p_space_id IS NULL OR s.id = p_space_id)
          AND s.id NOT IN (  -- one scan of ix_bookings_lot_window (the range form uses it)
              SELECT b.space_id FROM bookings b
              WHERE b.lot_id = p_lot_id AND b.status IN ('pending', 'confirmed')
                AND tstzrange(b.start_time, b.end_time) && tstzrange(p_start, p_end)
                AND (b.status = 'confirmed' OR b.hold_expires_at IS NULL
                     OR b.hold_expires_at > p_now))
        ORDER BY s.id
    LOOP
        IF EXISTS (
            SELECT 1 FROM bookings b
            WHERE b.space_id = v_space.id AND b.status IN ('pending', 'confirmed')
              AND tstzrange(b.start_time, b.end_time) && tstzrange(p_start, p_end)
              AND b.status = 'pending' AND b.hold_expires_at <= p_now
        ) THEN
            RETURN QUERY SELECT 'stale_hold', NULL::integer, NULL::text, NULL::text,
                NULL::integer, NULL::text, NULL::timestamptz, NULL::integer, NULL::text;
            RETURN;
        END IF;
        BEGIN
            INSERT INTO bookings (id, user_id, lot_id, space_id, plate, vehicle_type, start_time,
                end_time, status, hold_expires_at, price_cents, currency, amount_owed_cents,
                refunded_cents, arrived_at, exited_at, created_at, updated_at, policy_version)
            VALUES (p_id, p_user_id, p_lot_id, v_space.id, p_plate, p_vehicle_type, p_start,
                p_end, v_status, v_hold, v_price, v_lot.currency, 0, 0, NULL, NULL, p_now, p_now,
                p_policy_version);
            v_inserted := true;
        EXCEPTION WHEN exclusion_violation THEN
            v_inserted := false;  -- taken concurrently: try the next candidate
        END;
        EXIT WHEN v_inserted;
    END LOOP;

    IF NOT v_inserted THEN
        RETURN QUERY SELECT
            CASE WHEN p_space_id IS NULL THEN 'no_space_free' ELSE 'space_overlaps' END,
            NULL::integer, NULL::text, NULL::text, NULL::integer, NULL::text,
            NULL::timestamptz, NULL::integer, NULL::text;
        RETURN;
    END IF;

    INSERT INTO event_log (kind, lot_id, booking_id, user_id, payload, created_at)
    VALUES ('booking.created', p_lot_id, p_id, p_user_id,
            json_build_object('price_cents', v_price), p_now);
    IF v_price > 0 THEN
        INSERT INTO payments (booking_id, amount_cents, currency, status, provider, provider_ref,
            kind, idempotency_key, created_at, updated_at)
        VALUES (p_id, v_price, v_lot.currency, 'requires_payment', 'pending', NULL, 'charge',
            p_id || ':charge:initial', p_wall, p_wall)
        RETURNING id INTO v_payment;
        INSERT INTO outbox (kind, payload, created_at, available_at, attempts, last_error,
            sent_at, dead)
        VALUES ('payment.create', json_build_object(
                'payment_id', v_payment, 'booking_id', p_id, 'amount_cents', v_price,
                'currency', v_lot.currency, 'kind', 'charge',
                'idempotency_key', p_id || ':charge:initial'),
            p_wall, p_wall, 0, NULL, NULL, false);
    END IF;
    IF p_idem_key IS NOT NULL THEN
        -- a concurrent request with the same key: unique_violation undoes this one (the caller
        -- then replays the winner's answer); the caller stores the full answer after commit
        INSERT INTO idempotency_keys (user_id, key, request_hash, status_code, response,
            created_at)
        VALUES (p_user_id, p_idem_key, p_idem_hash, 201, json_build_object('booking_id', p_id),
            p_wall);
    END IF;
    -- last: the lots row lock taken here orders the lot's change feed until commit, so the
    -- caller runs this function as its own transaction (autocommit): no client round trip
    -- happens while the lock is held
    UPDATE lots SET change_seq = change_seq + 1 WHERE id = p_lot_id RETURNING change_seq INTO v_seq;
    INSERT INTO lot_changes (lot_id, seq, kind, payload, created_at, relayed_at)
    VALUES (p_lot_id, v_seq, 'created', json_build_object(
            'id', p_id, 'plate', p_plate, 'starts_at', p_starts_at, 'ends_at', p_ends_at,
            'status', v_status, 'amount_owed_cents', 0, 'currency', v_lot.currency,
            'space_label', v_space.label),
        p_now, NULL);
    RETURN QUERY SELECT 'created', v_space.id, v_space.label::text, v_status, v_price,
        v_lot.currency::text, v_hold, v_payment, NULL::text;
END
$$
"""


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
