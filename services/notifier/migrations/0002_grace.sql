-- A publish failure on a platform whose tokens can be refreshed may heal by itself (the
-- refresher tries one immediate refresh). Its notification waits until notify_after; a refresh
-- that confirms the failure sends it at once, a recovery closes the incident and sends nothing.
ALTER TABLE incidents ADD COLUMN notify_after timestamptz;
ALTER TABLE incidents ADD COLUMN notified_at timestamptz;
UPDATE incidents SET notified_at = opened_at;
CREATE INDEX incidents_pending ON incidents (notify_after)
    WHERE notified_at IS NULL AND closed_at IS NULL;
