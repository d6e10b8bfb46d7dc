"""A lot's access lists: allow and deny entries for plates, with validity windows and lanes.

Each change is one row on the lot's change feed (``list_put`` / ``list_remove`` with the entry's
:class:`ListEntrySnapshot`), in the same transaction. Where an allow and a deny entry of the same
plate overlap (in time and lanes), the deny wins at the gate; :func:`add_entry` says so.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any, Self

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationInfo,
    field_validator,
    model_validator,
)
from sqlalchemy import select
from sqlalchemy.orm import Session

from cloud_api.changes import append_change
from cloud_api.errors import InvalidRequest
from cloud_api.models import User
from cloud_api.plates import normalise_plate
from cloud_api.policies._audit import audit
from cloud_api.policies._models import AccessListEntry
from cloud_api.schemas import Timestamp
from parkgate_protocol import AccessCategory, ChangeKind, ListEntrySnapshot, ListKind

__all__ = [
    "AddedEntry",
    "EntryIn",
    "add_entry",
    "conflicts_of",
    "entry_snapshot",
    "find_entries",
    "new_entry_id",
    "remove_entry",
]

LaneId = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.:-]+$")]


def new_entry_id() -> str:
    return "acl_" + secrets.token_hex(10)


class EntryIn(BaseModel):
    """An access-list entry as the operator sends it (API body, one CSV row)."""

    model_config = ConfigDict(extra="forbid")

    plate: str = Field(..., min_length=1, max_length=32, description="Normalised on the way in.")
    kind: ListKind
    category: AccessCategory | None = Field(
        None, description="staff, resident, permit or blocked; default permit/blocked by kind."
    )
    valid_from: Timestamp | None = None
    valid_until: Timestamp | None = None
    note: str = Field("", max_length=500)
    lanes: list[LaneId] | None = Field(None, min_length=1, max_length=64)

    @field_validator("plate")
    @classmethod
    def _normalised(cls, value: str) -> str:
        try:
            return normalise_plate(value)
        except InvalidRequest as exc:
            raise ValueError(exc.detail) from None

    @field_validator("valid_until")
    @classmethod
    def _after_start(cls, value: datetime | None, info: ValidationInfo) -> datetime | None:
        start = info.data.get("valid_from")
        if value is not None and start is not None and value <= start:
            raise ValueError("valid_until must be after valid_from")
        return value

    @model_validator(mode="after")
    def _category_fits_kind(self) -> Self:
        if self.category is None:
            blocked = self.kind is ListKind.DENY
            self.category = AccessCategory.BLOCKED if blocked else AccessCategory.PERMIT
        elif self.category is AccessCategory.BLOCKED and self.kind is ListKind.ALLOW:
            raise ValueError("category blocked is for deny entries")
        return self

    def to_row(self, lot_id: int, actor: User | None, now: datetime) -> dict[str, Any]:
        return {
            "entry_id": new_entry_id(),
            "lot_id": lot_id,
            "plate": self.plate,
            "kind": self.kind.value,
            "category": self.category.value if self.category else None,
            "valid_from": self.valid_from,
            "valid_until": self.valid_until,
            "note": self.note,
            "lanes": sorted(set(self.lanes)) if self.lanes else None,
            "created_by": actor.id if actor else None,
            "created_at": now,
        }


def entry_snapshot(row: AccessListEntry) -> ListEntrySnapshot:
    return ListEntrySnapshot.model_validate(row, from_attributes=True)


def _overlap(a: AccessListEntry, b: AccessListEntry) -> bool:
    """Whether two entries can both apply to one pass: their windows and lanes meet."""
    if a.valid_until is not None and b.valid_from is not None and a.valid_until <= b.valid_from:
        return False
    if b.valid_until is not None and a.valid_from is not None and b.valid_until <= a.valid_from:
        return False
    return a.lanes is None or b.lanes is None or bool(set(a.lanes) & set(b.lanes))


@dataclass(frozen=True, slots=True)
class AddedEntry:
    entry: AccessListEntry
    conflicts: list[str]  # ids of the other kind's entries of the plate that overlap it

    @property
    def effective(self) -> str:
        """What the gate does where they overlap: a deny beats an allow."""
        return ListKind.DENY.value if self.conflicts else self.entry.kind


def find_entries(session: Session, lot_id: int, plate: str | None = None) -> list[AccessListEntry]:
    stmt = select(AccessListEntry).where(AccessListEntry.lot_id == lot_id)
    if plate is not None:
        stmt = stmt.where(AccessListEntry.plate == plate)
    return list(session.scalars(stmt.order_by(AccessListEntry.plate, AccessListEntry.created_at)))


def conflicts_of(entry: AccessListEntry, others: Iterable[AccessListEntry]) -> list[str]:
    return [
        o.entry_id
        for o in others
        if o.entry_id != entry.entry_id and o.kind != entry.kind and _overlap(entry, o)
    ]


def add_entry(
    session: Session, lot_id: int, body: EntryIn, *, actor: User | None, now: datetime
) -> AddedEntry:
    """Store the entry, push it (``list_put``), audit it; the caller commits."""
    entry = AccessListEntry(**body.to_row(lot_id, actor, now))
    conflicts = conflicts_of(entry, find_entries(session, lot_id, entry.plate))
    session.add(entry)
    snapshot = entry_snapshot(entry)
    detail = {"entry": snapshot.model_dump(mode="json"), "conflicts": conflicts}
    audit(session, lot_id, actor, "access_list.added", detail, now)
    append_change(
        session,
        lot_id,
        ChangeKind.LIST_PUT.value,
        {"list_entry": snapshot.model_dump(mode="json")},
        now,
    )
    return AddedEntry(entry, conflicts)


def remove_entry(
    session: Session, lot_id: int, entry_id: str, *, actor: User | None, now: datetime
) -> AccessListEntry | None:
    """Delete the entry, push its removal (``list_remove``), audit it; None: no such entry."""
    entry = session.get(AccessListEntry, entry_id)
    if entry is None or entry.lot_id != lot_id:
        return None
    snapshot = entry_snapshot(entry).model_dump(mode="json")
    session.delete(entry)
    audit(session, lot_id, actor, "access_list.removed", {"entry": snapshot}, now)
    append_change(session, lot_id, ChangeKind.LIST_REMOVE.value, {"list_entry": snapshot}, now)
    return entry
