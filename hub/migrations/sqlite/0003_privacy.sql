-- Privacy without side doors.
-- * A flag belongs to the partner that raised it: one active flag per person, code and source
--   partner (another partner raising the same code gets its own, shown once to readers of both).
-- * The end of a record (a consent or mandate that expires, a flag past its valid_until) is
--   applied by the hub's expiry scheduler: `ended` marks a record whose end was applied
--   (redactions sent). Records that expired before this migration are picked up on its first
--   run and redacted then.
-- * Certificates can be revoked one by one (`revoked_at`, kept across suspend and resume) and
--   retired after a grace period (`retire_at`); administrators' certificates carry a name.
-- * Person ids are random from now on; ids given out before stay valid.

ALTER TABLE flags ADD COLUMN source TEXT NOT NULL DEFAULT '';
ALTER TABLE flags ADD COLUMN valid_until TEXT;
UPDATE flags SET source = json_extract(doc, '$.source_partner'),
                 valid_until = json_extract(doc, '$.valid_until');
DROP INDEX flags_one_active;
CREATE UNIQUE INDEX flags_one_active ON flags (person_id, code, source) WHERE active = 1;
CREATE INDEX flags_due ON flags (valid_until) WHERE active = 1 AND valid_until IS NOT NULL;

CREATE INDEX person_pivots_person ON person_pivots (person_id);

ALTER TABLE consents ADD COLUMN expires_at INTEGER;
ALTER TABLE consents ADD COLUMN ended INTEGER NOT NULL DEFAULT 0;
UPDATE consents SET expires_at = json_extract(doc, '$.expires_at'),
                    ended = (json_extract(doc, '$.withdrawal') IS NOT NULL);
CREATE INDEX consents_due ON consents (expires_at) WHERE ended = 0 AND expires_at IS NOT NULL;

ALTER TABLE mandates ADD COLUMN expires_at INTEGER;
ALTER TABLE mandates ADD COLUMN ended INTEGER NOT NULL DEFAULT 0;
UPDATE mandates SET expires_at = json_extract(doc, '$.expires_at'),
                    ended = (json_extract(doc, '$.revocation') IS NOT NULL);
CREATE INDEX mandates_due ON mandates (expires_at) WHERE ended = 0;

ALTER TABLE certificates ADD COLUMN revoked_at INTEGER;
ALTER TABLE certificates ADD COLUMN retire_at INTEGER;
ALTER TABLE certificates ADD COLUMN name TEXT NOT NULL DEFAULT '';
