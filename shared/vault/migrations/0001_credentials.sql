-- Credentials of every connected account. Tokens are AES-256-GCM ciphertext (nonce || ct||tag)
-- under the key named by key_id; every write is a compare-and-swap on version.
CREATE TABLE credentials (
    account_id uuid PRIMARY KEY,
    workspace_id uuid NOT NULL,
    platform text NOT NULL,
    platform_user_id text NOT NULL,
    key_id text NOT NULL,
    access_token bytea NOT NULL,
    refresh_token bytea,
    access_expires_at timestamptz,
    refresh_expires_at timestamptz,
    scopes text[] NOT NULL DEFAULT '{}',
    first_granted_at timestamptz NOT NULL,
    version bigint NOT NULL CHECK (version > 0),
    updated_at timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX credentials_workspace ON credentials (workspace_id);
CREATE INDEX credentials_key ON credentials (key_id);
