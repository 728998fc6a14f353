-- Privacy without side doors (see the SQLite migration of the same name for the why).

ALTER TABLE flags ADD COLUMN source TEXT NOT NULL DEFAULT '';
ALTER TABLE flags ADD COLUMN valid_until TEXT;
UPDATE flags SET source = doc::jsonb ->> 'source_partner',
                 valid_until = doc::jsonb ->> 'valid_until';
DROP INDEX flags_one_active;
CREATE UNIQUE INDEX flags_one_active ON flags (person_id, code, source) WHERE active;
CREATE INDEX flags_due ON flags (valid_until) WHERE active AND valid_until IS NOT NULL;

CREATE INDEX person_pivots_person ON person_pivots (person_id);

ALTER TABLE consents ADD COLUMN expires_at BIGINT;
ALTER TABLE consents ADD COLUMN ended BOOLEAN NOT NULL DEFAULT FALSE;
UPDATE consents SET expires_at = (doc::jsonb ->> 'expires_at')::BIGINT,
                    ended = jsonb_typeof(doc::jsonb -> 'withdrawal') = 'object';
CREATE INDEX consents_due ON consents (expires_at) WHERE NOT ended AND expires_at IS NOT NULL;

ALTER TABLE mandates ADD COLUMN expires_at BIGINT;
ALTER TABLE mandates ADD COLUMN ended BOOLEAN NOT NULL DEFAULT FALSE;
UPDATE mandates SET expires_at = (doc::jsonb ->> 'expires_at')::BIGINT,
                    ended = jsonb_typeof(doc::jsonb -> 'revocation') = 'object';
CREATE INDEX mandates_due ON mandates (expires_at) WHERE NOT ended;

ALTER TABLE certificates ADD COLUMN revoked_at BIGINT;
ALTER TABLE certificates ADD COLUMN retire_at BIGINT;
ALTER TABLE certificates ADD COLUMN name TEXT NOT NULL DEFAULT '';
