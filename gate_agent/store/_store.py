"""The local store's verbs: :class:`Store`, re-exported by :mod:`gate_agent.store`.

One SQLite file (WAL mode) holds the reservation and allow/deny-list cache, presence (who is
inside), the event journal that doubles as the outbox, the audit log of operator actions, and the
sync state. The schema comes from sqlite-utils migrations (:mod:`gate_agent.store._schema`),
applied on open; the private modules beside this one hold the SQL, this one the verbs.

Durability: the journal is committed BEFORE the barrier pulse. Every write transaction runs with
``synchronous=FULL``, so :meth:`Store.record_pass` returns only once the event and its presence
change are fsync'd; the lane then pulses. An opening is therefore never unrecorded: a crash or
SIGKILL between commit and pulse leaves at worst a journaled entry whose barrier did not move (the
driver reports the fault, the operator sees both), whereas pulse-then-commit could let a car in
with no trace and no presence for anti-passback. The cost is one fsync on the frame→command path;
``make bench`` (``bench/lookup.py``) measures it (``record_pass`` p50/p99: about 0.3 ms / 1-4 ms
on the development VM's disk).

What follows a pass costs the SD card no commit of its own (``python -m bench disk_writes``):
the broker's PUBACK is kept in memory only, and the cloud's confirmation is applied in memory at
once and written with the store's next write transaction, in practice the next car's journal
commit (:mod:`gate_agent.store._deliveries`). A crash loses at most those marks, so the events
are published again after the restart, and the cloud deduplicates them on ``event_id``.

Threads: lanes, the web server and the sync client share one ``Store``. Writes are serialised on
one writer connection under a lock (SQLite has one writer anyway); reads use one connection per
thread inside a read transaction, so in WAL mode a lookup never waits for another thread's
commit or fsync (:mod:`gate_agent.store._connections`). ``":memory:"`` (unit tests) shares the
writer connection for reads under the same lock. A thread's reader connection lives until
:meth:`Store.close`. Bulk loads commit in chunks (``upsert_reservations``) so a lane's journal
commit waits at most one chunk.

The hot path, :meth:`Store.facts_for`, is in :mod:`gate_agent.store._lookup`: fixed SQL on the
raw ``sqlite3`` cursor, no sqlite-utils introspection.

Lookups: an in-memory key filter (:mod:`gate_agent.store._filter`) in front of the plate index
lets an unknown car's lookup skip its index seeks. It learns every key this ``Store`` writes and
is rebuilt from the index on open and after snapshots, so the cache must be written through one
``Store`` per database file (the agent's); other processes may read the file but not write it.

Privacy: :meth:`Store.purge_reads` blanks plate text of every event past retention (confirmed
or not) and :meth:`Store.trim_events` deletes confirmed events past their history period; the
``plate_hasher`` seam (identity by default) is applied to plate text written to the journal.
"""

from __future__ import annotations

import json
import logging
import sqlite3
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from itertools import islice
from pathlib import Path
from typing import Any

from sqlite_utils import Database

from gate_agent import plates
from gate_agent.domain import (
    AuditEntry,
    CandidateFacts,
    CharOdds,
    EventKind,
    JournalEvent,
    ListEntry,
    ListKind,
    Presence,
    Reservation,
    ReservationStatus,
    StayKind,
    StayPayment,
)
from gate_agent.store import _access_keys as keys_sql
from gate_agent.store import _audit as audit_sql
from gate_agent.store import _cache as cache
from gate_agent.store import _journal as journal_sql
from gate_agent.store import _lookup as lookup_sql
from gate_agent.store import _operators as operators_sql
from gate_agent.store import _policy as policy_sql
from gate_agent.store import _presence as presence_sql
from gate_agent.store import _stays as stays_sql
from gate_agent.store._connections import Connections
from gate_agent.store._deliveries import Deliveries
from gate_agent.store._filter import KeyFilter
from gate_agent.store._policy import PolicyInForce, RejectedPolicy
from gate_agent.store._presence import PresenceChange
from gate_agent.store._rows import to_text
from gate_agent.store._schema import apply_migrations
from parkgate_protocol import LotPolicy, SigningKey

__all__ = ["Clock", "Store"]

