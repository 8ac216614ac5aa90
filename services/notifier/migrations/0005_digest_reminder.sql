-- Dead-letter digest: every PostDeadLettered the notifier heard, kept until a digest lists it.
-- Keyed by the event id, so a redelivered event adds nothing and a post dead-lettered again
-- after a replay is listed again.
CREATE TABLE dead_letters (
    event_id text PRIMARY KEY,
    workspace_id uuid NOT NULL,
    account_id uuid NOT NULL,
    platform text NOT NULL,
    post_id text NOT NULL,
    kind text NOT NULL,
    reason text NOT NULL,
    attempts integer NOT NULL,
    dead_lettered_at timestamptz NOT NULL,
    received_at timestamptz NOT NULL DEFAULT now(),
    -- The digest notification that listed it; NULL while it waits for the next one.
    digest_id uuid REFERENCES notifications (id)
);
CREATE INDEX dead_letters_waiting ON dead_letters (workspace_id, received_at) WHERE digest_id IS NULL;

-- One row per workspace that ever had a dead letter: its lock is what keeps two replicas from
-- sending the same digest, and last_sent_at spaces the digests by LIFELINE_NOTIFY_DIGEST_INTERVAL.
CREATE TABLE digests (
    workspace_id uuid PRIMARY KEY,
    last_sent_at timestamptz
);

-- The 24 h reminder: when it was sent (at most one per incident), and when the publisher was
-- last asked whether posts wait (none waiting: asked again later, not reminded).
ALTER TABLE incidents ADD COLUMN reminded_at timestamptz;
ALTER TABLE incidents ADD COLUMN reminder_checked_at timestamptz;
CREATE INDEX incidents_to_remind ON incidents (notified_at)
    WHERE closed_at IS NULL AND notified_at IS NOT NULL AND reminded_at IS NULL;
