-- Consent records and mandates, what was disclosed to whom (for redactions), the access rules'
-- versions, hub settings (the alert plan) and the hash-chained audit log.

CREATE TABLE consents (
    id          TEXT PRIMARY KEY,
    person_id   TEXT NOT NULL REFERENCES persons (id),
    version     INTEGER NOT NULL,
    doc         TEXT NOT NULL
) STRICT;
CREATE INDEX consents_person ON consents (person_id, id);

CREATE TABLE mandates (
    id          TEXT PRIMARY KEY,
    person_id   TEXT NOT NULL REFERENCES persons (id),
    version     INTEGER NOT NULL,
    doc         TEXT NOT NULL
) STRICT;
CREATE INDEX mandates_person ON mandates (person_id, id);

-- Data delivered to a partner that did not write it. A withdrawal redacts exactly these.
CREATE TABLE disclosures (
    partner_id  TEXT NOT NULL,
    item        TEXT NOT NULL,
    person_id   TEXT NOT NULL,
    category    TEXT NOT NULL,
    first_at    INTEGER NOT NULL,
    last_at     INTEGER NOT NULL,
    doc         TEXT NOT NULL,
    PRIMARY KEY (partner_id, item)
) STRICT;
CREATE INDEX disclosures_person ON disclosures (person_id);

-- Every version of the access rules; the newest is in force. A rollback is a new version
-- restoring an older text, so the history is never rewritten.
CREATE TABLE rules (
    version     INTEGER PRIMARY KEY,
    text        TEXT NOT NULL,
    author      TEXT NOT NULL,
    comment     TEXT NOT NULL,
    created_at  INTEGER NOT NULL,
    restores    INTEGER
) STRICT;

CREATE TABLE settings (
    key         TEXT PRIMARY KEY,
    doc         TEXT NOT NULL
) STRICT;

CREATE TABLE audit (
    seq         INTEGER PRIMARY KEY,
    at          INTEGER NOT NULL,
    person_id   TEXT,
    doc         TEXT NOT NULL,
    prev_hash   TEXT NOT NULL,
    hash        TEXT NOT NULL
) STRICT;
CREATE INDEX audit_person ON audit (person_id, seq);
CREATE INDEX audit_at ON audit (at);

-- After retention purges old entries, verification starts from the last purged one.
CREATE TABLE audit_anchor (
    id          INTEGER PRIMARY KEY CHECK (id = 1),
    seq         INTEGER NOT NULL,
    hash        TEXT NOT NULL,
    purged_at   INTEGER NOT NULL
) STRICT;
