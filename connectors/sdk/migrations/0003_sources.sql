-- Where an adapter is in the partner's source (a watermark per source), and the last status it
-- queued for each of the partner's cases (so a new status becomes the moves to reach it).
CREATE TABLE watermarks (
    source      TEXT PRIMARY KEY,
    value       TEXT NOT NULL
) STRICT;

CREATE TABLE source_statuses (
    case_ref    TEXT PRIMARY KEY,
    status      TEXT NOT NULL
) STRICT;
