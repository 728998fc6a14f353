-- Who holds each mandate (a partner's agent), for the médiateur's sheet.
CREATE TABLE mandate_holders (
    mandate_id  TEXT PRIMARY KEY REFERENCES mandates (id),
    partner_id  TEXT NOT NULL,
    agent       TEXT NOT NULL
) STRICT;
INSERT INTO mandate_holders (mandate_id, partner_id, agent)
SELECT id, json_extract(doc, '$.partner'), json_extract(doc, '$.agent') FROM mandates;
CREATE INDEX mandate_holders_agent ON mandate_holders (partner_id, agent);

-- When each profile was recorded, so that a merge of two records of a person keeps the newer.
ALTER TABLE accessibility_profiles ADD COLUMN recorded_at INTEGER NOT NULL DEFAULT 0;
UPDATE accessibility_profiles SET recorded_at = json_extract(doc, '$.recorded_at');
