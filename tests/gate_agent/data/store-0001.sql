-- A gate agent store as the shipped migration 0001_initial left it (sqlite3 iterdump), frozen:
-- migrations never change once shipped, so this is what an upgrading lot has on disk.
BEGIN TRANSACTION;
CREATE TABLE "_sqlite_migrations" (
   "id" INTEGER PRIMARY KEY,
   "migration_set" TEXT,
   "name" TEXT,
   "applied_at" TEXT
);
INSERT INTO "_sqlite_migrations" VALUES(1,'gate_agent.store','0001_initial','2026-03-01T00:00:00+00:00');
CREATE TABLE audit (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        at TEXT NOT NULL,
        actor TEXT NOT NULL,
        action TEXT NOT NULL,
        reason TEXT NOT NULL,
        lane_id TEXT,
        detail TEXT NOT NULL DEFAULT '{}'
    );
CREATE TABLE events (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        event_id TEXT NOT NULL UNIQUE,
        lot_id TEXT NOT NULL,
        lane_id TEXT,
        direction TEXT,
        kind TEXT NOT NULL,
        visit_id TEXT,
        plate TEXT,
        read_text TEXT,
        confidence REAL,
        reason TEXT,
        reservation_id TEXT,
        fuzzy INTEGER NOT NULL DEFAULT 0,
        amount_owed_cents INTEGER NOT NULL DEFAULT 0,
        currency TEXT NOT NULL DEFAULT 'EUR',
        occurred_at TEXT NOT NULL,
        image_path TEXT,
        detail TEXT NOT NULL DEFAULT '{}',
        sent_at TEXT
    );
CREATE TABLE list_entries (
        plate TEXT NOT NULL,
        kind TEXT NOT NULL CHECK (kind IN ('allow', 'deny')),
        valid_from TEXT,
        valid_until TEXT,
        note TEXT NOT NULL DEFAULT '',
        updated_at TEXT NOT NULL,
        PRIMARY KEY (plate, kind)
    );
CREATE TABLE plate_keys (
        key TEXT NOT NULL,
        plate TEXT NOT NULL,
        PRIMARY KEY (key, plate)
    ) WITHOUT ROWID;
CREATE TABLE presence (
        plate TEXT PRIMARY KEY,
        visit_id TEXT NOT NULL,
        entered_at TEXT NOT NULL,
        reservation_id TEXT
    );
CREATE TABLE reservations (
        plate TEXT NOT NULL,
        id TEXT NOT NULL UNIQUE,
        starts_at TEXT NOT NULL,
        ends_at TEXT NOT NULL,
        status TEXT NOT NULL,
        amount_owed_cents INTEGER NOT NULL DEFAULT 0,
        currency TEXT NOT NULL DEFAULT 'EUR',
        space_label TEXT,
        updated_at TEXT NOT NULL,
        PRIMARY KEY (plate, id)
    ) WITHOUT ROWID;
CREATE TABLE state (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE UNIQUE INDEX "idx__sqlite_migrations_migration_set_name"
    ON "_sqlite_migrations" ("migration_set", "name");
CREATE INDEX events_unsent ON events(seq) WHERE sent_at IS NULL;
CREATE INDEX events_plate ON events(plate);
CREATE INDEX events_occurred ON events(occurred_at);
DELETE FROM "sqlite_sequence";
COMMIT;
