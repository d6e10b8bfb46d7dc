"""A lot's policy: the version in force, the fall-back built from the lot's own columns, and a
new version (stored, pushed on the lot's change feed, audited, the lot's columns kept in step).

A lot without a stored policy is in force with version 1 built by :func:`derive_policy` from its
columns (graces, anti-passback, currency, time zone) and its ``lot_prices`` rows (one hourly
vehicle tariff each, capped per day). Every change stores the next version; the highest is in
force. The lot's columns and price rows that a policy owns are rewritten on every change, so
everything that reads them (``GET /parkingLots``) tells the same story.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from cloud_api.changes import append_change
from cloud_api.errors import Conflict, NotFound
from cloud_api.models import Lot, LotPrice, User
from cloud_api.policies._audit import audit
from cloud_api.policies._models import LotPolicyVersion
from parkgate_protocol import (
    ChangeKind,
    LotPolicy,
    Tariff,
    VehicleTariff,
    default_tariff,
)
from parkgate_protocol._tariff import MAX_RATE_CENTS

__all__ = [
    "POLICY_OWNED_COLUMNS",
    "LotFields",
    "StaleVersion",
    "current_policy",
    "derive_policy",
    "lot_fields",
    "policy_diff",
    "set_policy",
]

# Lot columns a policy owns (kept in step with the policy in force).
POLICY_OWNED_COLUMNS = (
    "early_grace_minutes",
    "late_grace_minutes",
    "overstay_grace_minutes",
    "anti_passback",
)
LotFields = Mapping[str, Any]  # the lot columns derive_policy reads, by name


class StaleVersion(Conflict):
    """The version the caller changed is not the one in force any more (HTTP 412)."""


def _zone(name: str) -> str:
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return "UTC"
    return name


def derive_policy(lot: LotFields, prices: Iterable[tuple[str, int, int]]) -> LotPolicy:
    """Version 1 of a lot that never had a policy stored: its columns, and ``prices`` as
    (vehicle type, hourly cents, daily cap cents) rows, each an hourly vehicle tariff."""
    vehicles = {
        vtype: VehicleTariff(
            rate_cents=min(hourly, MAX_RATE_CENTS), daily_max_cents=min(cap, 100 * MAX_RATE_CENTS)
        )
        for vtype, hourly, cap in prices
    }
    vehicles.setdefault("car", default_tariff().vehicles["car"])
    currency = str(lot["currency"] or "EUR").upper()
    tariff = Tariff(
        currency=currency if len(currency) == 3 and currency.isalpha() else "EUR",
        timezone=_zone(str(lot["timezone"] or "UTC")),
        vehicles=vehicles,
    )
    return LotPolicy(
        version=1,
        tariff=tariff,
        **{name: lot[name] for name in POLICY_OWNED_COLUMNS},
    )


def lot_fields(lot: Lot) -> dict[str, Any]:
    names = (*POLICY_OWNED_COLUMNS, "currency", "timezone")
    return {name: getattr(lot, name) for name in names}


def _stored(session: Session, lot_id: int) -> LotPolicyVersion | None:
    return session.scalars(
        select(LotPolicyVersion)
        .where(LotPolicyVersion.lot_id == lot_id)
        .order_by(LotPolicyVersion.version.desc())
        .limit(1)
    ).first()


def current_policy(session: Session, lot_id: int) -> LotPolicy:
    """The policy in force at the lot; ``NotFound`` when there is no such lot."""
    row = _stored(session, lot_id)
    if row is not None:
        return LotPolicy.model_validate(row.body)
    lot = session.get(Lot, lot_id)
    if lot is None:
        raise NotFound("lot_not_found", f"parking lot {lot_id} not found")
    prices = session.execute(
        select(LotPrice.vehicle_type, LotPrice.hourly_cents, LotPrice.daily_cap_cents).where(
            LotPrice.lot_id == lot_id
        )
    ).all()
    return derive_policy(lot_fields(lot), [(v, h, c) for v, h, c in prices])


def policy_at(session: Session, lot_id: int, version: int | None) -> LotPolicy:
    """The lot's policy of ``version`` (what a booking was priced with), else the one in force
    (a booking from before policies were versioned, ``version`` None)."""
    if version is not None:
        row = session.scalars(
            select(LotPolicyVersion).where(
                LotPolicyVersion.lot_id == lot_id, LotPolicyVersion.version == version
            )
        ).first()
        if row is not None:
            return LotPolicy.model_validate(row.body)
    return current_policy(session, lot_id)


def policy_diff(old: LotPolicy, new: LotPolicy) -> dict[str, dict[str, Any]]:
    """The fields that changed, each as ``{"from": ..., "to": ...}`` (wire form)."""
    before, after = old.to_wire(), new.to_wire()
    return {
        name: {"from": before.get(name), "to": value}
        for name, value in after.items()
        if before.get(name) != value and name != "version"
    }


def _hourly(vehicle: VehicleTariff) -> tuple[int, int]:
    """A vehicle tariff's base rate per hour and daily cap, for the lot's price rows."""
    hourly = -(-vehicle.rate_cents * 60 // vehicle.block_minutes)
    cap = vehicle.daily_max_cents
    return hourly, cap if cap is not None else hourly * 24


def _keep_lot_in_step(session: Session, lot: Lot, policy: LotPolicy) -> None:
    for name in POLICY_OWNED_COLUMNS:
        value = getattr(policy, name)
        setattr(lot, name, getattr(value, "value", value))
    lot.currency = policy.tariff.currency
    lot.timezone = policy.tariff.timezone
    session.execute(delete(LotPrice).where(LotPrice.lot_id == lot.id))
    for vtype, vehicle in policy.tariff.vehicles.items():
        hourly, cap = _hourly(vehicle)
        session.add(
            LotPrice(lot_id=lot.id, vehicle_type=vtype, hourly_cents=hourly, daily_cap_cents=cap)
        )


def set_policy(
    session: Session,
    lot_id: int,
    fields: Mapping[str, Any],
    *,
    actor: User | None,
    now: datetime,
    expected_version: int | None = None,
) -> tuple[LotPolicy, dict[str, dict[str, Any]]]:
    """Store ``fields`` (every policy field but ``version``) as the lot's next policy version,
    push it on the lot's change feed and audit the field diff; the caller commits.

    ``pydantic.ValidationError`` for bad values (nothing written); :class:`StaleVersion` when
    ``expected_version`` is given and is not the version in force. The lot's row is locked first
    (``FOR UPDATE``) so two writers cannot both take the same next version.
    """
    lot = session.scalars(select(Lot).where(Lot.id == lot_id).with_for_update()).first()
    if lot is None:
        raise NotFound("lot_not_found", f"parking lot {lot_id} not found")
    old = current_policy(session, lot_id)
    if expected_version is not None and expected_version != old.version:
        raise StaleVersion(
            "stale_version", f"policy version {old.version} is in force, not {expected_version}"
        )
    new = LotPolicy.model_validate({**fields, "version": old.version + 1})
    diff = policy_diff(old, new)
    if _stored(session, lot_id) is None:  # keep the derived v1: bookings were priced with it
        session.add(
            LotPolicyVersion(lot_id=lot_id, version=old.version, body=old.to_wire(), created_at=now)
        )
    session.add(
        LotPolicyVersion(
            lot_id=lot_id,
            version=new.version,
            body=new.to_wire(),
            created_by=actor.id if actor else None,
            created_at=now,
        )
    )
    _keep_lot_in_step(session, lot, new)
    audit(session, lot_id, actor, "policy.updated", {"version": new.version, "changes": diff}, now)
    append_change(session, lot_id, ChangeKind.POLICY.value, {"policy": new.to_wire()}, now)
    return new, diff
