-- A post's platform is one the publisher knows (lifeline_events::Platform), as its status and
-- media kind already are: the rows are decoded into that type, and one unknown name would fail
-- every batch statement that reads it (a sweep's lease, the reconciler, the replay pacer) until
-- the row was fixed. A new platform adds its name here with its connector.
ALTER TABLE posts ADD CONSTRAINT posts_platform_known CHECK (platform IN
    ('x', 'linkedin', 'instagram', 'facebook', 'youtube', 'tiktok', 'threads'));
