-- The publish failure that made a refresh due at once, so the recovery it leads to
-- (TokenRefreshed, AccountReconnected) carries its correlation and causation.
ALTER TABLE schedule ADD COLUMN publish_failed_event text;
ALTER TABLE schedule ADD COLUMN publish_failed_correlation text;
