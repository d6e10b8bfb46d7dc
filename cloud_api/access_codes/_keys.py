"""A lot's signing keys: made on first use, rotated by an admin, pushed to the lot's gate."""

from __future__ import annotations

import base64
import logging
import secrets
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from cloud_api.access_codes._models import LotAccessKey
from cloud_api.changes import append_change
from cloud_api.errors import NotFound
from cloud_api.models import Lot
from parkgate_protocol import MAX_ACCESS_KEYS, AccessKey, ChangeKind, SigningKey

__all__ = ["DEFAULT_OVERLAP", "rotate_key", "signing_key", "wire_keys"]

log = logging.getLogger(__name__)

DEFAULT_OVERLAP = timedelta(hours=24)  # a rotated-out key is still accepted this long
SECRET_BYTES = 32


def _locked_lot(session: Session, lot_id: int) -> Lot:
    """The lot's row, locked (``FOR UPDATE``): two writers never both make a current key."""
    lot = session.scalars(select(Lot).where(Lot.id == lot_id).with_for_update()).first()
    if lot is None:
        raise NotFound("lot_not_found", f"parking lot {lot_id} not found")
    return lot


def _live(session: Session, lot_id: int, now: datetime) -> list[LotAccessKey]:
    rows = session.scalars(
        select(LotAccessKey).where(LotAccessKey.lot_id == lot_id).order_by(LotAccessKey.id.desc())
    )
    return [k for k in rows if k.retires_at is None or now < k.retires_at]


def _current(session: Session, lot_id: int) -> LotAccessKey | None:
    return session.scalars(
        select(LotAccessKey).where(LotAccessKey.lot_id == lot_id, LotAccessKey.retires_at.is_(None))
    ).first()


def _new_key(session: Session, lot_id: int, now: datetime) -> LotAccessKey:
    count = len(list(session.scalars(select(LotAccessKey.id).where(LotAccessKey.lot_id == lot_id))))
    secret = base64.urlsafe_b64encode(secrets.token_bytes(SECRET_BYTES)).decode().rstrip("=")
    key = LotAccessKey(lot_id=lot_id, kid=f"k{count + 1}", secret=secret, created_at=now)
    session.add(key)
    return key


def signing_key(session: Session, lot_id: int, now: datetime) -> SigningKey:
    """The lot's current key; made (and pushed to the lot) when it has none. The caller
    commits."""
    key = _current(session, lot_id)
    if key is None:
        _locked_lot(session, lot_id)
        key = _current(session, lot_id) or _new_key(session, lot_id, now)
        _push(session, lot_id, now)
        log.info("lot %s: first access-code key %s", lot_id, key.kid)
    return SigningKey(key.kid, _secret_bytes(key.secret))


def rotate_key(
    session: Session, lot_id: int, now: datetime, overlap: timedelta = DEFAULT_OVERLAP
) -> tuple[str, datetime | None]:
    """A new current key; the old one is accepted until ``now + overlap`` (zero: at once, for
    a leaked key). Returns (the new key's id, when the old one retires). The caller commits."""
    _locked_lot(session, lot_id)
    old = _current(session, lot_id)
    retires = None
    if old is not None:
        retires = old.retires_at = now + overlap
    session.flush()
    key = _new_key(session, lot_id, now)
    _push(session, lot_id, now)
    log.info("lot %s: access-code key rotated to %s", lot_id, key.kid)
    return key.kid, retires


def wire_keys(session: Session, lot_id: int, now: datetime) -> list[AccessKey]:
    """Every key the lot accepts codes under now (the newest first), as the wire carries them."""
    live = _live(session, lot_id, now)[:MAX_ACCESS_KEYS]
    return [AccessKey(kid=k.kid, secret=k.secret, retires_at=k.retires_at) for k in live]


def _push(session: Session, lot_id: int, now: datetime) -> None:
    session.flush()
    keys = [k.model_dump(mode="json") for k in wire_keys(session, lot_id, now)]
    append_change(session, lot_id, ChangeKind.ACCESS_KEYS.value, {"access_keys": keys}, now)


def _secret_bytes(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
