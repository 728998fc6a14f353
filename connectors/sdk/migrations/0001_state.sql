-- A connector's local state: where it is in the hub's feed, the writes waiting for the hub,
-- the writes the hub refused, the hub ids of the partner's cases, the local copies of what it
-- received, and the source files already imported.

CREATE TABLE cursor (
    id          INTEGER PRIMARY KEY CHECK (id = 1),
    position    INTEGER NOT NULL
) STRICT;

-- Writes in the order they were made; each keeps the request id it was given when made, so a
-- retry is recognised by the hub and applied once.
CREATE TABLE outbox (
    seq         INTEGER PRIMARY KEY AUTOINCREMENT,
    request_id  TEXT NOT NULL,
    write       TEXT NOT NULL,
    source      TEXT NOT NULL,
    attempts    INTEGER NOT NULL DEFAULT 0,
    last_error  TEXT,
    created_at  INTEGER NOT NULL
) STRICT;

CREATE TABLE dead_letters (
    seq         INTEGER PRIMARY KEY,
    request_id  TEXT NOT NULL,
    write       TEXT NOT NULL,
    source      TEXT NOT NULL,
    code        TEXT NOT NULL,
    reason      TEXT NOT NULL,
    failed_at   INTEGER NOT NULL
) STRICT;

CREATE TABLE case_refs (
    case_ref    TEXT PRIMARY KEY,
    case_id     TEXT NOT NULL,
    version     INTEGER NOT NULL
) STRICT;

CREATE TABLE copies (
    item        TEXT PRIMARY KEY,
    person_id   TEXT NOT NULL,
    position    INTEGER NOT NULL,
    doc         TEXT NOT NULL
) STRICT;

CREATE TABLE imported (
    source      TEXT PRIMARY KEY,
    at          INTEGER NOT NULL
) STRICT;
