-- Replays of dead-lettered posts: who asked, when, for which filter and note, and which posts
-- each one took. Progress is read from the posts' own status, never kept as counters.
CREATE TABLE replays (
    id uuid PRIMARY KEY,
    requested_by text NOT NULL,
    requested_at timestamptz NOT NULL DEFAULT now(),
    -- The workspace the replay was kept to; NULL for an operator's replay across workspaces.
    workspace_id uuid,
    filter jsonb NOT NULL,
    note text,
    idempotency_key text,
    -- Keys are unique per caller's reach: 'workspace:<uuid>' for members, 'operator' for operators.
    key_scope text NOT NULL,
    post_count integer NOT NULL,
    UNIQUE (key_scope, idempotency_key)
);
CREATE INDEX replays_page ON replays (requested_at DESC, id DESC);

-- A replay's posts; released_at is set when its PostRetryRequested is queued, at its
-- platform's replay rate.
CREATE TABLE replay_posts (
    replay_id uuid NOT NULL REFERENCES replays (id) ON DELETE CASCADE,
    post_id uuid NOT NULL REFERENCES posts (id) ON DELETE CASCADE,
    platform text NOT NULL,
    seq bigint NOT NULL,
    released_at timestamptz,
    PRIMARY KEY (replay_id, post_id)
);
CREATE INDEX replay_posts_waiting ON replay_posts (platform, replay_id, seq) WHERE released_at IS NULL;
CREATE INDEX replay_posts_released ON replay_posts (platform, released_at) WHERE released_at IS NOT NULL;
