-- The line of the source file each write came from (spreadsheet exports), so that a write the
-- hub refuses is reported at its line; whether a dead letter was reported to the adapter (its
-- errors file); and dead letters set aside by a person, with their reason.
ALTER TABLE outbox ADD COLUMN line INTEGER;
ALTER TABLE dead_letters ADD COLUMN line INTEGER;
ALTER TABLE dead_letters ADD COLUMN reported INTEGER NOT NULL DEFAULT 0;
ALTER TABLE dead_letters ADD COLUMN discarded_at INTEGER;
ALTER TABLE dead_letters ADD COLUMN discard_reason TEXT;

-- Writes of an import in progress, staged in small transactions (the outbox and the feed are
-- not held up by a long import); moved to the outbox in one transaction when the whole file
-- was read, deleted when it was rejected. Left over by a crash: deleted at the next start,
-- and the file (not marked imported) is read again.
CREATE TABLE staged (
    seq         INTEGER PRIMARY KEY AUTOINCREMENT,
    import      TEXT NOT NULL,
    write       TEXT NOT NULL,
    line        INTEGER NOT NULL
) STRICT;
CREATE INDEX staged_import ON staged (import, seq);
