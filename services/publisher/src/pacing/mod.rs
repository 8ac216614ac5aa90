//! Pacing: an account whose platform reports its posting budget (X's `x-rate-limit-*` headers,
//! 100 posts per user per 15 minutes) gets no more calls than the budget allows. Every call is
//! reserved against the account's budget first; when the window's calls are spent, the post is
//! held (not an attempt, not a failure) for the first window with room, so a backlog (300 posts
//! coming back after a reconnect) drains window by window instead of running into 429s.
//!
//! The budget lives in Postgres (`publisher.rate_budgets`, one row per account) so that every
//! replica spends the same one; [`store`] reads and writes it, in group commits. This module is
//! the pure part: what a reservation gets ([`reserve`]) and what an answer teaches
//! ([`observe`]), as functions of the row and the time.
//!
//! The count is ours, corrected by the platform: a reservation takes one call off `remaining`;
//! each answer's `remaining` can only lower it (it cannot know of calls still in flight). When a
//! window ends, the next one is assumed whole (`window_limit`) until an answer tells its end.
//! Before any answer has told anything (a new account), calls go out, and the first budget heard
//! is reduced by the calls still in flight then, so none of them overdraws the window.

pub(crate) mod store;
#[cfg(test)]
mod tests;

use std::time::Duration;

use chrono::{DateTime, Utc};
use lifeline_platforms::RateBudget;

/// How soon a held post is looked at again when no window end is known yet (a window has just
/// begun and no answer has told when it ends).
pub(crate) const RECHECK: Duration = Duration::from_secs(1);
/// Two resets this close name the same window (`x-rate-limit-reset` is in whole seconds).
const SAME_WINDOW: Duration = Duration::from_secs(2);

/// One account's budget, as `publisher.rate_budgets` keeps it. The default is "nothing known".
#[derive(Debug, Clone, Default, PartialEq, Eq, sqlx::FromRow)]
pub(crate) struct Budget {
    /// Calls a whole window allows, once a platform said.
    pub window_limit: Option<i32>,
    /// Calls left in the current window (by our count, lowered by the platform's).
    pub remaining: i32,
    /// When the current window began, as far as we know (for its length).
    pub window_started: Option<DateTime<Utc>>,
    /// When the current window ends. `None`: nothing known, or a window that has just begun and
    /// whose end no answer has told yet.
    pub reset_at: Option<DateTime<Utc>>,
    /// The previous window's end: an answer naming it (or earlier) is stale.
    pub last_reset: Option<DateTime<Utc>>,
    /// Calls made while nothing was known and not answered yet.
    pub unknown_calls: i32,
    /// The latest window posts were held for, and how many were held for it.
    pub booked_at: Option<DateTime<Utc>>,
    pub booked: i32,
}

/// What a reservation gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// Call the platform now.
    Go,
    /// Do not call: hold the post until then.
    Wait(DateTime<Utc>),
}

/// What an answer (or its absence) said about the budget.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Heard {
    /// The platform reported the budget; `rate_limited`: it refused the call for it (a 429).
    Budget { budget: RateBudget, rate_limited: bool },
    /// The call ended without a budget (a refusal without headers, a network failure).
    Nothing,
}

impl Budget {
    /// Nothing is known: no limit, no window.
    fn unknown(&self) -> bool {
        self.window_limit.is_none() && self.reset_at.is_none()
    }

    /// The current window's length, when its start and end are known.
    fn window_len(&self) -> Option<chrono::Duration> {
        let len = self.reset_at? - self.window_started?;
        (len > chrono::Duration::zero()).then_some(len)
    }

    /// Starts the next window once the current one has ended: whole, if its size is known,
    /// with its end unknown until an answer tells it; else nothing is known any more.
    fn roll(&mut self, now: DateTime<Utc>) {
        let Some(reset) = self.reset_at.filter(|r| *r <= now) else { return };
        self.last_reset = Some(reset);
        self.reset_at = None;
        match self.window_limit {
            Some(limit) => {
                self.remaining = limit;
                // The platform's window begins with the first call after the reset; for its
                // length the reset is close enough.
                self.window_started = Some(reset);
            }
            None => {
                self.remaining = 0;
                self.window_started = None;
                self.unknown_calls = 0;
            }
        }
    }

