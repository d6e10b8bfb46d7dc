"""booking in one round trip: parkgate_price() and parkgate_create_booking() (PostgreSQL only)

``cloud_api.booking_pg`` calls ``parkgate_create_booking`` for ``POST /bookings`` on PostgreSQL,
as a transaction of its own: one statement finds a free compatible space (or checks the chosen
one), inserts the booking (the ``EXCLUDE`` constraint still decides: a concurrent winner makes the
insert fail and the next candidate is tried), its event-log row, its payment row and
``payment.create`` outbox message, claims the ``Idempotency-Key`` if one was sent, and appends the
lot's change-feed row. The rows are those the ORM path in ``cloud_api.bookings`` writes
(``tests/cloud_api/test_booking_pg.py`` compares them); SQLite keeps the ORM path. A lapsed hold
overlapping a candidate space is not expired here: the function answers ``stale_hold`` and the
caller takes the ORM path, which expires it with its own change-feed row.

``parkgate_price`` is ``cloud_api.pricing.price_for`` in SQL (tested against it with hypothesis).

Revision ID: bk01
Revises: sy01
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "bk01"
down_revision: str | None = "sy01"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

PRICE = """
CREATE OR REPLACE FUNCTION parkgate_price(
    p_start timestamptz, p_end timestamptz, p_hourly integer, p_cap integer
) RETURNS integer LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE WHEN p_end <= p_start THEN 0 ELSE
        (floor(extract(epoch FROM p_end - p_start) / 86400))::integer * p_cap
        + least(
            ((floor(extract(epoch FROM p_end - p_start))::bigint % 86400 + 3599) / 3600)::integer
                * p_hourly,
            p_cap)
    END
$$
"""

CREATE_BOOKING = """
CREATE OR REPLACE FUNCTION parkgate_create_booking(
    p_id text, p_user_id integer, p_lot_id integer, p_space_id integer, p_plate text,
    p_vehicle_type text, p_start timestamptz, p_end timestamptz, p_now timestamptz,
    p_wall timestamptz, p_starts_at text, p_ends_at text, p_idem_key text, p_idem_hash text
) RETURNS TABLE (
    outcome text, space_id integer, space_label text, status text, price_cents integer,
    currency text, hold_expires_at timestamptz, payment_id integer, detail text
) LANGUAGE plpgsql AS $$
#variable_conflict use_column
DECLARE
    v_lot lots%ROWTYPE;
    v_hourly integer;
    v_cap integer;
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
    SELECT lp.hourly_cents, lp.daily_cap_cents INTO v_hourly, v_cap
        FROM lot_prices lp WHERE lp.lot_id = p_lot_id AND lp.vehicle_type = p_vehicle_type;
    IF NOT FOUND THEN
        RETURN QUERY SELECT 'no_price', NULL::integer, NULL::text, NULL::text, NULL::integer,
            NULL::text, NULL::timestamptz, NULL::integer, NULL::text;
        RETURN;
    END IF;
    v_price := parkgate_price(p_start, p_end, v_hourly, v_cap);
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
                refunded_cents, arrived_at, exited_at, created_at, updated_at)
            VALUES (p_id, p_user_id, p_lot_id, v_space.id, p_plate, p_vehicle_type, p_start,
                p_end, v_status, v_hold, v_price, v_lot.currency, 0, 0, NULL, NULL, p_now, p_now);
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


# Which spaces of a lot are taken in a window (availability, the ORM booking path): a GiST index
# over active bookings' ranges per lot, like the EXCLUDE constraint's per space.
LOT_WINDOW_INDEX = (
    "CREATE INDEX IF NOT EXISTS ix_bookings_lot_window ON bookings USING gist "
    "(lot_id, tstzrange(start_time, end_time)) WHERE (status IN ('pending', 'confirmed'))"
)


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute(LOT_WINDOW_INDEX)
    op.execute(PRICE)
    op.execute(CREATE_BOOKING)


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute(
        "DROP FUNCTION IF EXISTS parkgate_create_booking(text, integer, integer, integer, text, "
        "text, timestamptz, timestamptz, timestamptz, timestamptz, text, text, text, text)"
    )
    op.execute("DROP FUNCTION IF EXISTS parkgate_price(timestamptz, timestamptz, integer, integer)")
    op.execute("DROP INDEX IF EXISTS ix_bookings_lot_window")
