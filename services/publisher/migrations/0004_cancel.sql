-- A workspace can cancel a post that has not gone out; the posts list pages by (created_at, id).
ALTER TABLE posts DROP CONSTRAINT posts_status_check;
ALTER TABLE posts ADD CONSTRAINT posts_status_check CHECK (status IN
    ('scheduled', 'publishing', 'published', 'failed_auth', 'retry_requested', 'dead_lettered', 'cancelled'));
ALTER TABLE posts ADD COLUMN cancelled_at timestamptz;
CREATE INDEX posts_workspace_page ON posts (workspace_id, created_at DESC, id DESC);
DROP INDEX posts_workspace;