    /// The time a post that found the window spent is held until: the first window with room
    /// among those posts are already held for, so a backlog is spread over the windows it needs
    /// (and the time says roughly when the last of it goes out).
    fn book(&mut self, now: DateTime<Utc>) -> DateTime<Utc> {
        let recheck = now + chrono::Duration::from_std(RECHECK).unwrap_or_default();
        let Some(next) = self.reset_at else { return recheck };
        let (Some(limit), Some(len)) = (self.window_limit.filter(|l| *l > 0), self.window_len())
        else {
            return next;
        };
        match self.booked_at {
            Some(at) if at >= next => {
                if self.booked >= limit {
                    self.booked_at = Some(at + len);
                    self.booked = 0;
                }
            }
            _ => {
                self.booked_at = Some(next);
                self.booked = 0;
            }
        }
        self.booked += 1;
        self.booked_at.unwrap_or(next)
    }
}

/// Reserves `wanted` calls of one account at `now`: one verdict each, in order, and the budget
/// to store.
pub(crate) fn reserve(
    budget: &Budget,
    wanted: usize,
    now: DateTime<Utc>,
) -> (Budget, Vec<Verdict>) {
    let mut b = budget.clone();
    b.roll(now);
    let verdicts = (0..wanted)
        .map(|_| {
            if b.unknown() {
                b.unknown_calls += 1;
                Verdict::Go
            } else if b.remaining > 0 {
                b.remaining -= 1;
                Verdict::Go
            } else {
                Verdict::Wait(b.book(now))
            }
        })
        .collect();
    (b, verdicts)
}

/// What `heard` after a call teaches about the budget: the budget to store.
pub(crate) fn observe(budget: &Budget, heard: Heard, now: DateTime<Utc>) -> Budget {
    let mut b = budget.clone();
    let (seen, rate_limited) = match heard {
        Heard::Nothing => {
            if b.unknown() {
                b.unknown_calls = (b.unknown_calls - 1).max(0);
            }
            return b;
        }
        Heard::Budget { budget, rate_limited } => (budget, rate_limited),
    };
    let near = |a: DateTime<Utc>, c: DateTime<Utc>| {
        (a - c).abs().to_std().unwrap_or_default() <= SAME_WINDOW
    };
    let limit = seen.limit.and_then(|l| i32::try_from(l).ok());
    let left = i32::try_from(seen.remaining).unwrap_or(i32::MAX);
    let t = seen.reset_at;
    if t <= now {
        // Its window is over already.
        if b.unknown() {
            b.unknown_calls = (b.unknown_calls - 1).max(0);
        }
        return b;
    }
    if rate_limited {
        // Refused for the budget: nothing is left until the platform's reset.
        b.remaining = 0;
        b.reset_at = Some(b.reset_at.map_or(t, |s| s.max(t)));
        b.window_limit = limit.or(b.window_limit);
        b.unknown_calls = 0;
        return b;
    }
    match b.reset_at {
        Some(s) if near(t, s) => b.remaining = b.remaining.min(left),
        // An earlier window than ours: stale.
        Some(s) if t < s => {}
        // A later window than ours (the platform's began before we rolled ours): the
        // platform's count is the best there is.
        Some(s) => {
            let len = b.window_len();
            b.last_reset = Some(s);
            b.reset_at = Some(t);
            b.window_started = len.map(|len| t - len).or(Some(now));
            b.remaining = left;
        }
        None if b.last_reset.is_some_and(|l| t <= l || near(t, l)) => {}
        None if b.unknown() => {
            // The first budget heard: the calls still in flight will count too.
            let in_flight = (b.unknown_calls - 1).max(0);
            b.remaining = (left - in_flight).max(0);
            b.reset_at = Some(t);
            b.window_started = Some(now);
            b.unknown_calls = 0;
        }
        // The end of a window we rolled into.
        None => {
            b.remaining = b.remaining.min(left);
            b.reset_at = Some(t);
        }
    }
    b.window_limit = limit.or(b.window_limit);
    b
}

/// What a failed call tells of the budget: a rate limit's reset (the window is spent until
/// then), or nothing.
pub(crate) fn heard_from_failure(f: &lifeline_platforms::Failure, now: DateTime<Utc>) -> Heard {
    match f {
        lifeline_platforms::Failure::RateLimited { retry_after: Some(wait), .. } => Heard::Budget {
            budget: RateBudget {
                limit: None,
                remaining: 0,
                reset_at: now + chrono::Duration::from_std(*wait).unwrap_or_default(),
            },
            rate_limited: true,
        },
        _ => Heard::Nothing,
    }
}

/// What a published answer tells of the budget.
pub(crate) fn heard_from_published(p: &lifeline_platforms::Published) -> Heard {
    match p.rate_budget {
        Some(budget) => Heard::Budget { budget, rate_limited: false },
        None => Heard::Nothing,
    }
}
