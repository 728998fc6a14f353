-- Consent records and mandates, disclosures, access rules' versions, settings, audit log.

CREATE TABLE consents (
    id          TEXT PRIMARY KEY,
    person_id   TEXT NOT NULL REFERENCES persons (id),
    version     BIGINT NOT NULL,
    doc         TEXT NOT NULL
);
CREATE INDEX consents_person ON consents (person_id, id);

CREATE TABLE mandates (
    id          TEXT PRIMARY KEY,
    person_id   TEXT NOT NULL REFERENCES persons (id),
    version     BIGINT NOT NULL,
    doc         TEXT NOT NULL
);
CREATE INDEX mandates_person ON mandates (person_id, id);

CREATE TABLE disclosures (
    partner_id  TEXT NOT NULL,
    item        TEXT NOT NULL,
    person_id   TEXT NOT NULL,
    category    TEXT NOT NULL,
    first_at    BIGINT NOT NULL,
    last_at     BIGINT NOT NULL,
    doc         TEXT NOT NULL,
    PRIMARY KEY (partner_id, item)
);
CREATE INDEX disclosures_person ON disclosures (person_id);

CREATE TABLE rules (
    version     BIGINT PRIMARY KEY,
    text        TEXT NOT NULL,
    author      TEXT NOT NULL,
    comment     TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    restores    BIGINT
);

CREATE TABLE settings (
    key         TEXT PRIMARY KEY,
    doc         TEXT NOT NULL
);

CREATE TABLE audit (
    seq         BIGINT PRIMARY KEY,
    at          BIGINT NOT NULL,
    person_id   TEXT,
    doc         TEXT NOT NULL,
    prev_hash   TEXT NOT NULL,
    hash        TEXT NOT NULL
);
CREATE INDEX audit_person ON audit (person_id, seq);
CREATE INDEX audit_at ON audit (at);

CREATE TABLE audit_anchor (
    id          INTEGER PRIMARY KEY CHECK (id = 1),
    seq         BIGINT NOT NULL,
    hash        TEXT NOT NULL,
    purged_at   BIGINT NOT NULL
);
