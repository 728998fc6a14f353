-- The work queue's weights and procedure catalogue, versioned like the access rules: the
-- newest version is in force (the built-in defaults while there is none); a rollback is a new
-- version restoring an older text.
CREATE TABLE priorities (
    version     BIGINT PRIMARY KEY,
    text        TEXT NOT NULL,
    author      TEXT NOT NULL,
    comment     TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    restores    BIGINT
);

-- Where a person lives: the commune's COG code (INSEE), recorded by a partner that serves
-- them. For the bus's tours, counted per commune; read like identity data.
CREATE TABLE residences (
    person_id   TEXT PRIMARY KEY REFERENCES persons (id),
    commune     TEXT NOT NULL,
    partner_id  TEXT NOT NULL REFERENCES partners (id),
    recorded_at BIGINT NOT NULL
);
CREATE INDEX residences_commune ON residences (commune);

-- How to reach the person: the channels and accommodations they state (never an address or
-- a phone number: a channel names the partner that holds the contact details). One profile per
-- person, a data category of its own (accessibility).
CREATE TABLE accessibility_profiles (
    person_id   TEXT PRIMARY KEY REFERENCES persons (id),
    version     BIGINT NOT NULL,
    doc         TEXT NOT NULL
);

