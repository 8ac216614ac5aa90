-- A post the publisher queued because the account's posting limit on its platform is spent
-- (PostFailed, rate limited, will retry): 'queued' until it goes out, and when it is due.
ALTER TABLE account_posts DROP CONSTRAINT account_posts_state_check;
ALTER TABLE account_posts ADD CONSTRAINT account_posts_state_check
    CHECK (state IN ('waiting', 'retrying', 'queued', 'published', 'dead_lettered', 'cancelled'));
ALTER TABLE account_posts ADD COLUMN next_attempt_at timestamptz;
