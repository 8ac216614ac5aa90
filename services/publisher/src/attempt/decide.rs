//! What to do with a post after an attempt, as a pure function of what is known: the attempt's
//! outcome (a call's answer, or no call because the platform's breaker was open or the platform
//! cannot be checked), whether the credential was replaced meanwhile, whether the platform can
//! tell if an ambiguous publish went out, and the retry schedule and window. `apply` writes the
//! decision; this module touches no database and sends nothing.

use std::time::Duration;

use chrono::{DateTime, Utc};
use lifeline_kit::events::{AuthFailureCause, PostFailureKind};
use lifeline_platforms::{Failure, Published};

use crate::retry::RetryPolicy;

/// What became of an attempt.
#[derive(Debug)]
pub(super) enum Outcome {
    Published(Published, /* found by reconciliation */ bool),
    Failed(Failure),
    /// The account has no credentials any more (disconnected).
    NoCredentials,
    /// No call was made: the platform's circuit breaker is open until `until`.
    Held {
        until: DateTime<Utc>,
    },
    /// No call was made: the account's posting budget is spent until `until` (`pacing`).
    Paced {
        until: DateTime<Utc>,
    },
    /// No call was made: the last attempt's outcome is unknown (`last`: what is known of it)
    /// and the platform offers no way to check whether it went out, so sending again could
    /// double it.
    Unknown {
        last: String,
    },
}

/// A platform that cannot tell whether an ambiguous publish went out
/// (`Reconciliation::CannotCheck`).
#[derive(Debug, Clone, Copy)]
pub(super) struct Unchecked {
    /// The platform's name as people write it ("LinkedIn").
    pub platform: &'static str,
    /// What the platform lacks.
    pub why: &'static str,
}

/// What is known when the outcome is recorded.
#[derive(Debug)]
pub(super) struct Facts<'a> {
    pub outcome: &'a Outcome,
    /// The vault holds a newer credential than the one the call used. Only asked after an auth
    /// failure (the question share-locks the credential); false otherwise.
    pub credential_replaced: bool,
    /// Transient or ambiguous failures of the post so far, before this attempt.
    pub retryable_failures: i32,
    /// Since when the platform has kept the post from going out (its first transient failure,
    /// or the first time its breaker held it), if it has.
    pub unavailable_since: Option<DateTime<Utc>>,
    /// The platform's last answer to this post, if it failed before.
    pub last_error: Option<&'a str>,
    /// `Config::retry`: the delays between retries and the window they fit in.
    pub retry: &'a RetryPolicy,
    /// `Some` when the platform cannot be checked after an ambiguous publish.
    pub unchecked: Option<Unchecked>,
    pub now: DateTime<Utc>,
}

/// What to do with the post, and what to write in its attempt row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Decision {
    pub action: Action,
    /// The attempt row's `outcome`.
    pub outcome: &'static str,
    /// The attempt row's `detail`; for a failure, the platform's answer as every event and
    /// `last_error` tell it.
    pub detail: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Action {
    /// It went out: mark it published and tell PostPublished.
    Publish { platform_post_id: String, reconciled: bool },
    /// Back to `scheduled` for another attempt at `at`.
    Retry {
        at: DateTime<Utc>,
        /// The post's `last_failure_kind`.
        last_failure_kind: &'static str,
        /// The platform may have applied the attempt: reconcile before the next one.
        ambiguous: bool,
        /// The post's new count of retryable failures, when this one counts against the window.
        retryable_failures: Option<i32>,
        /// The post's `unavailable_since`, when this failure was the platform's.
        unavailable_since: Option<DateTime<Utc>>,
        /// Tell PostFailed (will retry) of this kind; `None` when nothing failed for the user
        /// (the token was replaced while the call was out, so it is simply tried again).
        announce: Option<PostFailureKind>,
    },
    /// No call was made: back to `scheduled` at `at`, as if it had not been leased (not an
    /// attempt, not a failure); nothing is told.
    Hold { at: DateTime<Utc>, unavailable_since: DateTime<Utc> },
    /// No call was made: the account's posting budget is spent. Back to `scheduled` at `at` (the
    /// window it was held for), not an attempt and not a failure; PostFailed (rate limited, will
    /// retry at `at`) tells that it is queued.
    Pace { at: DateTime<Utc> },
    /// Park as `failed_auth` until the account is reconnected; tell AuthFailed and PostFailed.
    Park { cause: AuthFailureCause },
    /// Give up: dead-letter the post (PostDeadLettered), after PostFailed when `announce`.
    DeadLetter { kind: PostFailureKind, reason: String, announce: bool },
    /// The post may be out already and the platform cannot be checked: it is not sent again but
    /// dead-lettered (PostFailed, then PostDeadLettered, kind ambiguous) for an operator, who
    /// checks the account and replays it (it is then sent without a check: the operator has
    /// looked) or leaves it.
    HandOver { reason: String },
}

