-- Issue 4: probes, expiry warnings, rotation safety and the reactive path.

-- What the row's due_at leads to: a refresh, or a health probe (tokens that never expire).
ALTER TABLE schedule ADD COLUMN action text NOT NULL DEFAULT 'refresh'
    CHECK (action IN ('refresh', 'probe'));
-- in_doubt: a rotating refresh token was sent and no answer came back (timeout, crash). It is
-- never sent again; the owner is warned before the access token lapses.
ALTER TABLE schedule DROP CONSTRAINT schedule_state_check;
ALTER TABLE schedule ADD CONSTRAINT schedule_state_check
    CHECK (state IN ('active', 'broken', 'unrefreshable', 'in_doubt'));
-- Expiries as last stored, for the warnings.
ALTER TABLE schedule ADD COLUMN access_expires_at timestamptz;
ALTER TABLE schedule ADD COLUMN refresh_expires_at timestamptz;
-- The credential version whose rotating refresh token is on the wire. Set (and committed) just
-- before the call; cleared by any answer from the platform.
ALTER TABLE schedule ADD COLUMN sent_version bigint;
-- A publish failed with this credential version: the next successful refresh announces the
-- account as recovered (AccountReconnected) so parked posts retry.
ALTER TABLE schedule ADD COLUMN publish_failed_version bigint;
-- The credential version the reactive path already tried once.
ALTER TABLE schedule ADD COLUMN reactive_version bigint;
-- When the next TokenExpiring horizon is due, if any.
ALTER TABLE schedule ADD COLUMN warn_at timestamptz;

-- Leases are taken per platform (each platform has its own limits and breaker): the due query
-- walks (platform, due_at) and reads only due rows.
DROP INDEX schedule_due;
CREATE INDEX schedule_due ON schedule (platform, due_at) WHERE state = 'active';
CREATE INDEX schedule_warn ON schedule (warn_at) WHERE warn_at IS NOT NULL;

-- Each horizon fires once per token. An access token is known by its expiry; a refresh token by
-- the grant it belongs to (its reported expiry can move by a second from one answer to the next).
CREATE TABLE warnings (
    account_id uuid NOT NULL,
    credential text NOT NULL CHECK (credential IN ('access_token', 'refresh_token')),
    token_epoch timestamptz NOT NULL,
    horizon_seconds bigint NOT NULL,
    expires_at timestamptz NOT NULL,
    sent_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (account_id, credential, token_epoch, horizon_seconds)
);

-- When the account's grant began (the vault's first_granted_at; a reconnect starts a new one).
ALTER TABLE schedule ADD COLUMN granted_at timestamptz;

-- When the current access token was issued: the policy's lead time is a fraction of its life.
ALTER TABLE schedule ADD COLUMN access_issued_at timestamptz;
