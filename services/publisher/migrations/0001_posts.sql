-- Posts, their attempts, and dead letters.
CREATE TABLE posts (
    id uuid PRIMARY KEY,
    workspace_id uuid NOT NULL,
    account_id uuid NOT NULL,
    platform text NOT NULL,
    body text NOT NULL,
    idempotency_key text,
    scheduled_at timestamptz NOT NULL,
    status text NOT NULL CHECK (status IN
        ('scheduled', 'publishing', 'published', 'failed_auth', 'retry_requested', 'dead_lettered')),
    -- When the sweep may next take the post (scheduled_at, or later after a failure).
    next_attempt_at timestamptz NOT NULL,
    attempts integer NOT NULL DEFAULT 0,
    -- Failures that count towards the retry budget (transient and ambiguous ones).
    retryable_failures integer NOT NULL DEFAULT 0,
    -- The last attempt's outcome is unknown: look for the post on the platform before sending again.
    needs_reconcile boolean NOT NULL DEFAULT false,
    reconcile_since timestamptz,
    lease_owner text,
    lease_until timestamptz,
    platform_post_id text,
    last_failure_kind text,
    last_error text,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    published_at timestamptz,
    UNIQUE (workspace_id, idempotency_key)
);
CREATE INDEX posts_due ON posts (next_attempt_at) WHERE status = 'scheduled';
CREATE INDEX posts_leased ON posts (lease_until) WHERE status = 'publishing';
CREATE INDEX posts_failed_auth ON posts (account_id) WHERE status = 'failed_auth';
CREATE INDEX posts_workspace ON posts (workspace_id, created_at);

-- Every attempt, recorded before the platform call.
CREATE TABLE attempts (
    post_id uuid NOT NULL REFERENCES posts (id) ON DELETE CASCADE,
    attempt integer NOT NULL,
    started_at timestamptz NOT NULL DEFAULT now(),
    finished_at timestamptz,
    outcome text,
    detail text,
    credential_version bigint,
    PRIMARY KEY (post_id, attempt)
);

CREATE TABLE dead_letters (
    post_id uuid PRIMARY KEY REFERENCES posts (id) ON DELETE CASCADE,
    workspace_id uuid NOT NULL,
    kind text NOT NULL,
    reason text NOT NULL,
    attempts integer NOT NULL,
    dead_lettered_at timestamptz NOT NULL DEFAULT now(),
    replayed_at timestamptz,
    replay_count integer NOT NULL DEFAULT 0
);
CREATE INDEX dead_letters_open ON dead_letters (workspace_id, dead_lettered_at) WHERE replayed_at IS NULL;

CREATE TABLE outbox (
    id bigserial PRIMARY KEY,
    subject text NOT NULL,
    event_id text NOT NULL,
    payload bytea NOT NULL,
    traceparent text,
    created_at timestamptz NOT NULL DEFAULT now()
);
