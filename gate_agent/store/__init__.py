"""The gate agent's local store: the only code that owns SQLite.

One SQLite file (WAL mode) holds the reservation and allow/deny-list cache, the lot's policy,
presence, the event
journal that doubles as the outbox to the cloud, the audit log of operator actions and the sync
state. Everything goes through :class:`Store`; its records (``JournalEvent``, ``AuditEntry``,
``Reservation``, ...) are the parking vocabulary of :mod:`gate_agent.domain`.

Behind this face, each private module has one reason to change:

- ``_store``: the :class:`Store` verbs, durability and threading rules;
- ``_connections``: the writer connection, per-thread readers, the write lock;
- ``_schema``: the migrations;
- ``_rows``: row <-> record conversions;
- ``_cache``: reservations, allow/deny lists and their plate index;
- ``_lookup`` and ``_filter``: the lane's hot path and the key filter in front of it;
- ``_journal``: the event journal, which is the outbox;
- ``_deliveries``: the outbox's sent and confirmed marks held in memory (no commit of their own);
- ``_presence``: who is inside (anti-passback);
- ``_audit``: operator actions;
- ``_operators``: operator web sessions and the login throttle's counters;
- ``_policy``: the lot's cloud policy in force and the last one refused;
- ``_access_keys``: the keys the lot's booking codes are checked with.
"""

from gate_agent.store._policy import PolicyInForce, RejectedPolicy
from gate_agent.store._presence import PresenceChange
from gate_agent.store._store import Clock, Store

__all__ = ["Clock", "PolicyInForce", "PresenceChange", "RejectedPolicy", "Store"]
