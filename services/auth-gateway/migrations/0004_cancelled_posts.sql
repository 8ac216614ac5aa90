-- A post its workspace cancelled (PostCancelled) no longer waits for the account.
ALTER TABLE account_posts DROP CONSTRAINT account_posts_state_check;
ALTER TABLE account_posts ADD CONSTRAINT account_posts_state_check
    CHECK (state IN ('waiting', 'retrying', 'published', 'dead_lettered', 'cancelled'));
DROP INDEX account_posts_changed;
CREATE INDEX account_posts_changed ON account_posts (changed_at)
    WHERE state IN ('published', 'dead_lettered', 'cancelled');