/// The longest a rate limit may hold a post back, whatever the platform says.
const MAX_RATE_LIMIT_WAIT: Duration = Duration::from_secs(24 * 3600);
/// The wait after a rate limit that came without a `retry_after`.
const DEFAULT_RATE_LIMIT_WAIT: Duration = Duration::from_secs(60);

/// Decides what to do after an attempt. `jitter(delay)` spreads a retry's delay from the
/// schedule (in production by up to a tenth more); it is only called for a retry within the
/// window.
pub(super) fn decide(facts: &Facts<'_>, jitter: impl FnOnce(Duration) -> Duration) -> Decision {
    let failure = match facts.outcome {
        Outcome::Published(p, reconciled) => {
            return Decision {
                action: Action::Publish {
                    platform_post_id: p.platform_post_id.clone(),
                    reconciled: *reconciled,
                },
                outcome: "published",
                detail: if *reconciled {
                    "found on the platform after an unknown outcome".to_owned()
                } else {
                    String::new()
                },
            };
        }
        Outcome::NoCredentials => {
            const DISCONNECTED: &str = "the account is disconnected";
            return Decision {
                action: Action::DeadLetter {
                    kind: PostFailureKind::Auth,
                    reason: DISCONNECTED.to_owned(),
                    announce: false,
                },
                outcome: "dead_lettered",
                detail: DISCONNECTED.to_owned(),
            };
        }
        Outcome::Held { until } => return held(facts, *until),
        Outcome::Paced { until } => {
            let at = (*until).max(facts.now);
            return Decision {
                action: Action::Pace { at },
                outcome: "paced",
                detail: format!(
                    "queued: the account's posting limit is spent until {}; nothing was sent",
                    at.format("%Y-%m-%d %H:%M:%S UTC")
                ),
            };
        }
        Outcome::Unknown { last } => {
            // Only a platform that cannot be checked gives this outcome.
            let unchecked =
                facts.unchecked.unwrap_or(Unchecked { platform: "the platform", why: "" });
            let reason = hand_over_reason(unchecked, last);
            return Decision {
                action: Action::HandOver { reason: reason.clone() },
                outcome: "outcome_unknown",
                detail: reason,
            };
        }
        Outcome::Failed(failure) => failure,
    };
    let detail = failure.to_string();
    let kind = failure_kind(failure);
    if let (Failure::Ambiguous { .. }, Some(unchecked)) = (failure, facts.unchecked) {
        // It may have gone out, and nothing can tell: an operator decides, not a retry.
        let reason = hand_over_reason(unchecked, &detail);
        return Decision { action: Action::HandOver { reason }, outcome: "ambiguous", detail };
    }
    let after = |wait: Duration| facts.now + chrono::Duration::from_std(wait).unwrap_or_default();
    let action = match failure {
        // The token was replaced (refreshed or reconnected) while this call was out: try again
        // with the new one instead of parking the post.
        Failure::Auth { .. } if facts.credential_replaced => Action::Retry {
            at: facts.now,
            last_failure_kind: "auth",
            ambiguous: false,
            retryable_failures: None,
            unavailable_since: None,
            announce: None,
        },
        Failure::Auth { cause, .. } => Action::Park { cause: *cause },
        Failure::RateLimited { retry_after, .. } => Action::Retry {
            at: after(retry_after.unwrap_or(DEFAULT_RATE_LIMIT_WAIT).min(MAX_RATE_LIMIT_WAIT)),
            last_failure_kind: "rate_limited",
            ambiguous: false,
            retryable_failures: None,
            unavailable_since: None,
            announce: Some(kind),
        },
        Failure::Transient { .. } | Failure::Ambiguous { .. } => {
            let failures = facts.retryable_failures + 1;
            let since = facts.unavailable_since.unwrap_or(facts.now);
            if window_passed(facts, since) {
                Action::DeadLetter {
                    kind,
                    reason: gave_up(facts, since, failures, &detail),
                    announce: true,
                }
            } else {
                // The last try is at the window's end, not one delay past it.
                let window_ends =
                    since + chrono::Duration::from_std(facts.retry.window).unwrap_or_default();
                Action::Retry {
                    at: after(jitter(facts.retry.delay(failures))).min(window_ends),
                    last_failure_kind: failure_kind_name(failure),
                    ambiguous: matches!(failure, Failure::Ambiguous { .. }),
                    retryable_failures: Some(failures),
                    unavailable_since: Some(since),
                    announce: Some(kind),
                }
            }
        }
        Failure::Rejected { .. } => {
            Action::DeadLetter { kind, reason: detail.clone(), announce: true }
        }
    };
    Decision { action, outcome: failure_kind_name(failure), detail }
}

