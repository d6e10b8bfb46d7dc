"""Parking sessions ("stays"): one record per car's stay at a lot, opened by its entry event and
closed by its exit, whatever let it in (a booking, a drive-up, a permit); what it owes, pay by
plate, and the ``stay_paid`` push to the lot when a payment is captured.

The ingest (``cloud_api.lot_sync``) opens and closes stays; the routes (``cloud_api.routes.stays``)
serve pay by plate; the payment webhook applies a captured stay payment with
:func:`record_stay_payment`.
"""

from cloud_api.models import Stay, StayKind, StayStatus
from cloud_api.stays._ledger import (
    Owed,
    find_stay,
    new_session_id,
    owed_now,
    void_unpaid_booking_stay_payments,
)
from cloud_api.stays._owed import StayTerms, gross_price, outstanding
from cloud_api.stays._pay import (
    OwingStay,
    get_stay,
    owing_stays,
    paid_stays_inside,
    push_stay_paid,
    record_stay_payment,
    start_stay_payment,
)
from cloud_api.stays._record import (
    GatePass,
    close_stay,
    note_payment_due,
    open_stay,
    paid_so_far,
    stay_for_exit,
)

__all__ = [
    "GatePass",
    "Owed",
    "OwingStay",
    "Stay",
    "StayKind",
    "StayStatus",
    "StayTerms",
    "close_stay",
    "find_stay",
    "get_stay",
    "gross_price",
    "new_session_id",
    "note_payment_due",
    "open_stay",
    "outstanding",
    "owed_now",
    "owing_stays",
    "paid_so_far",
    "paid_stays_inside",
    "push_stay_paid",
    "record_stay_payment",
    "start_stay_payment",
    "stay_for_exit",
    "void_unpaid_booking_stay_payments",
]