log = logging.getLogger(__name__)

Clock = Callable[[], datetime]
BULK_CHUNK = 5000  # reservations per write transaction in upsert_reservations
TRIM_BATCH = 2000  # confirmed events deleted per write transaction in trim_events
CONFIRM_FLUSH_AT = 256  # confirmations in memory that get a commit of their own


def utc_now() -> datetime:
    return datetime.now(UTC)


def _identity(plate: str) -> str:
    return plate


def _keys_of(plate_texts: Iterable[str]) -> Iterator[str]:
    for text in plate_texts:
        yield from plates.index_keys(plates.normalise(text))


def _load_filter(conn: sqlite3.Connection) -> KeyFilter:
    """A filter over every key in ``plate_keys`` (a scan: at start-up and after snapshots)."""
    count = conn.execute("SELECT count(*) FROM plate_keys").fetchone()[0]
    keys = KeyFilter(count)
    keys.add_all(row[0] for row in conn.execute("SELECT key FROM plate_keys"))
    return keys


def _chunks(items: Iterable[Reservation], size: int) -> Iterator[list[Reservation]]:
    iterator = iter(items)
    while chunk := list(islice(iterator, size)):
        yield chunk


class Store:
    """The local store. ``Store(":memory:")`` for unit tests; close it (or use ``with``)."""

    def __init__(
        self,
        path: str | Path,
        *,
        clock: Clock = utc_now,
        plate_hasher: Callable[[str], str] = _identity,
    ) -> None:
        self._db = Connections(path)
        self._clock = clock
        self._hash = plate_hasher
        self._deliveries = Deliveries(flush_at=CONFIRM_FLUSH_AT)
        with self._db.locked() as conn:
            applied = apply_migrations(Database(conn))
            self._keys = _load_filter(conn)
            self._policy = policy_sql.load(conn)
            self._access_keys = keys_sql.load(conn)
            self._used_up = journal_sql.exited_confirmed_reservations(conn)
        if applied:
            log.info("store %s: applied migrations %s", self._db.path, ", ".join(applied))

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Write the confirmations still in memory, close every connection; safe to call twice."""
        if not self._db.closed:
            try:
                self.flush_confirmations()
            except sqlite3.Error:
                log.exception("confirmations not written at close (they will be sent again)")
        self._db.close()

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """One write transaction (fsync'd on leaving) that also writes the confirmations in
        memory: they ride along with whatever the store commits next."""
        with self._db.locked():  # settled before another write can take them again
            with self._db.write() as conn:
                confirmations = self._deliveries.take()
                journal_sql.write_confirmations(conn, confirmations)
                yield conn
            self._deliveries.settle(confirmations)

    def _rebuild_filter(self) -> None:
        with self._db.locked() as conn:  # no write can add keys while the new filter is built
            self._keys = _load_filter(conn)

    def _stamp(self) -> str:
        return to_text(self._clock())

    # -- reservations ---------------------------------------------------------------------------

    def upsert_reservation(self, reservation: Reservation) -> None:
        self.upsert_reservations([reservation])

    def upsert_reservations(self, reservations: Iterable[Reservation]) -> int:
        """Bulk insert/update, committed every ``BULK_CHUNK`` rows (not atomic as a whole, so a
        long load never holds the writer lock against the lanes' journal commits)."""
        count = 0
        for chunk in _chunks(reservations, BULK_CHUNK):
            with self._write() as conn:
                self._keys.add_all(_keys_of(r.plate for r in chunk))  # before the rows commit
                count += cache.upsert_reservations(conn, chunk, self._stamp())
            if self._used_up:  # the cloud's word has come: no longer ours to remember
                done = {r.id for r in chunk if r.status is not ReservationStatus.CONFIRMED}
                self._used_up -= done
        if count > BULK_CHUNK:
            self._db.checkpoint()
        if self._keys.overfull:
            self._rebuild_filter()
        return count

    def replace_all_reservations(self, reservations: Iterable[Reservation]) -> int:
        """Swap the whole reservation cache for a snapshot, atomically."""
        keys = self._keys

        def noting_keys(items: Iterable[Reservation]) -> Iterator[Reservation]:
            for r in items:  # the live filter learns the new plates before they commit
                keys.add_all(_keys_of([r.plate]))
                yield r

        with self._write() as conn:
            count = cache.replace_reservations(
                conn, _chunks(noting_keys(reservations), BULK_CHUNK), self._stamp()
            )
            self._used_up = journal_sql.exited_confirmed_reservations(conn)
        self._db.checkpoint()
        self._rebuild_filter()  # drop the replaced plates' keys, size it for the new cache
        log.info("reservation snapshot applied: %d reservations", count)
        return count

    def remove_reservation(self, reservation_id: str) -> bool:
        with self._write() as conn:
            removed = cache.remove_reservation(conn, reservation_id)
        self._used_up.discard(reservation_id)
        return removed

    def get_reservation(self, reservation_id: str) -> Reservation | None:
        """The cached reservation (completed if this gate journaled its exit: see facts_for)."""
        with self._db.read() as conn:
            found = cache.get_reservation(conn, reservation_id)
        return None if found is None else self._as_used(found)

    def reservations_for_plate(self, plate: str) -> list[Reservation]:
        with self._db.read() as conn:
            return [self._as_used(r) for r in cache.reservations_for_plate(conn, plate)]

    # -- allow/deny lists -----------------------------------------------------------------------

    def put_list_entry(self, entry: ListEntry) -> None:
        with self._write() as conn:
            self._keys.add_all(_keys_of([entry.plate]))
            cache.put_list_entry(conn, entry, self._stamp())

    def remove_list_entry(self, plate: str, kind: ListKind, entry_id: str | None = None) -> bool:
        """Remove the entry ``entry_id``; without one, every ``kind`` entry of ``plate``."""
        with self._write() as conn:
            return cache.delete_list_entry(conn, plate, kind, entry_id)

    def replace_list_entries(self, entries: Iterable[ListEntry]) -> int:
        """Swap every list entry for a snapshot's, atomically (reservations are kept)."""
        entries = list(entries)
        self._keys.add_all(_keys_of(e.plate for e in entries))  # before the rows commit
        with self._write() as conn:
            count = cache.replace_list_entries(conn, entries, self._stamp())
        if self._keys.overfull:
            self._rebuild_filter()
        log.info("list snapshot applied: %d entries", count)
        return count

    def list_entries(self) -> list[ListEntry]:
        with self._db.read() as conn:
            return cache.list_entries(conn)

    def list_entry_count(self) -> int:
        with self._db.read() as conn:
            return cache.count_list_entries(conn)

    # -- the lot's policy -----------------------------------------------------------------------

    @property
    def policy(self) -> PolicyInForce | None:
        """The cloud policy in force (None until the first one arrives); kept in memory, so the
        lanes read it on every decision for free."""
        return self._policy

    def apply_policy(self, policy: LotPolicy, raw: Mapping[str, Any]) -> PolicyInForce:
        """Put ``policy`` (parsed from ``raw``, as the cloud sent it) in force."""
        with self._write() as conn:
            applied = policy_sql.save(conn, policy, raw, self._clock())
        self._policy = applied
        log.info("lot policy v%d in force", policy.version)
        return applied

    def reject_policy(self, raw: object, reason: str) -> RejectedPolicy:
        """Keep a policy the gate could not apply, with why (the one in force stays)."""
        with self._write() as conn:
            return policy_sql.refuse(conn, raw, reason, self._clock())

    def rejected_policy(self) -> RejectedPolicy | None:
        """The last policy refused, whether or not a newer one was applied since."""
        with self._db.read() as conn:
            return policy_sql.load_rejected(conn)

    def policy_problem(self) -> str | None:
        """Why the newest policy pushed is not in force (None when it is, or none was refused
        since the one in force was applied)."""
        refused = self.rejected_policy()
        if refused is None:
            return None
        current = self._policy
        if current is not None and current.applied_at > refused.rejected_at:
            return None
        shown = "?" if refused.version is None else refused.version
        return f"policy v{shown} rejected: {refused.reason}"[:500]

    # -- booking-code keys ----------------------------------------------------------------------

    @property
    def access_keys(self) -> tuple[SigningKey, ...]:
        """The keys booking codes are checked with (every key the cloud last sent, retired ones
        included: :func:`parkgate_protocol.check_access_code` skips those past their time);
        kept in memory."""
        return self._access_keys

    def replace_access_keys(self, keys: Iterable[SigningKey]) -> int:
        """Keep the set the cloud sent instead of the one kept."""
        keys = tuple(keys)
        with self._write() as conn:
            count = keys_sql.replace(conn, keys, self._clock())
        self._access_keys = keys
        log.info("access-code keys: %s", ", ".join(k.kid for k in keys) or "none")
        return count

    # -- the lookup -----------------------------------------------------------------------------

    def facts_for(
        self,
        read_text: str,
        confidence: float,
        char_confidences: Sequence[float] = (),
        char_odds: Sequence[CharOdds] = (),
    ) -> CandidateFacts:
        """The hot path: match a read against the cache and gather the matched plate's facts.

        The read's evidence (per-character confidences, the OCR's odds) decides fuzzy matches;
        without it every character counts as sure: exact matches only."""
        facts = lookup_sql.lookup(
            self._db.fetch, read_text, confidence, self._keys, char_confidences, char_odds
        )
        if self._used_up and any(r.id in self._used_up for r in facts.reservations):
            facts = replace(facts, reservations=tuple(map(self._as_used, facts.reservations)))
        return facts

    def _as_used(self, reservation: Reservation) -> Reservation:
        """``reservation`` as completed when this gate journaled its exit and the cache still
        says confirmed (the cloud completes a booking on its exit and pushes that back, but a
        lot offline, or a push still on its way, must not let the car in again on a booking
        whose unused time the exit credits)."""
        if reservation.id in self._used_up and reservation.status is ReservationStatus.CONFIRMED:
            return replace(reservation, status=ReservationStatus.COMPLETED)
        return reservation

    # -- presence -------------------------------------------------------------------------------

    def inside(self) -> list[Presence]:
        with self._db.read() as conn:
            return presence_sql.inside(conn)

    def inside_counts(self) -> tuple[int, int]:
        """(cars inside, of them drive-up visitors): the drive-up spaces taken, counted from the
        journaled entries and exits, so the count survives a restart."""
        with self._db.read() as conn:
            return presence_sql.inside_counts(conn)

    def presence_of(self, plate: str) -> Presence | None:
        with self._db.read() as conn:
            return presence_sql.presence_of(conn, plates.normalise(plate))

    def reset_presence(self, plate: str, *, actor: str, reason: str) -> bool:
        """Forget that ``plate`` is inside (anti-passback reset); audited in the same commit."""
        plate = plates.normalise(plate)
        with self._write() as conn:
            was_inside = presence_sql.clear_presence(conn, plate)  # and its stay's payments
            detail = {"plate": self._hash(plate), "was_inside": was_inside}
            audit_sql.audit(conn, self._clock(), actor, "presence_reset", reason, None, detail)
        log.info("presence reset by %s (was inside: %s)", actor, was_inside)
        return was_inside

    # -- journal / outbox -----------------------------------------------------------------------

    def journal(self, event: JournalEvent) -> str:
        """Journal an event with no presence change; returns its event_id."""
        return self.record_pass(event, presence="none")

    def record_pass(
        self,
        event: JournalEvent,
        *,
        presence: PresenceChange = "none",
        stay_kind: StayKind = StayKind.BOOKING,
    ) -> str:
        """Journal ``event`` and apply its presence change in one fsync'd commit.

        ``presence="enter"`` records ``event.plate`` inside (visit id, entry time, reservation,
        the kind of stay); ``"leave"`` clears it (and the stay's payments). Returns the event_id;
        journaling the same event_id twice is a no-op.
        """
        if presence == "enter" and event.plate:
            self._keys.add_all(_keys_of([event.plate]))  # a plate inside is looked up too
        with self._write() as conn:
            journal_sql.insert_event(conn, event, presence, self._clock(), self._hash, stay_kind)
        if event.kind is EventKind.EXIT and event.reservation_id:
            self._used_up.add(event.reservation_id)  # the journal row is its durable record
        return event.event_id

    # -- stay payments --------------------------------------------------------------------------

    def apply_stay_payment(self, payment: StayPayment, plate: str) -> bool:
        """Keep what the cloud says the stay ``payment.stay_id`` has paid; False (nothing kept)
        when no car inside is on that stay (it left: the cloud bills what is left)."""
        with self._write() as conn:
            on_stay = conn.execute(
                "SELECT 1 FROM presence WHERE visit_id = ?", (payment.stay_id,)
            ).fetchone()
            if on_stay is None:
                return False
            stays_sql.put_stay_payment(conn, payment, plates.normalise(plate), self._stamp())
        return True

    def stay_payment(self, stay_id: str) -> StayPayment | None:
        with self._db.read() as conn:
            return stays_sql.stay_payment(conn, stay_id)

    def unsent_events(self, limit: int = 100) -> list[JournalEvent]:
        """The outbox, oldest first (journal order): unconfirmed events not in flight."""
        found: list[JournalEvent] = []
        after = 0
        with self._db.read() as conn:
            while len(found) < limit:
                page = journal_sql.unconfirmed_events(conn, after, limit)
                found += [e for _, e in page if not self._deliveries.in_flight(e.event_id)]
                if len(page) < limit:
                    break
                after = page[-1][0]
        return found[:limit]

    def mark_sent(self, event_ids: Iterable[str]) -> int:
        """Mark events acknowledged by the broker (in memory only: after a restart they are
        published again); returns how many were newly marked."""
        with self._db.read() as conn:
            unconfirmed = journal_sql.unconfirmed_ids(conn, event_ids)
        return self._deliveries.mark_sent(unconfirmed, self._clock())

    def mark_confirmed(self, event_ids: Iterable[str]) -> int:
        """Mark events the cloud confirmed it stored (``EventAck``); returns how many were new.

        In effect at once; written with the next write transaction (or on its own once
        ``CONFIRM_FLUSH_AT`` wait, and on :meth:`close`)."""
        with self._db.read() as conn:
            unconfirmed = journal_sql.unconfirmed_ids(conn, event_ids)
        count = self._deliveries.mark_confirmed(unconfirmed, self._clock())
        if self._deliveries.due:
            self.flush_confirmations()
        return count

    def flush_confirmations(self) -> None:
        """Write the confirmations still in memory now, in one commit (if there are any)."""
        if self._deliveries.unwritten:
            with self._write():
                pass

    def requeue_unconfirmed(self, older_than: timedelta = timedelta(0)) -> int:
        """Put events the broker accepted more than ``older_than`` ago (default: any) but the
        cloud never confirmed back in the outbox, to be published again; returns how many."""
        return self._deliveries.requeue(self._clock() - older_than)

    def outbox_depth(self) -> int:
        """Journaled events the cloud has not confirmed yet (sent or not)."""
        with self._db.read() as conn:
            on_disk = journal_sql.outbox_depth(conn)
        return max(0, on_disk - self._deliveries.unwritten)

    def events(
        self,
        limit: int = 100,
        *,
        plate: str | None = None,
        lane_id: str | None = None,
        kind: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
    ) -> list[JournalEvent]:
        """Journal events newest first, filtered (for the status page); ``until`` is exclusive."""
        wanted = None if plate is None else self._hash(plates.normalise(plate))
        with self._db.read() as conn:
            found = journal_sql.events(
                conn, limit, plate=wanted, lane_id=lane_id, kind=kind, since=since, until=until
            )
        return [self._with_deliveries(event) for event in found]

    def _with_deliveries(self, event: JournalEvent) -> JournalEvent:
        """``event`` with the sent and confirmed marks that are in memory only."""
        if event.confirmed_at is not None:
            return event
        pending = self._deliveries.confirmation(event.event_id)
        if pending is not None:
            return replace(event, sent_at=pending.sent_at, confirmed_at=pending.confirmed_at)
        return replace(event, sent_at=self._deliveries.sent_at(event.event_id))

    def purge_reads(self, older_than: datetime, *, batch: int = TRIM_BATCH) -> int:
        """Blank plate text and image paths of every event older than ``older_than``, confirmed
        or not, and the plates in audit details as old; returns the events blanked.

        An unconfirmed event keeps its place in the outbox and is still sent, without its plate
        (an offline lot must not keep plates past retention). Found by a scan on this thread's
        reader, blanked ``batch`` per commit: a lane's journal commit never waits behind it."""
        count = 0
        after = 0
        while True:
            with self._db.read() as conn:
                seqs = journal_sql.readable_before(conn, older_than, after, batch)
            with self._write() as conn:
                count += journal_sql.purge_reads(conn, seqs, older_than)
                if len(seqs) < batch:
                    audit_sql.forget_plates(conn, older_than)
            if len(seqs) < batch:
                break
            after = seqs[-1]
        if count:
            log.info("purged plate text from %d events", count)
        return count

    def trim_events(self, older_than: datetime, *, batch: int = TRIM_BATCH) -> int:
        """Delete events the cloud confirmed that are older than ``older_than``; returns how
        many. Unconfirmed events are kept. Found by a scan on this thread's reader, deleted
        ``batch`` per commit, so a lane's journal commit never waits behind a long delete."""
        self.flush_confirmations()  # the scan reads the disk
        total = 0
        after = 0
        while True:
            with self._db.read() as conn:
                seqs = journal_sql.confirmed_before(conn, older_than, after, batch)
            if seqs:
                with self._write() as conn:
                    total += journal_sql.trim_confirmed(conn, seqs)
            if len(seqs) < batch:
                return total
            after = seqs[-1]

    # -- audit ----------------------------------------------------------------------------------

    def audit(
        self,
        actor: str,
        action: str,
        reason: str,
        *,
        lane_id: str | None = None,
        detail: dict[str, Any] | None = None,
    ) -> int:
        """Record an operator action (manual open, ...); actor and reason are required."""
        with self._write() as conn:
            return audit_sql.audit(conn, self._clock(), actor, action, reason, lane_id, detail)

    def trim_audit(self, older_than: datetime, *, batch: int = TRIM_BATCH) -> int:
        """Delete audit entries older than ``older_than`` (``batch`` per commit, so a lane's
        journal commit never waits behind a long delete); returns how many."""
        total = 0
        while True:
            with self._write() as conn:
                deleted = audit_sql.trim_before(conn, older_than, batch)
            total += deleted
            if deleted < batch:
                return total

    def audit_log(self, limit: int = 100) -> list[AuditEntry]:
        """Audit entries newest first."""
        with self._db.read() as conn:
            return audit_sql.audit_log(conn, limit)

    # -- operator sessions and login throttling (the web UI) -------------------------------------

    def open_operator_session(self, token_hash: str, username: str, expires: datetime) -> None:
        """Remember a logged-in operator's session (pruning expired ones)."""
        with self._write() as conn:
            operators_sql.open_session(conn, token_hash, username, self._clock(), expires)

    def operator_session(self, token_hash: str) -> str | None:
        """The operator of a live session, or None when unknown, logged out or expired."""
        with self._db.read() as conn:
            return operators_sql.session_user(conn, token_hash, self._clock())

    def close_operator_session(self, token_hash: str) -> bool:
        """Revoke a session (logout); True when it existed."""
        with self._write() as conn:
            return operators_sql.close_session(conn, token_hash)

    def count_login_attempt(
        self, username: str, address: str, window: timedelta
    ) -> tuple[int, timedelta]:
        """Count a login attempt in one statement; returns the attempts of ``username`` from
        ``address`` in the current window (this one included) and the time left in it."""
        now = self._clock()
        with self._write() as conn:
            attempts, started = operators_sql.count_login_attempt(
                conn, username, address, now, now - window
            )
        return attempts, started + window - now

    def clear_login_attempts(self, username: str, address: str) -> None:
        with self._write() as conn:
            operators_sql.clear_login_attempts(conn, username, address)

    # -- sync state -----------------------------------------------------------------------------

    def get_state(self, key: str, default: Any = None) -> Any:
        """A JSON value stored by :meth:`set_state` (e.g. the last applied sequence)."""
        with self._db.read() as conn:
            row = conn.execute("SELECT value FROM state WHERE key = ?", (key,)).fetchone()
        return default if row is None else json.loads(row[0])

    def set_state(self, key: str, value: Any) -> None:
        with self._write() as conn:
            conn.execute(
                "INSERT INTO state (key, value) VALUES (?, ?)"
                " ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                (key, json.dumps(value)),
            )
