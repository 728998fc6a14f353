-- The feed at the cost of entitlement (see the SQLite migration of the same name for the why).
-- Partners a consent or a mandate names are tied to the person too; see the SQLite migration.
CREATE TABLE person_ties (
    person_id   TEXT NOT NULL,
    partner_id  TEXT NOT NULL,
    PRIMARY KEY (person_id, partner_id)
);
INSERT INTO person_ties (person_id, partner_id)
SELECT person_id, doc::jsonb #>> '{grantee,partner}' FROM consents
WHERE doc::jsonb #>> '{grantee,partner}' IS NOT NULL
ON CONFLICT DO NOTHING;
INSERT INTO person_ties (person_id, partner_id)
SELECT c.person_id, p.id FROM consents c JOIN partners p ON p.kind = c.doc::jsonb #>> '{grantee,kind}'
ON CONFLICT DO NOTHING;
INSERT INTO person_ties (person_id, partner_id)
SELECT person_id, doc::jsonb ->> 'partner' FROM mandates WHERE doc::jsonb ->> 'partner' IS NOT NULL
ON CONFLICT DO NOTHING;
CREATE TABLE audience_widened (
    partner_id  TEXT PRIMARY KEY
);

CREATE TABLE change_audience (
    partner_id  TEXT NOT NULL,
    position    BIGINT NOT NULL,
    PRIMARY KEY (partner_id, position)
);
CREATE INDEX change_audience_position ON change_audience (position);
-- A partner newly tied to a person joins the audience of the person's earlier changes.
CREATE INDEX changes_person ON changes (person_id, position);

INSERT INTO change_audience (partner_id, position)
SELECT t.partner_id, c.position
FROM changes c
JOIN (SELECT partner_id, person_id FROM person_links
      UNION SELECT owner, person_id FROM cases
      UNION SELECT from_partner, person_id FROM referrals
      UNION SELECT to_partner, person_id FROM referrals
      UNION SELECT partner_id, person_id FROM person_ties) t ON t.person_id = c.person_id
WHERE c.kind NOT IN ('redacted', 'consent_recorded')
ON CONFLICT DO NOTHING;
INSERT INTO change_audience (partner_id, position)
SELECT principal, position FROM changes WHERE kind NOT IN ('redacted', 'consent_recorded')
ON CONFLICT DO NOTHING;
INSERT INTO change_audience (partner_id, position)
SELECT doc::jsonb #>> '{value,source_partner}', position FROM changes
WHERE kind IN ('flag_raised', 'flag_retracted') AND doc::jsonb #>> '{value,source_partner}' IS NOT NULL
ON CONFLICT DO NOTHING;
INSERT INTO change_audience (partner_id, position)
SELECT doc::jsonb #>> '{value,partner}', position FROM changes WHERE kind = 'redacted'
ON CONFLICT DO NOTHING;
INSERT INTO change_audience (partner_id, position)
SELECT p.partner, c.position
FROM changes c, jsonb_array_elements_text(c.doc::jsonb #> '{value,partners}') AS p (partner)
WHERE c.kind = 'consent_recorded'
ON CONFLICT DO NOTHING;

-- Each replica keeps the principals behind certificates in memory; a change of a partner's
-- status or certificates counts this up in the same transaction, and a replica whose count
-- differs clears its cache before the next lookup (hub/src/store/mod.rs, PrincipalCache).
CREATE TABLE principal_epoch (
    id     INTEGER PRIMARY KEY CHECK (id = 1),
    value  BIGINT NOT NULL
);
INSERT INTO principal_epoch (id, value) VALUES (1, 0);

-- A partner's local ids for a person, in order, without scanning the partner's links: the
-- planner preferred the primary key (partner_id, local_id) to sort, reading every link of the
-- partner (13 ms per summary for the département at 77,000 persons).
DROP INDEX person_links_person;
CREATE INDEX person_links_person ON person_links (person_id, partner_id, local_id);
