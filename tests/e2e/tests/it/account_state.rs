//! The `LIFELINE_ACCOUNTS` key-value bucket (current state for new subscribers) and `lifelinectl consumers`.
