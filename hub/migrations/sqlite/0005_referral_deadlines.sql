-- Fiches navettes with deadlines: the day of each open referral's next reminder (its
-- deadline, the day after, then the day after its expiry), so the scheduler finds what is due
-- with one indexed query. Referrals sent before this version keep their due date, if they had
-- one, as their deadline; those without have no reminder.
ALTER TABLE referrals ADD COLUMN due_date TEXT;
ALTER TABLE referrals ADD COLUMN next_reminder TEXT;
UPDATE referrals SET due_date = json_extract(doc, '$.due_date');
UPDATE referrals SET next_reminder = due_date
 WHERE state IN ('sent', 'acknowledged') AND due_date IS NOT NULL;
CREATE INDEX referrals_next_reminder ON referrals (next_reminder) WHERE next_reminder IS NOT NULL;
CREATE INDEX referrals_overdue ON referrals (due_date) WHERE state IN ('sent', 'acknowledged');
