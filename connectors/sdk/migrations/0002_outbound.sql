-- Deliveries to the partner's system (webhooks) that failed every attempt.
CREATE TABLE outbound_failures (
    seq         INTEGER PRIMARY KEY AUTOINCREMENT,
    target      TEXT NOT NULL,
    event       TEXT NOT NULL,
    reason      TEXT NOT NULL,
    attempts    INTEGER NOT NULL,
    failed_at   INTEGER NOT NULL
) STRICT;
