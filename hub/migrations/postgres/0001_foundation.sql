-- Foundation (PostgreSQL): the same tables as the SQLite backend. Aggregates are JSON documents
-- (`doc`, text) beside the columns that are searched or constrained; times are microseconds
-- since the Unix epoch (BIGINT), as on the wire of the store behaviour.

CREATE TABLE partners (
    id          TEXT PRIMARY KEY,
    kind        TEXT NOT NULL,
    status      TEXT NOT NULL,
    version     BIGINT NOT NULL,
    doc         TEXT NOT NULL
);

CREATE TABLE certificates (
    fingerprint TEXT PRIMARY KEY,
    partner_id  TEXT REFERENCES partners (id),
    not_after   BIGINT NOT NULL,
    issued_at   BIGINT NOT NULL
);

CREATE TABLE persons (
    id          TEXT PRIMARY KEY,
    created_at  BIGINT NOT NULL
);

CREATE TABLE person_pivots (
    pivot_key   TEXT PRIMARY KEY,
    person_id   TEXT NOT NULL REFERENCES persons (id)
);

CREATE TABLE person_links (
    partner_id  TEXT NOT NULL REFERENCES partners (id),
    local_id    TEXT NOT NULL,
    person_id   TEXT NOT NULL REFERENCES persons (id),
    linked_at   BIGINT NOT NULL,
    PRIMARY KEY (partner_id, local_id)
);
CREATE INDEX person_links_person ON person_links (person_id, partner_id);

CREATE TABLE flags (
    id          TEXT PRIMARY KEY,
    person_id   TEXT NOT NULL REFERENCES persons (id),
    code        TEXT NOT NULL,
    active      BOOLEAN NOT NULL,
    version     BIGINT NOT NULL,
    doc         TEXT NOT NULL
);
CREATE INDEX flags_person ON flags (person_id, id);
CREATE UNIQUE INDEX flags_one_active ON flags (person_id, code) WHERE active;

CREATE TABLE cases (
    id          TEXT PRIMARY KEY,
    person_id   TEXT NOT NULL REFERENCES persons (id),
    owner       TEXT NOT NULL REFERENCES partners (id),
    status      TEXT NOT NULL,
    version     BIGINT NOT NULL,
    doc         TEXT NOT NULL
);
CREATE INDEX cases_owner ON cases (owner, id);
CREATE INDEX cases_person ON cases (person_id, id);

CREATE TABLE referrals (
    id           TEXT PRIMARY KEY,
    case_id      TEXT NOT NULL REFERENCES cases (id),
    person_id    TEXT NOT NULL REFERENCES persons (id),
    from_partner TEXT NOT NULL REFERENCES partners (id),
    to_partner   TEXT NOT NULL REFERENCES partners (id),
    state        TEXT NOT NULL,
    version      BIGINT NOT NULL,
    doc          TEXT NOT NULL
);
CREATE INDEX referrals_from ON referrals (from_partner, id);
CREATE INDEX referrals_to ON referrals (to_partner, id);
CREATE INDEX referrals_person ON referrals (person_id);

CREATE TABLE idempotency (
    principal   TEXT NOT NULL,
    request_id  TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    response    TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    PRIMARY KEY (principal, request_id)
);

-- Positions come from an identity sequence; write transactions commit in position order (see
-- the advisory lock in hub/src/store/postgres.rs), so readers never pass a late commit.
CREATE TABLE changes (
    position     BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    committed_at BIGINT NOT NULL,
    kind         TEXT NOT NULL,
    person_id    TEXT NOT NULL,
    principal    TEXT NOT NULL,
    agent        TEXT NOT NULL,
    doc          TEXT NOT NULL
);
