"""Bulk access lists as CSV: export, and an import that applies every row or none.

Format (UTF-8, a header row, one entry per line; extra columns are refused)::

    plate,kind,category,valid_from,valid_until,note,lanes
    B-PG-101,allow,staff,2026-01-01T00:00:00+01:00,,Facility manager,
    M-XX-99,deny,blocked,,,Stolen,entry-1 entry-2

Empty cells are "not set" (open-ended window, every lane, default category). ``lanes`` is a list
of lane ids separated by spaces or ``;``. Rows are numbered as a spreadsheet shows them (the
header is row 1). An import is pushed to the lot as one ``lists_replaced`` change (the gate then
fetches a snapshot), never one change per row.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from pydantic import ValidationError
from sqlalchemy import delete, func, insert, select
from sqlalchemy.orm import Session

from cloud_api.changes import append_change
from cloud_api.models import User
from cloud_api.policies._access_list import EntryIn, find_entries
from cloud_api.policies._audit import audit
from cloud_api.policies._models import AccessListEntry
from parkgate_protocol import ChangeKind

__all__ = [
    "COLUMNS",
    "MAX_ROW_ERRORS",
    "ImportMode",
    "ImportResult",
    "RowError",
    "export_csv",
    "import_entries",
    "parse_csv",
]

COLUMNS = ("plate", "kind", "category", "valid_from", "valid_until", "note", "lanes")
MAX_ROW_ERRORS = 1000  # reported; the import is refused either way
_INSERT_BATCH = 5000


class ImportMode(StrEnum):
    ADD = "add"  # the rows join the lot's entries
    REPLACE = "replace"  # the rows become the lot's entries (all others are removed)


@dataclass(frozen=True, slots=True)
class RowError:
    row: int
    field: str | None
    msg: str

    def as_dict(self) -> dict[str, Any]:
        return {"row": self.row, "field": self.field, "msg": self.msg}


@dataclass(frozen=True, slots=True)
class ImportResult:
    mode: ImportMode
    added: int
    removed: int


def _cells(record: dict[str, str | None]) -> dict[str, Any]:
    cells: dict[str, Any] = {k: v.strip() for k, v in record.items() if v and v.strip()}
    if "lanes" in cells:
        cells["lanes"] = cells["lanes"].replace(";", " ").split()
    return cells


def _row_errors(row: int, exc: ValidationError) -> list[RowError]:
    out = []
    for error in exc.errors():
        loc = [str(p) for p in error.get("loc", ()) if not isinstance(p, int)]
        out.append(RowError(row, loc[0] if loc else None, str(error.get("msg", ""))))
    return out


def parse_csv(text: str) -> tuple[list[EntryIn], list[RowError]]:
    """Every row as an entry, or the rows' errors (up to :data:`MAX_ROW_ERRORS`)."""
    reader = csv.DictReader(io.StringIO(text), restkey="_extra")
    header = [name.strip() for name in reader.fieldnames or []]
    unknown = [name for name in header if name not in COLUMNS]
    if not header or unknown or "plate" not in header or "kind" not in header:
        detail = f"unknown columns {unknown}" if unknown else "needs at least plate and kind"
        return [], [RowError(1, None, f"header: {detail}; columns are {', '.join(COLUMNS)}")]
    reader.fieldnames = header
    entries: list[EntryIn] = []
    errors: list[RowError] = []
    for number, record in enumerate(reader, start=2):
        if record.pop("_extra", None):
            errors.append(RowError(number, None, "more cells than columns"))
            continue
        try:
            entries.append(EntryIn.model_validate(_cells(record)))
        except ValidationError as exc:
            errors.extend(_row_errors(number, exc))
        if len(errors) >= MAX_ROW_ERRORS:
            break
    return entries, errors[:MAX_ROW_ERRORS]


def import_entries(
    session: Session,
    lot_id: int,
    entries: list[EntryIn],
    mode: ImportMode,
    *,
    actor: User | None,
    now: datetime,
) -> ImportResult:
    """Apply parsed rows in one transaction with one ``lists_replaced`` feed row; the caller
    commits (or rolls back: nothing is then applied)."""
    removed = 0
    if mode is ImportMode.REPLACE:
        removed = (
            session.scalar(
                select(func.count())
                .select_from(AccessListEntry)
                .where(AccessListEntry.lot_id == lot_id)
            )
            or 0
        )
        session.execute(delete(AccessListEntry).where(AccessListEntry.lot_id == lot_id))
    rows = [entry.to_row(lot_id, actor, now) for entry in entries]
    for start in range(0, len(rows), _INSERT_BATCH):
        session.execute(insert(AccessListEntry), rows[start : start + _INSERT_BATCH])
    detail = {"mode": mode.value, "added": len(rows), "removed": removed}
    audit(session, lot_id, actor, "access_list.imported", detail, now)
    append_change(session, lot_id, ChangeKind.LISTS_REPLACED.value, {}, now)
    return ImportResult(mode, len(rows), removed)


def _cell(value: datetime | None) -> str:
    return value.isoformat() if value is not None else ""


def export_csv(session: Session, lot_id: int) -> str:
    """The lot's entries in the import format (importing it with ``replace`` is a no-op but
    for new entry ids)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(COLUMNS)
    for e in find_entries(session, lot_id):
        lanes = " ".join(e.lanes) if e.lanes else ""
        writer.writerow(
            [e.plate, e.kind, e.category, _cell(e.valid_from), _cell(e.valid_until), e.note, lanes]
        )
    return out.getvalue()
