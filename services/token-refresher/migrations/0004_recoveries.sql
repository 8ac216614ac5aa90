-- At most one AccountReconnected (recovered_by_refresh) per credential version. The settle step
-- announces a recovery after a reactive refresh, and the reactive path announces one when a
-- publish failed with a token that a refresh has replaced since; a backlog of such stale
-- failures (one per parked post) must not announce one each.
CREATE TABLE recoveries (
    account_id uuid NOT NULL,
    credential_version bigint NOT NULL,
    announced_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (account_id, credential_version)
);
