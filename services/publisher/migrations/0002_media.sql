-- Posts may carry one image or video (Instagram, YouTube and TikTok need one).
ALTER TABLE posts ADD COLUMN media_url text;
ALTER TABLE posts ADD COLUMN media_kind text CHECK (media_kind IN ('image', 'video'));
ALTER TABLE posts ADD CONSTRAINT posts_media_complete CHECK ((media_url IS NULL) = (media_kind IS NULL));
