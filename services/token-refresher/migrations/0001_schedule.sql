-- When each account's token is next refreshed, and who holds the lease on it.
CREATE TABLE schedule (
    account_id uuid PRIMARY KEY,
    workspace_id uuid NOT NULL,
    platform text NOT NULL,
    -- active: refreshed when due; broken: the platform refused the refresh, waits for a reconnect;
    -- unrefreshable: nothing to refresh with (no refresh token or no expiry).
    state text NOT NULL CHECK (state IN ('active', 'broken', 'unrefreshable')),
    due_at timestamptz,
    lease_owner text,
    lease_until timestamptz,
    failures integer NOT NULL DEFAULT 0,
    last_error text,
    last_refreshed_at timestamptz,
    credential_version bigint NOT NULL DEFAULT 0,
    updated_at timestamptz NOT NULL DEFAULT now()
);
-- The due query reads only due rows: its cost follows the number due, not the number stored.
CREATE INDEX schedule_due ON schedule (due_at) WHERE state = 'active';

CREATE TABLE outbox (
    id bigserial PRIMARY KEY,
    subject text NOT NULL,
    event_id text NOT NULL,
    payload bytea NOT NULL,
    traceparent text,
    created_at timestamptz NOT NULL DEFAULT now()
);
