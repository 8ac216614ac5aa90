-- OAuth flows bound to the browser that started them, and confirmed before a new identity is
-- stored in a workspace (docs/accounts-page.md, "Connecting safely").
ALTER TABLE oauth_sessions
    -- SHA-256 of the binding cookie the start response set. NULL only for sessions started
    -- before this migration: their callbacks are refused (the user starts again).
    ADD COLUMN binding_hash text,
    -- After the callback, what waits for the user's decision: `confirm` (a new identity) or
    -- `ask_again` (a permission publishing needs was unticked). The token is single use and
    -- stored only as its SHA-256.
    ADD COLUMN pending_kind text CHECK (pending_kind IN ('confirm', 'ask_again')),
    ADD COLUMN pending_hash text UNIQUE,
    ADD COLUMN pending_expires_at timestamptz,
    -- The grant waiting for confirmation, sealed with the vault key (context names the session),
    -- and the identity it belongs to (not secret). Wiped when decided.
    ADD COLUMN pending_grant bytea,
    ADD COLUMN pending_user_id text,
    ADD COLUMN pending_username text,
    ADD COLUMN pending_display_name text,
    ADD COLUMN decided_at timestamptz;
