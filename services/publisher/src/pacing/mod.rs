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
//! The count is ours, corrected by the platform. A reservation takes one call off `remaining`
//! and counts it in flight until its answer. An answer's `remaining` can lower the count (someone
//! else posted too), and the freshest answer (the lowest `remaining` heard in the window) minus
//! the calls still in flight is a count that cannot overdraw the window: the count is raised to
//! it when it is higher (that also gives back a reservation whose call was not made). That is how
//! a new account's first window, whose calls went out before anything was known, is counted:
//! calls go out, and the first answers tell what is left. Calls unanswered for longer than a
//! lease are dead (their replica died) and no longer count as in flight. When a window ends, the
//! next one is assumed whole (`window_limit`) until an answer tells its end. A post held while
//! calls are in flight is looked at again a moment later ([`RECHECK`]): their answers may show
//! room the count does not.

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
    /// Calls reserved and not answered yet.
    pub in_flight: i32,
    /// The lowest `remaining` the platform reported in the current window: the freshest count.
    pub lowest_seen: Option<i32>,
    /// The last answer, or the first call of a burst that went out with none in flight: calls
    /// in flight with no answer for longer than a lease are dead (their replica died).
    pub answered_at: Option<DateTime<Utc>>,
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
        self.lowest_seen = None;
        // Calls still out count in the window they were made in; this also bounds what a replica
        // that died mid-call leaves counted as in flight to one window.
        self.in_flight = 0;
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
            }
        }
    }

    /// The time a post that found the window spent is held until: the first window with room
    /// among those posts are already held for, so a backlog is spread over the windows it needs
    /// (and the time says roughly when the last of it goes out).
    fn book(&mut self, now: DateTime<Utc>) -> DateTime<Utc> {
        let recheck = now + chrono::Duration::from_std(RECHECK).unwrap_or_default();
        // The count may be short while calls are out (their answers can raise it): look again
        // soon rather than a window later.
        if self.in_flight > 0 {
            return recheck;
        }
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
/// to store. `dead_after`: a call unanswered for this long will never be (the publish lease,
/// which outlives any platform call twice over).
pub(crate) fn reserve(
    budget: &Budget,
    wanted: usize,
    now: DateTime<Utc>,
    dead_after: Duration,
) -> (Budget, Vec<Verdict>) {
    let mut b = budget.clone();
    b.roll(now);
    let silent =
        b.answered_at.is_none_or(|at| (now - at).to_std().unwrap_or_default() > dead_after);
    if b.in_flight > 0 && silent {
        // Their replica died mid-call: they will not answer, and may not have been made.
        b.in_flight = 0;
        b.settle();
    }
    if b.in_flight == 0 {
        b.answered_at = Some(now);
    }
    let verdicts = (0..wanted)
        .map(|_| {
            if b.unknown() {
                b.in_flight += 1;
                Verdict::Go
            } else if b.remaining > 0 {
                b.remaining -= 1;
                b.in_flight += 1;
                Verdict::Go
            } else {
                Verdict::Wait(b.book(now))
            }
        })
        .collect();
    (b, verdicts)
}

/// What `heard` after a reserved call teaches about the budget: the budget to store.
pub(crate) fn observe(budget: &Budget, heard: Heard, now: DateTime<Utc>) -> Budget {
    let mut b = budget.clone();
    // This call is out no more.
    b.in_flight = (b.in_flight - 1).max(0);
    b.answered_at = Some(now);
    let Heard::Budget { budget: seen, rate_limited } = heard else {
        b.settle();
        return b;
    };
    let limit = seen.limit.and_then(|l| i32::try_from(l).ok());
    let left = i32::try_from(seen.remaining).unwrap_or(i32::MAX);
    let t = seen.reset_at;
    if t <= now {
        // Its window is over already.
        return b;
    }
    if rate_limited {
        // Refused for the budget: nothing is left until the platform's reset.
        b.remaining = 0;
        b.lowest_seen = Some(0);
        b.reset_at = Some(b.reset_at.map_or(t, |s| s.max(t)));
        b.window_limit = limit.or(b.window_limit);
        return b;
    }
    let near = |a: DateTime<Utc>, c: DateTime<Utc>| {
        (a - c).abs().to_std().unwrap_or_default() <= SAME_WINDOW
    };
    match b.reset_at {
        Some(s) if near(t, s) => b.count(left),
        // An earlier window than ours: stale.
        Some(s) if t < s => return b,
        // A later window than ours (the platform's began before we rolled ours).
        Some(s) => {
            let len = b.window_len();
            b.last_reset = Some(s);
            b.reset_at = Some(t);
            b.window_started = len.map(|len| t - len).or(Some(now));
            b.lowest_seen = None;
            b.remaining = 0;
            b.count(left);
        }
        None if b.last_reset.is_some_and(|l| t <= l || near(t, l)) => return b,
        None => {
            if b.unknown() {
                b.window_started = Some(now);
                b.remaining = 0;
            }
            b.reset_at = Some(t);
            b.count(left);
        }
    }
    b.window_limit = limit.or(b.window_limit);
    b
}

impl Budget {
    /// Takes in the platform's count of what is left in the current window.
    fn count(&mut self, left: i32) {
        // Someone else may have posted too: the platform's count can lower ours.
        self.remaining = self.remaining.min(left);
        if self.lowest_seen.is_none_or(|l| left <= l) {
            self.lowest_seen = Some(left);
        }
        self.settle();
    }

    /// Raises our count to the platform's freshest one less the calls still in flight: a call
    /// the platform counted after it is in flight (or its answer would be fresher). This gives
    /// back reservations whose call was not made (the breaker held it, the post was found
    /// already out) or that counted nothing.
    fn settle(&mut self) {
        if let (Some(l), Some(_)) = (self.lowest_seen, self.reset_at) {
            self.remaining = self.remaining.max(l - self.in_flight).max(0);
        }
    }
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
