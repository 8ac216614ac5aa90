-- Channels a workspace's notifications are pushed to. Secrets (a webhook's signing secret, a
-- Slack incoming-webhook URL) are sealed with the vault, bound to the channel id; `target` holds
-- only what may be shown (a webhook URL, an email address, the Slack host).
CREATE TABLE channels (
    id uuid PRIMARY KEY,
    workspace_id uuid NOT NULL,
    kind text NOT NULL CHECK (kind IN ('webhook', 'slack', 'email')),
    target text NOT NULL,
    secret_key_id text,
    secret_sealed bytea,
    -- After a rotation the previous signing secret still signs until previous_until.
    previous_key_id text,
    previous_sealed bytea,
    previous_until timestamptz,
    created_at timestamptz NOT NULL DEFAULT now(),
    -- The first failed attempt since the last success; a channel failing for longer than
    -- LIFELINE_NOTIFY_DISABLE_AFTER is disabled (with an in-app notification).
    failing_since timestamptz,
    disabled_at timestamptz,
    disabled_reason text
);
CREATE INDEX channels_workspace ON channels (workspace_id, created_at);

-- One message to one channel, written in the transaction that writes its notification. Its id
-- is the `webhook-id`, the same on every attempt; its body is fixed at enqueue time.
CREATE TABLE deliveries (
    id uuid PRIMARY KEY,
    channel_id uuid NOT NULL REFERENCES channels (id) ON DELETE CASCADE,
    workspace_id uuid NOT NULL,
    notification_id uuid REFERENCES notifications (id),
    event_type text NOT NULL,
    body text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    -- pending (to send, at next_attempt_at), delivered, failed (retries exhausted).
    status text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'delivered', 'failed')),
    attempts integer NOT NULL DEFAULT 0,
    next_attempt_at timestamptz NOT NULL DEFAULT now(),
    leased_by text,
    lease_until timestamptz,
    delivered_at timestamptz
);
CREATE INDEX deliveries_due ON deliveries (channel_id, next_attempt_at) WHERE status = 'pending';
CREATE INDEX deliveries_channel ON deliveries (channel_id, created_at DESC);

-- Every attempt: what the endpoint answered (or why there was no answer) and how long it took.
CREATE TABLE delivery_attempts (
    id bigserial PRIMARY KEY,
    delivery_id uuid NOT NULL REFERENCES deliveries (id) ON DELETE CASCADE,
    attempted_at timestamptz NOT NULL DEFAULT now(),
    status_code integer,
    latency_ms integer NOT NULL,
    error text,
    attempted_by text NOT NULL
);
CREATE INDEX delivery_attempts_delivery ON delivery_attempts (delivery_id, id);
