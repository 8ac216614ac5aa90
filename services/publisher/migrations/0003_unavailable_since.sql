-- Since when the platform has kept a post from going out (its first transient failure, or the
-- first time its circuit breaker held it): the retry window is measured from here.
ALTER TABLE posts ADD COLUMN unavailable_since timestamptz;
