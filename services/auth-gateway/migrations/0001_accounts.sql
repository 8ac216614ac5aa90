-- Connected accounts and their health (the read model behind the Accounts page).
CREATE TABLE accounts (
    id uuid PRIMARY KEY,
    workspace_id uuid NOT NULL,
    platform text NOT NULL,
    platform_user_id text NOT NULL,
    username text NOT NULL,
    display_name text NOT NULL,
    status text NOT NULL CHECK (status IN ('healthy', 'needs_reconnect')),
    cause text,
    status_detail text,
    status_changed_at timestamptz NOT NULL DEFAULT now(),
    -- The newest credential version this model has seen; failures of older versions are stale.
    credential_version bigint NOT NULL,
    expiring_at timestamptz,
    expiring_credential text,
    connected_at timestamptz NOT NULL DEFAULT now(),
    reconnected_at timestamptz,
    UNIQUE (workspace_id, platform, platform_user_id)
);
CREATE INDEX accounts_workspace ON accounts (workspace_id, connected_at);

-- OAuth authorizations in flight. The state itself is never stored, only its SHA-256, and the
-- PKCE verifier is sealed with the vault key.
CREATE TABLE oauth_sessions (
    state_hash text PRIMARY KEY,
    workspace_id uuid NOT NULL,
    platform text NOT NULL,
    -- Set for a reconnect: the account whose token is being replaced.
    account_id uuid,
    key_id text NOT NULL,
    pkce_verifier bytea,
    created_at timestamptz NOT NULL DEFAULT now(),
    expires_at timestamptz NOT NULL,
    used_at timestamptz
);
CREATE INDEX oauth_sessions_expiry ON oauth_sessions (expires_at);

CREATE TABLE outbox (
    id bigserial PRIMARY KEY,
    subject text NOT NULL,
    event_id text NOT NULL,
    payload bytea NOT NULL,
    traceparent text,
    created_at timestamptz NOT NULL DEFAULT now()
);
