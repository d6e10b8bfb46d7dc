"""Stay payments in :mod:`gate_agent.store`: what the cloud says each stay has paid.

Functions over an open connection inside a transaction the caller holds. One row per stay, keyed
by the stay's id (the entry pass's visit id): the total captured so far and the time it is paid
through, as the newest ``stay_paid`` change said (changes arrive in seq order, so the newest is
the truth). Snapshots replace reservations and lists, never these; a row goes when its car
leaves (:func:`gate_agent.store._presence.clear_presence`).
"""

from __future__ import annotations

import sqlite3

from gate_agent.domain import StayPayment
from gate_agent.store._rows import STAY_PAYMENT_COLUMNS, stay_payment_from_row, to_text

__all__ = ["put_stay_payment", "stay_payment"]

_PUT = """
INSERT INTO stay_payments (stay_id, plate, paid_cents, paid_through, currency, payment_id,
                           updated_at)
VALUES (?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (stay_id) DO UPDATE SET
    plate = excluded.plate, paid_cents = excluded.paid_cents,
    paid_through = excluded.paid_through, currency = excluded.currency,
    payment_id = excluded.payment_id, updated_at = excluded.updated_at
"""


def put_stay_payment(
    conn: sqlite3.Connection, payment: StayPayment, plate: str, updated_at: str
) -> None:
    """Keep ``payment`` as the stay's (replacing what it said before)."""
    conn.execute(
        _PUT,
        (
            payment.stay_id,
            plate,
            payment.paid_cents,
            to_text(payment.paid_through),
            payment.currency,
            payment.payment_id,
            updated_at,
        ),
    )


def stay_payment(conn: sqlite3.Connection, stay_id: str) -> StayPayment | None:
    sql = f"SELECT {STAY_PAYMENT_COLUMNS} FROM stay_payments WHERE stay_id = ?"
    row = conn.execute(sql, (stay_id,)).fetchone()
    return None if row is None else stay_payment_from_row(row)
