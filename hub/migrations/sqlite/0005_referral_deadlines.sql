-- Fiches navettes with deadlines: the day of each open referral's next reminder (its
-- deadline, the day after, then the day after its expiry), so the scheduler finds what is due
-- with one indexed query. Referrals sent before this version keep their due date, if they had
-- one, as their deadline, and expire 30 days after it (the default delay); those whose
-- deadline has already passed are not reminded of it now (no burst of late notices at the
-- upgrade): only their expiry remains. Those without a due date have no reminder.
ALTER TABLE referrals ADD COLUMN due_date TEXT;
ALTER TABLE referrals ADD COLUMN next_reminder TEXT;
UPDATE referrals SET due_date = json_extract(doc, '$.due_date');
UPDATE referrals
   SET doc = json_set(doc, '$.expires_on', date(due_date, '+30 days')),
       next_reminder = due_date
 WHERE state IN ('sent', 'acknowledged') AND due_date IS NOT NULL AND due_date >= date('now');
UPDATE referrals
   SET doc = json_set(doc,
                      '$.expires_on', date(due_date, '+30 days'),
                      '$.due_reminded_at', CAST((julianday('now') - 2440587.5) * 86400000000 AS INTEGER),
                      '$.overdue_notified_at', CAST((julianday('now') - 2440587.5) * 86400000000 AS INTEGER)),
       next_reminder = date(due_date, '+31 days')
 WHERE state IN ('sent', 'acknowledged') AND due_date IS NOT NULL AND due_date < date('now');
CREATE INDEX referrals_next_reminder ON referrals (next_reminder) WHERE next_reminder IS NOT NULL;
CREATE INDEX referrals_overdue ON referrals (due_date) WHERE state IN ('sent', 'acknowledged');
