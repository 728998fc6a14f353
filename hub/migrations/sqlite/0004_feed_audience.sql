-- The feed at the cost of entitlement.
-- * `change_audience` lists, for each change, the partners it may concern: those tied to its
--   person when it was committed (a link, a case they hold, a referral they sent or received)
--   and its writer; for a redaction or a consent notice, the partners it is meant for. A
--   partner that becomes tied later joins the audience of the person's earlier changes
--   (`widen_audience`). A subscription reads only its partner's rows; the decision is still
--   made at delivery. Written in the transaction that appends the change or makes the tie.
-- * Existing changes get their audience from today's ties (a superset of the ties at the
--   time: delivery decides again).
-- * Audit entries written before this migration for feed events that were scanned and refused
--   (`deliver:<kind>` with decision `deny`) stay in the hash chain, which cannot be rewritten;
--   the access report leaves them out (nothing was asked or given), and retention purges them
--   with the rest. New entries: one per delivered batch per person (`deliver:feed`).
-- Partners a consent or a mandate names are tied to the person too (their audience grows
-- with it); `audience_widened` carries, within one write transaction, the partners whose
-- audience grew behind the head (the committer tells their subscriptions).
CREATE TABLE person_ties (
    person_id   TEXT NOT NULL,
    partner_id  TEXT NOT NULL,
    PRIMARY KEY (person_id, partner_id)
) STRICT, WITHOUT ROWID;
INSERT OR IGNORE INTO person_ties (person_id, partner_id)
SELECT person_id, json_extract(doc, '$.grantee.partner') FROM consents
WHERE json_extract(doc, '$.grantee.partner') IS NOT NULL;
INSERT OR IGNORE INTO person_ties (person_id, partner_id)
SELECT c.person_id, p.id FROM consents c JOIN partners p ON p.kind = json_extract(c.doc, '$.grantee.kind');
INSERT OR IGNORE INTO person_ties (person_id, partner_id)
SELECT person_id, json_extract(doc, '$.partner') FROM mandates WHERE json_extract(doc, '$.partner') IS NOT NULL;
CREATE TABLE audience_widened (
    partner_id  TEXT PRIMARY KEY
) STRICT;

CREATE TABLE change_audience (
    partner_id  TEXT NOT NULL,
    position    INTEGER NOT NULL,
    PRIMARY KEY (partner_id, position)
) STRICT, WITHOUT ROWID;
CREATE INDEX change_audience_position ON change_audience (position);
-- A partner newly tied to a person joins the audience of the person's earlier changes.
CREATE INDEX changes_person ON changes (person_id, position);

INSERT OR IGNORE INTO change_audience (partner_id, position)
SELECT t.partner_id, c.position
FROM changes c
JOIN (SELECT partner_id, person_id FROM person_links
      UNION SELECT owner, person_id FROM cases
      UNION SELECT from_partner, person_id FROM referrals
      UNION SELECT to_partner, person_id FROM referrals
      UNION SELECT partner_id, person_id FROM person_ties) t ON t.person_id = c.person_id
WHERE c.kind NOT IN ('redacted', 'consent_recorded');
INSERT OR IGNORE INTO change_audience (partner_id, position)
SELECT principal, position FROM changes WHERE kind NOT IN ('redacted', 'consent_recorded');
INSERT OR IGNORE INTO change_audience (partner_id, position)
SELECT json_extract(doc, '$.value.source_partner'), position FROM changes
WHERE kind IN ('flag_raised', 'flag_retracted') AND json_extract(doc, '$.value.source_partner') IS NOT NULL;
INSERT OR IGNORE INTO change_audience (partner_id, position)
SELECT json_extract(doc, '$.value.partner'), position FROM changes WHERE kind = 'redacted';
INSERT OR IGNORE INTO change_audience (partner_id, position)
SELECT p.value, c.position FROM changes c, json_each(c.doc, '$.value.partners') p
WHERE c.kind = 'consent_recorded';

-- A partner's local ids for a person, in order, without scanning the partner's links: the
-- planner preferred the primary key (partner_id, local_id) to sort, reading every link of the
-- partner (13 ms per summary for the département at 77,000 persons).
DROP INDEX person_links_person;
CREATE INDEX person_links_person ON person_links (person_id, partner_id, local_id);
