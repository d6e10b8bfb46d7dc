"""SQLite connections for :mod:`gate_agent.store`: one writer behind a lock, a reader per thread.

Private to the store package (the only code that owns SQLite).

- Every write goes through :meth:`Connections.write`: the writer connection, held under a lock,
  inside ``BEGIN IMMEDIATE … COMMIT``. WAL mode with ``synchronous=FULL`` makes every commit fsync
  the WAL before it returns, so a returned write is on disk.
- Reads use one connection per thread (:meth:`Connections.read`), each inside a deferred read
  transaction so a multi-query read sees one snapshot. In WAL mode readers never wait for the
  writer, so a lane looking up a plate does not queue behind another lane's fsync or a sync
  snapshot. ``":memory:"`` databases cannot be shared between connections; there reads use the
  writer connection under the same lock.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

__all__ = ["PAGE_SIZE", "Connections"]

log = logging.getLogger(__name__)

MEMORY = ":memory:"
MMAP_BYTES = 1 << 30  # readers map the file: a page read is a memory access, not a syscall
WRITER_CACHE_KIB = 64 * 1024  # keeps the plate-key index hot during bulk loads
PAGE_SIZE = 1024  # B; a commit writes whole pages to the WAL (bench disk_writes)
REWRITE_MAX_BYTES = 64 << 20  # bigger files keep their page size (start-up time); see below


def _files_of(db: Path) -> list[Path]:
    """The database file and its WAL, those that exist."""
    return [p for p in (db, db.with_name(db.name + "-wal")) if p.exists()]


class Connections:
    """The writer connection, per-thread readers, and the lock that serialises writes."""

    def __init__(self, path: str | Path) -> None:
        self.path = str(path)
        self.memory = self.path == MEMORY
        self._lock = threading.RLock()
        self._local = threading.local()
        self._readers: list[sqlite3.Connection] = []
        self._closed = False
        self.writer = self._connect()
        self.writer.execute(f"PRAGMA page_size={PAGE_SIZE}")  # takes effect on a new file
        if not self.memory:
            self._use_small_pages()
            mode = self.writer.execute("PRAGMA journal_mode=WAL").fetchone()[0]
            if mode != "wal":
                log.warning("could not switch %s to WAL (mode %s)", self.path, mode)
        self.writer.execute("PRAGMA synchronous=FULL")
        self.writer.execute(f"PRAGMA cache_size=-{WRITER_CACHE_KIB}")

    def _use_small_pages(self) -> None:
        """Rewrite a file made with other pages (SQLite's default is 4 KB) with ``PAGE_SIZE``
        ones: a journal commit writes about six whole pages to the WAL, so 1 KB pages write a
        quarter of the bytes to the SD card (``python -m bench disk_writes``; the lookup's
        targets still pass, ``python -m bench lookup``). A WAL file's page size cannot change:
        out of WAL, ``VACUUM``, back to WAL (below). Before any reader exists, so at start-up;
        a file over ``REWRITE_MAX_BYTES`` is left as it is (the rewrite could outlast systemd's
        start timeout) with a warning saying how to convert it by hand."""
        size = self.writer.execute("PRAGMA page_size").fetchone()[0]
        if size == PAGE_SIZE:
            return
        stored = sum(p.stat().st_size for p in _files_of(Path(self.path)))
        if stored > REWRITE_MAX_BYTES:
            log.warning(
                "%s has %d B pages, not %d B (with 4 KB pages a commit writes up to 4x the "
                "bytes); at %d MB it is too big to rewrite at start-up: stop the agent and "
                "convert it (docs/operator-guide.md, 'Page size')",
                self.path,
                size,
                PAGE_SIZE,
                stored >> 20,
            )
            return
        log.info("rewriting %s with %d B pages (was %d B; once)", self.path, PAGE_SIZE, size)
        self.writer.execute("PRAGMA journal_mode=DELETE")
        self.writer.execute(f"PRAGMA page_size={PAGE_SIZE}")
        self.writer.execute("VACUUM")

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        conn.execute("PRAGMA busy_timeout=5000")
        conn.execute("PRAGMA foreign_keys=ON")
        return conn

    @contextmanager
    def write(self) -> Iterator[sqlite3.Connection]:
        """One write transaction, committed (fsync'd) on leaving, rolled back on error."""
        with self._lock:
            self._check_open()
            conn = self.writer
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")

    @contextmanager
    def read(self) -> Iterator[sqlite3.Connection]:
        """A consistent read snapshot on this thread's connection."""
        if self.memory:
            with self._lock:
                self._check_open()
                yield self.writer
            return
        conn = self._reader()
        conn.execute("BEGIN")
        try:
            yield conn
        finally:
            conn.execute("COMMIT")

    def fetch(self, sql: str, args: Sequence[object]) -> list[Any]:
        """Run one read statement (its own snapshot) on this thread's connection: the hot path."""
        if self.memory:
            with self._lock:
                self._check_open()
                return self.writer.execute(sql, args).fetchall()
        conn = getattr(self._local, "conn", None) or self._reader()
        return conn.execute(sql, args).fetchall()

    def checkpoint(self) -> None:
        """Copy the WAL back into the database file after a bulk load (readers then use mmap)."""
        if self.memory:
            return
        with self._lock:
            self._check_open()
            busy, wal_pages, copied = self.writer.execute(
                "PRAGMA wal_checkpoint(PASSIVE)"
            ).fetchone()
            log.debug("checkpoint: busy=%s wal pages=%s copied=%s", busy, wal_pages, copied)

    @contextmanager
    def locked(self) -> Iterator[sqlite3.Connection]:
        """The writer connection under the lock, outside any transaction (migrations)."""
        with self._lock:
            self._check_open()
            yield self.writer

    def _reader(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is not None:
            return conn
        with self._lock:
            self._check_open()
            conn = self._connect()
            conn.execute("PRAGMA query_only=1")
            conn.execute(f"PRAGMA mmap_size={MMAP_BYTES}")
            self._readers.append(conn)
        self._local.conn = conn
        return conn

    @property
    def closed(self) -> bool:
        return self._closed

    def _check_open(self) -> None:
        if self._closed:
            raise sqlite3.ProgrammingError("store is closed")

    def close(self) -> None:
        """Close every connection; safe to call twice."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            for conn in self._readers:
                conn.close()
            self._readers.clear()
            self.writer.close()
