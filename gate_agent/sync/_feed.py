"""Cloud → lot: reservation changes applied to the store in sequence, with HTTP catch-up.

Private to :mod:`gate_agent.sync`. MQTT is the fast path, ``GET /lots/{lot}/changes`` the source of
truth: a change whose ``seq`` is the next one is applied, an old one is ignored (duplicate), and a
gap makes :class:`ReservationFeed` fetch everything after the last applied seq (a full snapshot
when the cloud says so). The last applied seq is kept in the store's state table, so a restarted
agent resumes where it left off. Every apply is idempotent (upserts by id), so a crash between
applying and saving the seq only replays a change.

Messages that break the contract go to the dead letters (:mod:`gate_agent.sync._dead_letters`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from datetime import UTC, datetime

import httpx

from gate_agent import plates, wire
from gate_agent.domain import Reservation
from gate_agent.store import Store
from gate_agent.sync._dead_letters import DeadLetters
from parkgate_protocol import (
    ChangeKind,
    ChangesPage,
    ListEntrySnapshot,
    ProtocolError,
    ReservationChange,
    ReservationSnapshot,
    parse_changes_page,
)

__all__ = ["SEQ_STATE_KEY", "CatchUpError", "ReservationFeed"]

SEQ_STATE_KEY = "sync.last_applied_seq"  # the store's state key of the last applied seq
MAX_PAGES = 10_000  # one catch-up never loops forever on a misbehaving server

log = logging.getLogger(__name__)


class CatchUpError(Exception):
    """The catch-up did not happen: the network failed or the cloud said no (retry later).

    A page that arrives but breaks the contract is a :class:`ProtocolError` instead.
    """


class ReservationFeed:
    """Applies :class:`ReservationChange`s in seq order and catches up over HTTP.

    Not thread-safe: one thread (the sync worker) calls :meth:`offer` and :meth:`catch_up`.
    """

    def __init__(
        self,
        store: Store,
        lot_id: str,
        dead_letters: DeadLetters,
        *,
        cloud_url: str | None = None,
        device_token: str | None = None,
        transport: httpx.BaseTransport | None = None,
        timeout_s: float = 10.0,
    ) -> None:
        self.store = store
        self.lot_id = lot_id
        self.dead_letters = dead_letters
        self.last_seq = int(store.get_state(SEQ_STATE_KEY, 0))
        self.last_catch_up_at: datetime | None = None
        self._http: httpx.Client | None = None
        if cloud_url:
            headers = {"Authorization": f"Bearer {device_token}"} if device_token else {}
            self._http = httpx.Client(
                base_url=cloud_url.rstrip("/"),
                headers=headers,
                transport=transport,
                timeout=timeout_s,
            )

    @property
    def can_catch_up(self) -> bool:
        return self._http is not None

    def close(self) -> None:
        if self._http is not None:
            self._http.close()

    # -- the MQTT path --------------------------------------------------------------------------

    def offer(self, change: ReservationChange) -> str:
        """Apply one pushed change if it is the next; returns applied, duplicate or gap.

        On ``gap`` nothing is applied: the caller runs :meth:`catch_up` (which fetches this change
        too). With no cloud URL there is no catch-up, so a gap is logged and the change applied.
        """
        self._check_lot(change)
        if change.seq <= self.last_seq and change.kind is not ChangeKind.SNAPSHOT:
            log.debug("change %d already applied (last %d)", change.seq, self.last_seq)
            return "duplicate"
        if change.kind is ChangeKind.SNAPSHOT:
            if change.seq < self.last_seq:
                return "duplicate"
        elif change.seq > self.last_seq + 1:
            if self.can_catch_up:
                log.info("gap: got change %d after %d; catching up", change.seq, self.last_seq)
                return "gap"
            log.warning("gap: change %d after %d and no cloud_url", change.seq, self.last_seq)
        self._apply([change])
        self._save(change.seq)
        return "applied"

    def _check_lot(self, change: ReservationChange) -> None:
        if change.lot_id != self.lot_id:
            raise ProtocolError("wrong_lot", "change is for another lot")

    # -- the HTTP path --------------------------------------------------------------------------

    def catch_up(self, *, full: bool = False) -> int:
        """Fetch and apply everything after the last applied seq; returns the changes applied
        (a snapshot counts its reservations). ``full`` asks for a snapshot."""
        if self._http is None:
            return 0
        started = datetime.now(UTC)
        applied = 0
        since = self.last_seq
        for page_no in range(MAX_PAGES):
            page = self._fetch(since, snapshot=full and page_no == 0)
            if page.snapshot:
                applied += self._apply_snapshot(page.reservations, page.list_entries)
                self._save(page.next_since)
            elif page.changes:
                fresh = [c for c in page.changes if c.seq > self.last_seq]
                if fresh and fresh[0].seq != self.last_seq + 1:
                    raise ProtocolError("invalid", "changes page starts after a gap")
                self._apply(fresh)
                applied += len(fresh)
                self._save(max(self.last_seq, page.next_since))
            if page.next_since >= page.latest_seq or not (page.snapshot or page.changes):
                break
            if page.next_since <= since and not page.snapshot:
                raise ProtocolError("invalid", "changes page made no progress")
            since = page.next_since
        self.last_catch_up_at = started  # the cache has everything the cloud had by then
        log.info("caught up to seq %d (%d applied)", self.last_seq, applied)
        return applied

    def _fetch(self, since: int, *, snapshot: bool) -> ChangesPage:
        assert self._http is not None
        params: dict[str, str | int] = {"since": since}
        if snapshot:
            params["snapshot"] = "true"
        try:
            response = self._http.get(f"/lots/{self.lot_id}/changes", params=params)
        except httpx.HTTPError as exc:
            raise CatchUpError(f"changes request failed: {type(exc).__name__}: {exc}") from exc
        if response.status_code != 200:
            raise CatchUpError(f"changes request answered HTTP {response.status_code}")
        try:
            page = parse_changes_page(response.content)
        except ProtocolError as exc:
            self.dead_letters.add("http:changes", str(exc), response.content)
            raise
        if page.lot_id != self.lot_id:
            raise ProtocolError("wrong_lot", "changes page is for another lot")
        return page

    # -- applying -------------------------------------------------------------------------------

    def _save(self, seq: int) -> None:
        if seq != self.last_seq:
            self.store.set_state(SEQ_STATE_KEY, seq)
            self.last_seq = seq

    def _apply(self, changes: Iterable[ReservationChange]) -> None:
        """Apply in order; runs of upserts go to the store as one batch (last state per id)."""
        upserts: dict[str, Reservation] = {}
        for change in changes:
            self._check_lot(change)
            if change.kind is ChangeKind.UPSERT and change.reservation is not None:
                upserts.pop(change.reservation.id, None)
                upserts[change.reservation.id] = wire.reservation(change.reservation)
                continue
            self._flush(upserts)
            self._apply_one(change)
        self._flush(upserts)

    def _flush(self, upserts: dict[str, Reservation]) -> None:
        if not upserts:
            return
        try:
            self.store.upsert_reservations(list(upserts.values()))
        except ValueError:  # one unusable plate: apply the others one by one
            for reservation in upserts.values():
                what = f"reservation {reservation.id}"
                self._guarded(what, self.store.upsert_reservation, reservation)
        upserts.clear()

    def _guarded(self, what: str, action: Callable[..., object], *args: object) -> None:
        try:
            action(*args)
        except ValueError as exc:
            self.dead_letters.add("apply", f"{what}: {exc}", "")

    def _apply_one(self, change: ReservationChange) -> None:
        kind = change.kind
        if kind is ChangeKind.REMOVE and change.reservation_id is not None:
            self.store.remove_reservation(change.reservation_id)
        elif kind is ChangeKind.LIST_PUT and change.list_entry is not None:
            self._guarded(
                "list entry", self.store.put_list_entry, wire.list_entry(change.list_entry)
            )
        elif kind is ChangeKind.LIST_REMOVE and change.list_entry is not None:
            self.store.remove_list_entry(change.list_entry.plate, change.list_entry.kind)
        elif kind is ChangeKind.SNAPSHOT and change.reservations is not None:
            self._apply_snapshot(change.reservations, change.list_entries)
        elif kind is ChangeKind.UPSERT and change.reservation is not None:
            reservation = wire.reservation(change.reservation)
            self._guarded("reservation", self.store.upsert_reservation, reservation)

    def _apply_snapshot(
        self,
        reservations: list[ReservationSnapshot],
        list_entries: list[ListEntrySnapshot] | None,
    ) -> int:
        """Reservations are swapped atomically; lists (when sent) are reconciled entry by entry."""
        usable = [r for r in reservations if plates.normalise(r.plate)]
        if len(usable) < len(reservations):
            self.dead_letters.add("snapshot", "reservations without a usable plate skipped", "")
        count = self.store.replace_all_reservations(wire.reservation(r) for r in usable)
        if list_entries is not None:
            wanted = {(plates.normalise(e.plate), e.kind): e for e in list_entries}
            for entry in self.store.list_entries():
                if (entry.plate, entry.kind) not in wanted:
                    self.store.remove_list_entry(entry.plate, entry.kind)
            for entry_snapshot in wanted.values():
                self._guarded(
                    "list entry", self.store.put_list_entry, wire.list_entry(entry_snapshot)
                )
        return count
