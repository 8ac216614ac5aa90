-- Frequent disconnections: the incident whose notification carried the "frequent
-- disconnections" advice, so the owner gets it once per window, not with every incident.
ALTER TABLE incidents ADD COLUMN frequent_advice boolean NOT NULL DEFAULT false;
CREATE INDEX incidents_account_opened ON incidents (account_id, opened_at);