/// A post the breaker kept from being called waits for the breaker's next trial, unless the
/// platform has kept it back for the whole window already.
fn held(facts: &Facts<'_>, until: DateTime<Utc>) -> Decision {
    let since = facts.unavailable_since.unwrap_or(facts.now);
    if window_passed(facts, since) {
        let detail = match facts.last_error {
            Some(last) => format!("{last} (then held by the circuit breaker)"),
            None => "held by the circuit breaker; no call was made".to_owned(),
        };
        let reason = gave_up(facts, since, facts.retryable_failures, &detail);
        return Decision {
            action: Action::DeadLetter {
                kind: PostFailureKind::Transient,
                reason: reason.clone(),
                announce: false,
            },
            outcome: "dead_lettered",
            detail: reason,
        };
    }
    Decision {
        action: Action::Hold { at: until.max(facts.now), unavailable_since: since },
        outcome: "held",
        detail: "the platform's circuit breaker is open; no call was made".to_owned(),
    }
}

fn window_passed(facts: &Facts<'_>, since: DateTime<Utc>) -> bool {
    (facts.now - since).to_std().unwrap_or_default() >= facts.retry.window
}

/// The dead letter's reason after the window: how long the platform was unavailable, and how
/// many calls failed.
fn gave_up(facts: &Facts<'_>, since: DateTime<Utc>, failures: i32, detail: &str) -> String {
    let unavailable = (facts.now - since).to_std().unwrap_or_default();
    format!(
        "platform unavailable for {}; gave up after {failures} failed attempts: {detail}",
        roughly(unavailable)
    )
}

/// The dead letter's reason for a post whose outcome is unknown on a platform that cannot be
/// checked: what happened, why nobody can tell, what the operator does, and the last answer.
fn hand_over_reason(u: Unchecked, last: &str) -> String {
    let why = if u.why.is_empty() { String::new() } else { format!(" ({})", u.why) };
    format!(
        "outcome unknown and {} offers no way to check{why}; check the account and replay or discard. Last answer: {last}",
        u.platform
    )
}

/// A duration as a person says it: `28h`, `45m`, `6s`.
fn roughly(d: Duration) -> String {
    let secs = d.as_secs_f64();
    if secs < 90.0 {
        format!("{}s", secs.round())
    } else if secs < 90.0 * 60.0 {
        format!("{}m", (secs / 60.0).round())
    } else {
        format!("{}h", (secs / 3600.0).round())
    }
}

/// A failure's name in `last_failure_kind`, the attempt row and the metrics.
pub(super) fn failure_kind_name(f: &Failure) -> &'static str {
    match f {
        Failure::Auth { .. } => "auth",
        Failure::RateLimited { .. } => "rate_limited",
        Failure::Transient { .. } => "transient",
        Failure::Rejected { .. } => "rejected",
        Failure::Ambiguous { .. } => "ambiguous",
    }
}

fn failure_kind(f: &Failure) -> PostFailureKind {
    match f {
        Failure::Auth { .. } => PostFailureKind::Auth,
        Failure::RateLimited { .. } => PostFailureKind::RateLimited,
        Failure::Transient { .. } => PostFailureKind::Transient,
        Failure::Rejected { .. } => PostFailureKind::Rejected,
        Failure::Ambiguous { .. } => PostFailureKind::Ambiguous,
    }
}

#[cfg(test)]
#[path = "decide_tests.rs"]
mod tests;
