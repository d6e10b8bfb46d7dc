"""Cloud → lot: reservation changes applied to the store in sequence, with HTTP catch-up.

Private to :mod:`gate_agent.sync`. MQTT is the fast path, ``GET /lots/{lot}/changes`` the source of
truth: a change whose ``seq`` is the next one is applied, an old one is ignored (duplicate), and a
gap makes :class:`ReservationFeed` fetch everything after the last applied seq (a full snapshot
when the cloud says so). The last applied seq is kept in the store's state table, so a restarted
agent resumes where it left off. Every apply is idempotent (upserts by id), so a crash between
applying and saving the seq only replays a change.

The lot's policy travels on the same feed: a ``policy`` change (or a snapshot's ``policy``) is
put in force in seq order; one this agent cannot apply (a newer schema, a bad value) leaves the
last good one in force, is kept with why (``Store.reject_policy``), journaled as a ``health``
event with reason ``policy_rejected``, and still advances the seq. A ``lists_replaced`` change
(the cloud replaced many list entries at once) is answered with a full snapshot over HTTP; the
store remembers that one is owed until it is applied, so a restart in between still fetches it.

A ``stay_paid`` change is kept by the store for the stay's car inside (a payment for a stay whose
car has left is not kept: the cloud bills what is left) and then told to ``on_stay_paid`` (the
composition root hands the exit lanes' :meth:`~gate_agent.lane.Lane.stay_paid`), so that a car
held at an exit for it is let out without a new read.

An ``access_keys`` change (and a snapshot's ``access_keys``) replaces the booking-code keys the
store keeps: the current key and any being rotated out, each accepted until its retire time.

Messages that break the contract go to the dead letters (:mod:`gate_agent.sync._dead_letters`).
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from typing import Any

import httpx

from gate_agent import plates, wire
from gate_agent.domain import EventKind, JournalEvent, Reservation
from gate_agent.store import Store
from gate_agent.sync._dead_letters import DeadLetters
from parkgate_protocol import (
    AccessKey,
    ChangeKind,
    ChangesPage,
    ListEntrySnapshot,
    ProtocolError,
    ReservationChange,
    ReservationSnapshot,
    parse_changes_page,
    parse_policy,
)
from parkgate_protocol import StayPayment as StayPaymentSnapshot

__all__ = [
    "LISTS_PENDING_KEY",
    "POLICY_REJECTED",
    "SEQ_STATE_KEY",
    "CatchUpError",
    "ReservationFeed",
]

SEQ_STATE_KEY = "sync.last_applied_seq"  # the store's state key of the last applied seq
MAX_PAGES = 10_000  # one catch-up never loops forever on a misbehaving server
POLICY_REJECTED = "policy_rejected"  # the health event's reason for a policy not applied
# set by a lists_replaced change, cleared by the snapshot it asks for: survives a restart between
LISTS_PENDING_KEY = "sync.lists_snapshot_pending"

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
        on_stay_paid: Callable[[str], object] | None = None,
    ) -> None:
        self.store = store
        self._on_stay_paid = on_stay_paid
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
        """Apply one pushed change if it is the next; returns applied, duplicate, gap or
        snapshot.

        On ``gap`` nothing is applied: the caller runs :meth:`catch_up` (which fetches this change
        too). With no cloud URL there is no catch-up, so a gap is logged and the change applied.
        ``snapshot``: the change (``lists_replaced``) was applied and asks for a full snapshot,
        which the caller fetches with ``catch_up(full=True)``.
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
        wants_snapshot = self._apply([change])
        self._save(change.seq)
        if wants_snapshot and self.can_catch_up:
            return "snapshot"
        if wants_snapshot:
            log.warning("change %d replaced the lists and there is no cloud_url", change.seq)
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
        wants_snapshot = full or bool(self.store.get_state(LISTS_PENDING_KEY, False))
        for _ in range(MAX_PAGES):
            page = self._fetch(since, snapshot=wants_snapshot)
            wants_snapshot = False
            if page.snapshot:
                applied += self._apply_snapshot(
                    page.reservations, page.list_entries, page.policy, page.next_since
                )
                self._apply_access_keys(page.access_keys)
                self._save(page.next_since)
                self.store.set_state(LISTS_PENDING_KEY, False)
            elif page.changes:
                fresh = [c for c in page.changes if c.seq > self.last_seq]
                if fresh and fresh[0].seq != self.last_seq + 1:
                    raise ProtocolError("invalid", "changes page starts after a gap")
                wants_snapshot = self._apply(fresh)
                applied += len(fresh)
                self._save(max(self.last_seq, page.next_since))
            if wants_snapshot:  # lists_replaced: the lists come whole in a snapshot
                since = self.last_seq
                continue
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

    def _apply(self, changes: Iterable[ReservationChange]) -> bool:
        """Apply in order; runs of upserts go to the store as one batch (last state per id).
        True when a ``lists_replaced`` change asks for a full snapshot."""
        upserts: dict[str, Reservation] = {}
        wants_snapshot = False
        for change in changes:
            self._check_lot(change)
            if change.kind is ChangeKind.UPSERT and change.reservation is not None:
                upserts.pop(change.reservation.id, None)
                upserts[change.reservation.id] = wire.reservation(change.reservation)
                continue
            self._flush(upserts)
            if change.kind is ChangeKind.LISTS_REPLACED:
                wants_snapshot = True
                self.store.set_state(LISTS_PENDING_KEY, True)  # before the seq is saved
            self._apply_one(change)
        self._flush(upserts)
        return wants_snapshot

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
            entry = change.list_entry
            self.store.remove_list_entry(entry.plate, entry.kind, entry.entry_id)
        elif kind is ChangeKind.SNAPSHOT and change.reservations is not None:
            self._apply_snapshot(
                change.reservations, change.list_entries, change.policy, change.seq
            )
            self._apply_access_keys(change.access_keys)
        elif kind is ChangeKind.POLICY and change.policy is not None:
            self._apply_policy(change.policy, change.seq)
        elif kind is ChangeKind.UPSERT and change.reservation is not None:
            reservation = wire.reservation(change.reservation)
            self._guarded("reservation", self.store.upsert_reservation, reservation)
        elif kind is ChangeKind.STAY_PAID and change.stay_payment is not None:
            self._apply_stay_paid(change.stay_payment)
        elif kind is ChangeKind.ACCESS_KEYS:
            self._apply_access_keys(change.access_keys)

    def _apply_access_keys(self, keys: list[AccessKey] | None) -> None:
        """The booking-code keys the cloud sent replace the ones kept (None: not sent)."""
        if keys is not None:
            self.store.replace_access_keys(wire.signing_key(k) for k in keys)

    def _apply_stay_paid(self, snapshot: StayPaymentSnapshot) -> None:
        kept = self.store.apply_stay_payment(wire.stay_payment(snapshot), snapshot.plate)
        if not kept:
            log.info("stay %s paid, but its car is not inside", snapshot.stay_id)
            return
        log.info("stay %s paid through %s", snapshot.stay_id, snapshot.paid_through.isoformat())
        if self._on_stay_paid is not None:
            self._on_stay_paid(snapshot.stay_id)

    def _apply_snapshot(
        self,
        reservations: list[ReservationSnapshot],
        list_entries: list[ListEntrySnapshot] | None,
        policy: dict[str, Any] | None,
        seq: int,
    ) -> int:
        """The policy first (the rules the snapshot's facts are judged by), then reservations and
        lists (when sent), each swapped atomically."""
        if policy is not None:
            self._apply_policy(policy, seq)
        usable = [r for r in reservations if plates.normalise(r.plate)]
        if len(usable) < len(reservations):
            self.dead_letters.add("snapshot", "reservations without a usable plate skipped", "")
        count = self.store.replace_all_reservations(wire.reservation(r) for r in usable)
        if list_entries is not None:
            entries = [e for e in list_entries if plates.normalise(e.plate)]
            if len(entries) < len(list_entries):
                self.dead_letters.add("snapshot", "list entries without a usable plate skipped", "")
            self.store.replace_list_entries(wire.list_entry(e) for e in entries)
        return count

    def _apply_policy(self, raw: dict[str, Any], seq: int) -> None:
        """Put the policy in force, or keep the last good one and say why not."""
        try:
            policy = parse_policy(raw)
        except ProtocolError as exc:
            self._reject_policy(raw, exc, seq)
            return
        current = self.store.policy
        if current is not None and current.raw == raw:
            return  # the same policy again (a snapshot, a replay): nothing changes
        self.store.apply_policy(policy, raw)

    def _reject_policy(self, raw: dict[str, Any], exc: ProtocolError, seq: int) -> None:
        known = self.store.rejected_policy()
        if known is not None and known.raw == raw and self.store.policy_problem() is not None:
            return  # the same refused policy again (a snapshot): already kept and journaled
        refused = self.store.reject_policy(raw, str(exc))
        current = self.store.policy
        log.error("lot %s: policy of change %d not applied: %s", self.lot_id, seq, exc)
        self.store.journal(
            JournalEvent(
                lot_id=self.lot_id,
                kind=EventKind.HEALTH,
                reason=POLICY_REJECTED,
                detail={
                    "error": exc.reason,
                    "problem": exc.detail,
                    "seq": seq,
                    "policy_version": refused.version,
                    "version_in_force": None if current is None else current.version,
                },
                # the same change replayed (a crash before its seq was saved) journals once
                event_id=uuid.uuid5(uuid.NAMESPACE_URL, f"{self.lot_id}/policy/{seq}").hex,
            )
        )
