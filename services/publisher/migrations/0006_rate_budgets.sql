-- Each account's posting budget, as its platform reports it (X's x-rate-limit-* headers), shared
-- by every replica: see src/pacing/.
CREATE TABLE rate_budgets (
    account_id uuid PRIMARY KEY,
    -- Calls a whole window allows, once the platform said (NULL: not known).
    window_limit integer,
    -- Calls left in the current window: our count, lowered by the platform's.
    remaining integer NOT NULL DEFAULT 0,
    -- When the current window began and ends (reset_at NULL: nothing known, or a window that has
    -- just begun and whose end no answer has told yet), and when the previous one ended.
    window_started timestamptz,
    reset_at timestamptz,
    last_reset timestamptz,
    -- Calls reserved and not answered yet, and the lowest remaining the platform reported in the
    -- current window (its freshest count).
    in_flight integer NOT NULL DEFAULT 0,
    lowest_seen integer,
    -- The last answer (or the first call of a burst): calls unanswered for longer than a lease are
    -- dead.
    answered_at timestamptz,
    -- The latest window posts were held for, and how many were held for it.
    booked_at timestamptz,
    booked integer NOT NULL DEFAULT 0,
    updated_at timestamptz NOT NULL DEFAULT now()
);
