"""Creating users, lots, spaces and prices: used by the admin API, ``demo-data`` and tests."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, time
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from cloud_api.auth import issue_token
from cloud_api.models import (
    EarlyExitPolicy,
    Lot,
    LotMember,
    LotPrice,
    Role,
    Space,
    User,
    VehicleType,
    utcnow,
)
from cloud_api.policies import EntryIn, add_entry, current_policy, set_policy
from parkgate_protocol import AccessCategory, ListKind, TariffBand, VehicleTariff

__all__ = ["DEFAULT_PRICES", "DEMO_PERMIT_PLATE", "SeededUser", "add_lot", "add_user", "demo_data"]

DEMO_PERMIT_PLATE = "BPG2026"  # the demo's staff permit: enters without a booking

DEFAULT_PRICES: dict[str, tuple[int, int]] = {
    VehicleType.CAR.value: (250, 2000),
    VehicleType.MOTORCYCLE.value: (100, 800),
    VehicleType.EV.value: (300, 2400),
    VehicleType.VAN.value: (400, 3200),
    VehicleType.ACCESSIBLE.value: (150, 1200),
}


@dataclass(frozen=True, slots=True)
class SeededUser:
    user: User
    token: str


def add_user(
    session: Session,
    email: str,
    role: Role = Role.CUSTOMER,
    *,
    name: str = "",
    lots: tuple = (),
    token_expires_at: datetime | None = None,
) -> SeededUser:
    user = User(name=name or email.split("@")[0], email=email, role=role.value)
    session.add(user)
    session.flush()
    for lot_id in lots:
        session.add(LotMember(lot_id=lot_id, user_id=user.id))
    return SeededUser(user, issue_token(session, user, expires_at=token_expires_at))


def add_lot(
    session: Session,
    name: str,
    spaces: dict[str, int] | None = None,
    *,
    prices: dict[str, tuple[int, int]] | None = None,
    **fields: Any,
) -> Lot:
    """A lot with ``spaces`` = {vehicle_type: count} (labels A1, A2, ...) and its prices."""
    spaces = spaces if spaces is not None else {VehicleType.CAR.value: 10}
    values: dict[str, Any] = {
        "address": "",
        "latitude": 52.52,
        "longitude": 13.405,
        "country": "DE",
        "city": "Berlin",
        "capacity": sum(spaces.values()),
    }
    values.update(fields)
    lot = Lot(name=name, **values)
    session.add(lot)
    session.flush()
    for vtype, (hourly, cap) in (prices or DEFAULT_PRICES).items():
        session.add(
            LotPrice(lot_id=lot.id, vehicle_type=vtype, hourly_cents=hourly, daily_cap_cents=cap)
        )
    n = 0
    for vtype, count in spaces.items():
        for _ in range(count):
            n += 1
            session.add(Space(lot_id=lot.id, label=f"A{n}", vehicle_type=vtype, active=True))
    session.flush()
    return lot


def demo_data(session: Session) -> dict[str, Any]:
    """The demo lot, a customer, its operator and device; the caller commits."""
    lot = add_lot(
        session,
        "Demo Lot Mitte",
        {"car": 24, "ev": 2, "motorcycle": 2, "accessible": 1, "van": 1},
        address="Alexanderplatz 1, Berlin",
        # early exit is credited pro rata minus a small fee, so the demo shows a refund
        early_exit_policy=EarlyExitPolicy.PRO_RATA_MINUS_FEE.value,
        early_exit_fee_cents=50,
    )
    users = [
        add_user(session, "customer@demo.parkgate.test", Role.CUSTOMER, name="Demo Customer"),
        add_user(session, "operator@demo.parkgate.test", Role.OPERATOR, lots=(lot.id,)),
        add_user(session, f"gate-{lot.id}@demo.parkgate.test", Role.DEVICE, lots=(lot.id,)),
        add_user(session, "admin@demo.parkgate.test", Role.ADMIN),
    ]
    session.flush()
    _demo_policy(session, lot, users[1].user)
    spaces = session.scalars(select(Space).where(Space.lot_id == lot.id).order_by(Space.id))
    return {
        "lots": [
            {
                "id": lot.id,
                "name": lot.name,
                "spaces": [
                    {"id": s.id, "label": s.label, "vehicle_type": s.vehicle_type} for s in spaces
                ],
            }
        ],
        "users": [{"email": u.user.email, "role": u.user.role, "token": u.token} for u in users],
    }


def _demo_policy(session: Session, lot: Lot, operator: User) -> None:
    """The demo lot's tariff (hourly by day, cheaper at night, capped per day, Berlin time) and
    a staff permit, set as its operator would through the API."""
    now = utcnow()
    policy = current_policy(session, lot.id)
    night = TariffBand(name="night", start=time(22), end=time(6), rate_cents=100)
    car = VehicleTariff(rate_cents=250, free_minutes=10, daily_max_cents=2000, bands=(night,))
    vehicles = {**policy.tariff.vehicles, "car": car}
    tariff = policy.tariff.model_copy(update={"timezone": "Europe/Berlin", "vehicles": vehicles})
    set_policy(session, lot.id, {**policy.to_wire(), "tariff": tariff}, actor=operator, now=now)
    permit = EntryIn(
        plate=DEMO_PERMIT_PLATE,
        kind=ListKind.ALLOW,
        category=AccessCategory.STAFF,
        note="Demo staff permit: enters without a booking",
    )
    add_entry(session, lot.id, permit, actor=operator, now=now)
