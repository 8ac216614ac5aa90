-- An incident is one broken-connection episode of an account: from its first AuthFailed to the
-- AccountReconnected that ends it. At most one is open per account.
CREATE TABLE incidents (
    id uuid PRIMARY KEY,
    workspace_id uuid NOT NULL,
    account_id uuid NOT NULL,
    platform text NOT NULL,
    cause text NOT NULL,
    opened_at timestamptz NOT NULL DEFAULT now(),
    opened_by_event text NOT NULL,
    closed_at timestamptz,
    closed_by_event text
);
CREATE UNIQUE INDEX incidents_one_open ON incidents (account_id) WHERE closed_at IS NULL;

-- Failures of credentials older than the newest reconnected one are stale and open nothing.
CREATE TABLE account_versions (
    account_id uuid PRIMARY KEY,
    reconnected_version bigint NOT NULL
);

CREATE TABLE notifications (
    id uuid PRIMARY KEY,
    workspace_id uuid NOT NULL,
    account_id uuid,
    incident_id uuid REFERENCES incidents (id),
    kind text NOT NULL,
    title text NOT NULL,
    body text NOT NULL,
    -- Makes each notification idempotent under redelivery.
    dedupe_key text NOT NULL UNIQUE,
    created_at timestamptz NOT NULL DEFAULT now(),
    read_at timestamptz
);
CREATE INDEX notifications_workspace ON notifications (workspace_id, created_at DESC);
