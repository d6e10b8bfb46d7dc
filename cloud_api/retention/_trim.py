"""Rows nobody will read again: change-feed rows every gate has applied and no catch-up page can
serve any more, and dead letters past their period."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from cloud_api.lot_sync import CATCH_UP_HORIZON, IngestDeadLetter, LotStatus
from cloud_api.models import Lot, LotChange, OutboxMessage
from cloud_api.outbox import DeadLetter

__all__ = ["trim_change_feed", "trim_dead_letters"]


def trimmable_seq(latest: int, applied: int | None) -> int:
    """The highest seq of a lot's feed that may go: relayed rows up to what the lot reports as
    applied, and only below the catch-up horizon (a lot that far behind gets a snapshot).
    0: nothing (a lot that never reported keeps its feed)."""
    if applied is None:
        return 0
    return max(0, min(applied, latest - CATCH_UP_HORIZON))


def trim_change_feed(session: Session) -> int:
    """Delete ``lot_changes`` rows of every lot up to :func:`trimmable_seq`, relayed ones only."""
    lots = session.execute(
        select(Lot.id, Lot.change_seq, LotStatus.last_applied_seq).outerjoin(
            LotStatus, LotStatus.lot_id == Lot.id
        )
    ).all()
    done = 0
    for lot_id, latest, applied in lots:
        upto = trimmable_seq(latest, applied)
        if upto <= 0:
            continue
        result = session.execute(
            delete(LotChange).where(
                LotChange.lot_id == lot_id,
                LotChange.seq <= upto,
                LotChange.relayed_at.is_not(None),
            )
        )
        done += int(result.rowcount)  # type: ignore[attr-defined]
    return done


def trim_dead_letters(session: Session, cutoff: datetime) -> int:
    """Delete dead letters (outbox and ingest) and dead outbox messages from before ``cutoff``."""
    done = 0
    for stmt in (
        delete(DeadLetter).where(DeadLetter.created_at < cutoff),
        delete(IngestDeadLetter).where(IngestDeadLetter.received_at < cutoff),
        delete(OutboxMessage).where(
            OutboxMessage.dead.is_(True), OutboxMessage.created_at < cutoff
        ),
    ):
        done += int(session.execute(stmt).rowcount)  # type: ignore[attr-defined]
    return done
