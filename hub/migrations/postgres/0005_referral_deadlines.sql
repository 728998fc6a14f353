-- Fiches navettes with deadlines: the day of each open referral's next reminder (its
-- deadline, the day after, then the day after its expiry), so the scheduler finds what is due
-- with one indexed query. Referrals sent before this version keep their due date, if they had
-- one, as their deadline, and expire 30 days after it (the default delay); those whose
-- deadline has already passed are not reminded of it now (no burst of late notices at the
-- upgrade): only their expiry remains. Those without a due date have no reminder.
ALTER TABLE referrals ADD COLUMN due_date TEXT;
ALTER TABLE referrals ADD COLUMN next_reminder TEXT;
UPDATE referrals SET due_date = doc::jsonb ->> 'due_date';
UPDATE referrals
   SET doc = (doc::jsonb || jsonb_build_object('expires_on', to_char(due_date::date + 30, 'YYYY-MM-DD')))::text,
       next_reminder = due_date
 WHERE state IN ('sent', 'acknowledged') AND due_date IS NOT NULL AND due_date >= to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM-DD');
UPDATE referrals
   SET doc = (doc::jsonb || jsonb_build_object(
                  'expires_on', to_char(due_date::date + 30, 'YYYY-MM-DD'),
                  'due_reminded_at', (extract(epoch FROM now()) * 1000000)::bigint,
                  'overdue_notified_at', (extract(epoch FROM now()) * 1000000)::bigint))::text,
       next_reminder = to_char(due_date::date + 31, 'YYYY-MM-DD')
 WHERE state IN ('sent', 'acknowledged') AND due_date IS NOT NULL AND due_date < to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM-DD');
CREATE INDEX referrals_next_reminder ON referrals (next_reminder) WHERE next_reminder IS NOT NULL;
CREATE INDEX referrals_overdue ON referrals (due_date) WHERE state IN ('sent', 'acknowledged');
