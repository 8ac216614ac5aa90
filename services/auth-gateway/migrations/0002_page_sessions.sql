-- Signing in to the Accounts page: single-use page links and the browser sessions they open.
-- Neither the link nor the session id is stored, only its SHA-256 (like the OAuth state): a
-- copy of this table opens nothing.
CREATE TABLE page_links (
    link_hash text PRIMARY KEY,
    workspace_id uuid NOT NULL,
    -- The `sub` of the token that minted the link; the session and its tokens carry it on.
    subject text NOT NULL,
    -- The account the page opens at, if the link names one.
    account_id uuid,
    created_at timestamptz NOT NULL DEFAULT now(),
    expires_at timestamptz NOT NULL,
    used_at timestamptz
);
CREATE INDEX page_links_expiry ON page_links (expires_at);

CREATE TABLE page_sessions (
    session_hash text PRIMARY KEY,
    workspace_id uuid NOT NULL,
    subject text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    expires_at timestamptz NOT NULL
);
CREATE INDEX page_sessions_expiry ON page_sessions (expires_at);

-- Read-model additions for the page.
-- The platform's last refusal stays after a reconnect (status_detail is cleared), and the
-- refresher's own words for an unavoidable expiry.
ALTER TABLE accounts
    ADD COLUMN last_error text,
    ADD COLUMN last_error_at timestamptz,
    ADD COLUMN expiring_reason text;

-- One row per incident: the account went from healthy to needs_reconnect.
CREATE TABLE account_incidents (
    account_id uuid NOT NULL,
    started_at timestamptz NOT NULL,
    cause text NOT NULL,
    PRIMARY KEY (account_id, started_at)
);

-- Posts that waited for an account, from the publisher's events (the gateway never reads the
-- publisher's tables). `changed_at` is the occurred_at of the event that set `state`, so events
-- of one post that arrive out of order (each kind has its own consumer) never step it back.
-- A post that went out without ever waiting is kept as a tombstone (parked_at NULL) for a day,
-- so its PostFailed arriving late cannot mark it waiting again.
CREATE TABLE account_posts (
    post_id uuid PRIMARY KEY,
    account_id uuid NOT NULL,
    state text NOT NULL CHECK (state IN ('waiting', 'retrying', 'published', 'dead_lettered')),
    changed_at timestamptz NOT NULL,
    -- When it was first parked for an auth failure; NULL for a post that never waited.
    parked_at timestamptz
);
CREATE INDEX account_posts_account ON account_posts (account_id, state);
CREATE INDEX account_posts_changed ON account_posts (changed_at) WHERE state IN ('published', 'dead_lettered');
