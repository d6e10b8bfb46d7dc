"""Pydantic request and response models of the HTTP API."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Literal

from pydantic import AfterValidator, AwareDatetime, BaseModel, ConfigDict, Field

__all__ = [
    "AccessAnswer",
    "AccessUpdate",
    "AvailabilityOut",
    "BookingCreate",
    "BookingOut",
    "ExtendRequest",
    "LotOut",
    "PaymentInstructions",
    "PlateChange",
    "PriceOut",
    "Problem",
    "Timestamp",
    "VehicleTypeName",
]

VehicleTypeName = Literal["car", "motorcycle", "ev", "van", "accessible"]
EARLIEST, LATEST = datetime(2000, 1, 1, tzinfo=UTC), datetime(2200, 1, 1, tzinfo=UTC)


def _to_utc(value: datetime) -> datetime:
    try:
        value = value.astimezone(UTC)
    except OverflowError:
        raise ValueError("time out of range") from None
    if not EARLIEST <= value < LATEST:
        raise ValueError("time out of range (years 2000-2199)")
    return value


Timestamp = Annotated[AwareDatetime, AfterValidator(_to_utc)]
DbId = Annotated[int, Field(ge=1, le=2**31 - 1)]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class Problem(BaseModel):
    """Every 4xx answer: a stable reason code and a human-readable detail."""

    reason: str = Field(description="machine-readable reason code, e.g. space_overlaps")
    detail: str | list[object] = Field(description="what was wrong")


class PriceOut(BaseModel):
    vehicle_type: str
    hourly_cents: int
    daily_cap_cents: int


class LotOut(BaseModel):
    id: int
    name: str
    address: str
    latitude: float
    longitude: float
    country: str
    city: str
    capacity: int
    timezone: str
    currency: str
    early_grace_minutes: int
    late_grace_minutes: int
    overstay_grace_minutes: int
    early_exit_policy: str
    early_exit_fee_cents: int
    hold_minutes: int
    anti_passback: str
    prices: list[PriceOut]
    free_spaces_now: int = Field(description="spaces with no active booking at this moment")
    distance_km: float | None = None


class TypeAvailability(BaseModel):
    vehicle_type: str
    free_spaces: int
    price_cents: int | None = Field(description="price of the window; null if not sold here")
    currency: str
    earliest_free_space_id: int | None = Field(description="the space a booking would get")
    earliest_free_space_label: str | None
    free_until: datetime | None = Field(
        description="when that space's next booking starts (null: free indefinitely)"
    )


class AvailabilityOut(BaseModel):
    parking_lot_id: int
    start_time: datetime
    end_time: datetime
    vehicle_types: list[TypeAvailability]


class BookingCreate(Strict):
    parking_lot_id: DbId
    vehicle_plate: str = Field(min_length=1, max_length=32, examples=["ABC123"])
    vehicle_type: VehicleTypeName = "car"
    start_time: Timestamp
    end_time: Timestamp
    space_id: DbId | None = None


class PaymentInstructions(BaseModel):
    """What the customer has to pay now, and where (``pay_url`` works for every provider)."""

    status: str = Field(description="awaiting_payment, paid, or not_required")
    amount_cents: int
    currency: str
    pay_by: datetime | None = Field(description="the hold expires then and frees the space")
    payment_id: int | None = None
    kind: str | None = Field(None, description="charge, extension, overstay, ...")
    pay_url: str | None = Field(
        None, description="our pay page: redirects to the provider's checkout or pays locally"
    )
    checkout_url: str | None = Field(None, description="the provider's hosted checkout page")
    client_secret: str | None = Field(None, description="for an embedded payment form")
    problem: str | None = Field(
        None, description="provider_unavailable: no checkout yet; pay_url opens one later"
    )
    how: str


class BookingOut(BaseModel):
    booking_id: str = Field(description="the unique reservation ID")
    parking_lot_id: int
    space_id: int
    space_label: str | None = None
    vehicle_plate: str
    vehicle_type: str
    start_time: datetime
    end_time: datetime
    status: str
    price: int = Field(description="price in cents")
    currency: str
    amount_owed_cents: int
    refunded_cents: int
    hold_expires_at: datetime | None
    arrived_at: datetime | None
    exited_at: datetime | None
    created_at: datetime
    payment: PaymentInstructions | None = None


class ExtendRequest(Strict):
    end_time: Timestamp


class PlateChange(Strict):
    vehicle_plate: str = Field(min_length=1, max_length=32)


class AccessAnswer(BaseModel):
    allowed: bool
    reason: str = Field(description="reason code (reservation_valid, no_reservation, ...)")
    plate: str
    parking_lot_id: int
    booking_id: str | None = None
    status: str | None = None
    starts_at: datetime | None = None
    ends_at: datetime | None = None
    amount_owed_cents: int = 0
    currency: str | None = None
    space_label: str | None = None
    credit_cents: int = 0
    overstay_cents: int = 0


class AccessUpdate(Strict):
    parking_lot_id: DbId
    plate: str = Field(min_length=1, max_length=32)
    booking_id: str | None = Field(default=None, max_length=24)
    arrived_at: Timestamp | None = None
    exited_at: Timestamp | None = None


class AccessCodeOut(BaseModel):
    """A booking's access code: show ``qr_svg`` to the lane camera or type ``code`` on the
    lane's code page. Valid for the booking's window (``expires_at`` caps it)."""

    booking_id: str
    code: str = Field(description="v1.<lot>.<booking>.<exp>.<kid>.<mac>, a bearer credential")
    qr_svg: str = Field(description="the code as an SVG QR image")
    expires_at: datetime


class KeyRotation(BaseModel):
    model_config = ConfigDict(extra="forbid")
    retire_old_after_minutes: int = Field(
        default=24 * 60,
        ge=0,
        le=7 * 24 * 60,
        description="how long the old key still opens (0: at once, for a leaked key)",
    )


class KeyRotated(BaseModel):
    kid: str = Field(description="the new current key's id")
    old_retires_at: datetime | None = Field(description="when the old key stops being accepted")
