"""A lot's catch-up page while bookings commit (``cloud_api.lot_sync.changes_page``), on
PostgreSQL: read committed lets a change committed between the page's two reads (the head,
then the rows) into the rows. The whole-chain chaos test found it as a 500 from
``GET /lots/{id}/changes`` ("next_since is past latest_seq") and a failed catch-up."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import event
from sqlalchemy.orm import Session

from cloud_api.changes import append_change
from cloud_api.db import make_engine, make_sessionmaker
from cloud_api.lot_sync import changes_page
from cloud_api.migrate import upgrade
from cloud_api.seed import add_lot

pytestmark = pytest.mark.integration

NOW = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
SNAPSHOT = {
    "id": "bk_x",
    "plate": "AB123CD",
    "starts_at": NOW.isoformat(),
    "ends_at": NOW.isoformat(),
    "status": "confirmed",
}


def test_a_change_committed_between_the_head_and_the_rows_waits_for_the_next_page(
    postgres_db: str,
) -> None:
    upgrade(postgres_db)
    engine = make_engine(postgres_db)
    sessions = make_sessionmaker(engine)
    with sessions.begin() as s:
        lot_id = add_lot(s, "Race", {"car": 1}).id
        for _ in range(3):
            append_change(s, lot_id, "created", SNAPSHOT, NOW)
    raced: list[int] = []

    def commit_one_more(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if raced or "lots.change_seq" not in statement:
            return
        raced.append(1)  # another API process books in the lot now, after the head was read
        with sessions.begin() as other:
            append_change(other, lot_id, "created", SNAPSHOT, NOW)

    event.listen(engine, "after_cursor_execute", commit_one_more)
    try:
        with Session(engine) as reader:
            page = changes_page(reader, lot_id, since=1, snapshot=False, limit=100)
    finally:
        event.remove(engine, "after_cursor_execute", commit_one_more)
    assert raced and page is not None
    assert (page.latest_seq, page.next_since) == (3, 3)
    assert [c.seq for c in page.changes] == [2, 3]
    with sessions() as s:
        after = changes_page(s, lot_id, since=page.next_since, snapshot=False, limit=100)
    assert after is not None and [c.seq for c in after.changes] == [4]
    engine.dispose()
