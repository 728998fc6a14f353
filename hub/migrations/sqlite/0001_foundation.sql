-- Foundation: partners and their certificates, persons and links, flags, cases, referrals,
-- idempotency keys and the change log. Aggregates are stored as JSON documents (`doc`) beside
-- the columns that are searched or constrained; times are microseconds since the Unix epoch.

CREATE TABLE partners (
    id          TEXT PRIMARY KEY,
    kind        TEXT NOT NULL,
    status      TEXT NOT NULL,
    version     INTEGER NOT NULL,
    doc         TEXT NOT NULL
) STRICT;

-- A certificate names one principal: a partner, or the administrator when partner_id is NULL.
CREATE TABLE certificates (
    fingerprint TEXT PRIMARY KEY,
    partner_id  TEXT REFERENCES partners (id),
    not_after   INTEGER NOT NULL,
    issued_at   INTEGER NOT NULL
) STRICT;

CREATE TABLE persons (
    id          TEXT PRIMARY KEY,
    created_at  INTEGER NOT NULL
) STRICT;

-- Keyed hashes of normalised pivot identities; never the traits themselves.
CREATE TABLE person_pivots (
    pivot_key   TEXT PRIMARY KEY,
    person_id   TEXT NOT NULL REFERENCES persons (id)
) STRICT;

CREATE TABLE person_links (
    partner_id  TEXT NOT NULL REFERENCES partners (id),
    local_id    TEXT NOT NULL,
    person_id   TEXT NOT NULL REFERENCES persons (id),
    linked_at   INTEGER NOT NULL,
    PRIMARY KEY (partner_id, local_id)
) STRICT;
CREATE INDEX person_links_person ON person_links (person_id, partner_id);

CREATE TABLE flags (
    id          TEXT PRIMARY KEY,
    person_id   TEXT NOT NULL REFERENCES persons (id),
    code        TEXT NOT NULL,
    active      INTEGER NOT NULL,
    version     INTEGER NOT NULL,
    doc         TEXT NOT NULL
) STRICT;
CREATE INDEX flags_person ON flags (person_id, id);
-- One active flag per code and person: a second raise returns the first.
CREATE UNIQUE INDEX flags_one_active ON flags (person_id, code) WHERE active = 1;

CREATE TABLE cases (
    id          TEXT PRIMARY KEY,
    person_id   TEXT NOT NULL REFERENCES persons (id),
    owner       TEXT NOT NULL REFERENCES partners (id),
    status      TEXT NOT NULL,
    version     INTEGER NOT NULL,
    doc         TEXT NOT NULL
) STRICT;
CREATE INDEX cases_owner ON cases (owner, id);
CREATE INDEX cases_person ON cases (person_id, id);

CREATE TABLE referrals (
    id           TEXT PRIMARY KEY,
    case_id      TEXT NOT NULL REFERENCES cases (id),
    person_id    TEXT NOT NULL REFERENCES persons (id),
    from_partner TEXT NOT NULL REFERENCES partners (id),
    to_partner   TEXT NOT NULL REFERENCES partners (id),
    state        TEXT NOT NULL,
    version      INTEGER NOT NULL,
    doc          TEXT NOT NULL
) STRICT;
CREATE INDEX referrals_from ON referrals (from_partner, id);
CREATE INDEX referrals_to ON referrals (to_partner, id);
CREATE INDEX referrals_person ON referrals (person_id);

-- AIP-155 request ids: the first result of each write, returned again on a retry.
CREATE TABLE idempotency (
    principal   TEXT NOT NULL,
    request_id  TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    response    TEXT NOT NULL,
    created_at  INTEGER NOT NULL,
    PRIMARY KEY (principal, request_id)
) STRICT;

-- The change log. AUTOINCREMENT: a position is never reused, even after the newest row is
-- deleted, so a subscriber's cursor never points before a new event.
CREATE TABLE changes (
    position     INTEGER PRIMARY KEY AUTOINCREMENT,
    committed_at INTEGER NOT NULL,
    kind         TEXT NOT NULL,
    person_id    TEXT NOT NULL,
    principal    TEXT NOT NULL,
    agent        TEXT NOT NULL,
    doc          TEXT NOT NULL
) STRICT;
