//! What to do with a post after an attempt, as a pure function of what is known: the attempt's
//! outcome, whether the credential was replaced meanwhile, and the retry budget. `apply` writes
//! the decision; this module touches no database and sends nothing.

use std::time::Duration;

use chrono::{DateTime, Utc};
use lifeline_kit::events::{AuthFailureCause, PostFailureKind};
use lifeline_platforms::{Failure, Published};

/// What became of an attempt.
#[derive(Debug)]
pub(super) enum Outcome {
    Published(Published, /* found by reconciliation */ bool),
    Failed(Failure),
    /// The account has no credentials any more (disconnected).
    NoCredentials,
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
    /// `Config::max_retries`: retryable failures allowed before the post is dead-lettered.
    pub max_retries: i32,
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
        /// The post's new count of retryable failures, when this one counts against the budget.
        retryable_failures: Option<i32>,
        /// Tell PostFailed (will retry) of this kind; `None` when nothing failed for the user
        /// (the token was replaced while the call was out, so it is simply tried again).
        announce: Option<PostFailureKind>,
    },
    /// Park as `failed_auth` until the account is reconnected; tell AuthFailed and PostFailed.
    Park { cause: AuthFailureCause },
    /// Give up: dead-letter the post (PostDeadLettered), after PostFailed when `announce`.
    DeadLetter { kind: PostFailureKind, reason: String, announce: bool },
}

/// The longest a rate limit may hold a post back, whatever the platform says.
const MAX_RATE_LIMIT_WAIT: Duration = Duration::from_secs(24 * 3600);
/// The wait after a rate limit that came without a `retry_after`.
const DEFAULT_RATE_LIMIT_WAIT: Duration = Duration::from_secs(60);

/// Decides what to do after an attempt. `backoff(failures)` is the delay before the next try
/// after `failures` retryable failures in a row (jittered in production); it is only called for
/// a retryable failure within the budget.
pub(super) fn decide(facts: &Facts<'_>, backoff: impl FnOnce(i32) -> Duration) -> Decision {
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
        Outcome::Failed(failure) => failure,
    };
    let detail = failure.to_string();
    let kind = failure_kind(failure);
    let after = |wait: Duration| facts.now + chrono::Duration::from_std(wait).unwrap_or_default();
    let action = match failure {
        // The token was replaced (refreshed or reconnected) while this call was out: try again
        // with the new one instead of parking the post.
        Failure::Auth { .. } if facts.credential_replaced => Action::Retry {
            at: facts.now,
            last_failure_kind: "auth",
            ambiguous: false,
            retryable_failures: None,
            announce: None,
        },
        Failure::Auth { cause, .. } => Action::Park { cause: *cause },
        Failure::RateLimited { retry_after, .. } => Action::Retry {
            at: after(retry_after.unwrap_or(DEFAULT_RATE_LIMIT_WAIT).min(MAX_RATE_LIMIT_WAIT)),
            last_failure_kind: "rate_limited",
            ambiguous: false,
            retryable_failures: None,
            announce: Some(kind),
        },
        Failure::Transient { .. } | Failure::Ambiguous { .. } => {
            let failures = facts.retryable_failures + 1;
            if failures > facts.max_retries {
                Action::DeadLetter {
                    kind,
                    reason: format!("gave up after {failures} failed attempts: {detail}"),
                    announce: true,
                }
            } else {
                Action::Retry {
                    at: after(backoff(failures)),
                    last_failure_kind: failure_kind_name(failure),
                    ambiguous: matches!(failure, Failure::Ambiguous { .. }),
                    retryable_failures: Some(failures),
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
mod tests {
    use super::*;

    fn now() -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000, 0).unwrap()
    }

    /// The decision for `outcome` of a post with `retryable_failures` so far, 5 allowed.
    fn decide_after(outcome: Outcome, replaced: bool, retryable_failures: i32) -> Decision {
        let facts = Facts {
            outcome: &outcome,
            credential_replaced: replaced,
            retryable_failures,
            max_retries: 5,
            now: now(),
        };
        decide(&facts, |failures| Duration::from_secs(10 * u64::try_from(failures).unwrap()))
    }

    /// The decision after `failure`, and the failure as it is told.
    fn decide_failure(failure: Failure, replaced: bool, retryable: i32) -> (Decision, String) {
        let detail = failure.to_string();
        (decide_after(Outcome::Failed(failure), replaced, retryable), detail)
    }

    fn published(id: &str) -> Published {
        Published { platform_post_id: id.to_owned() }
    }

    #[test]
    fn a_published_post_is_marked_published() {
        let d = decide_after(Outcome::Published(published("p1"), false), false, 0);
        assert_eq!(
            d,
            Decision {
                action: Action::Publish { platform_post_id: "p1".into(), reconciled: false },
                outcome: "published",
                detail: String::new(),
            }
        );
    }

    #[test]
    fn a_post_found_by_reconciliation_says_so() {
        let d = decide_after(Outcome::Published(published("p2"), true), false, 3);
        assert_eq!(d.action, Action::Publish { platform_post_id: "p2".into(), reconciled: true });
        assert_eq!(d.outcome, "published");
        assert_eq!(d.detail, "found on the platform after an unknown outcome");
    }

    #[test]
    fn a_disconnected_account_dead_letters_without_a_failure_event() {
        let d = decide_after(Outcome::NoCredentials, false, 0);
        assert_eq!(
            d,
            Decision {
                action: Action::DeadLetter {
                    kind: PostFailureKind::Auth,
                    reason: "the account is disconnected".into(),
                    announce: false,
                },
                outcome: "dead_lettered",
                detail: "the account is disconnected".into(),
            }
        );
    }

    #[test]
    fn an_auth_failure_parks_the_post() {
        let (d, detail) =
            decide_failure(Failure::auth(AuthFailureCause::Revoked, "token revoked"), false, 0);
        assert_eq!(d.action, Action::Park { cause: AuthFailureCause::Revoked });
        assert_eq!(d.outcome, "auth");
        assert_eq!(d.detail, detail);
    }

    #[test]
    fn an_auth_failure_with_a_token_replaced_since_retries_at_once_quietly() {
        let failure = Failure::auth(AuthFailureCause::Expired, "expired");
        let d = decide_after(Outcome::Failed(failure), true, 2);
        assert_eq!(
            d.action,
            Action::Retry {
                at: now(),
                last_failure_kind: "auth",
                ambiguous: false,
                retryable_failures: None,
                announce: None,
            }
        );
        assert_eq!(d.outcome, "auth");
    }

    #[test]
    fn a_replaced_credential_matters_only_for_auth_failures() {
        let d = decide_after(Outcome::Failed(Failure::rejected("too long")), true, 0);
        assert!(matches!(d.action, Action::DeadLetter { .. }));
    }

    #[test]
    fn a_rate_limit_waits_as_told_by_default_a_minute_at_most_a_day() {
        let at = |retry_after: Option<Duration>| {
            let failure = Failure::RateLimited { retry_after, detail: "slow down".into() };
            match decide_after(Outcome::Failed(failure), false, 4) {
                Decision {
                    action:
                        Action::Retry {
                            at,
                            last_failure_kind: "rate_limited",
                            ambiguous: false,
                            retryable_failures: None,
                            announce: Some(PostFailureKind::RateLimited),
                        },
                    outcome: "rate_limited",
                    ..
                } => at - now(),
                other => panic!("not a rate-limited retry: {other:?}"),
            }
        };
        assert_eq!(at(Some(Duration::from_secs(90))), chrono::Duration::seconds(90));
        assert_eq!(at(None), chrono::Duration::seconds(60));
        assert_eq!(at(Some(Duration::from_secs(7 * 86_400))), chrono::Duration::days(1));
    }

    #[test]
    fn a_transient_failure_within_the_budget_retries_with_backoff() {
        let (d, detail) = decide_failure(Failure::transient("502"), false, 4);
        assert_eq!(
            d,
            Decision {
                action: Action::Retry {
                    at: now() + chrono::Duration::seconds(50),
                    last_failure_kind: "transient",
                    ambiguous: false,
                    retryable_failures: Some(5),
                    announce: Some(PostFailureKind::Transient),
                },
                outcome: "transient",
                detail,
            }
        );
    }

    #[test]
    fn an_ambiguous_failure_within_the_budget_retries_after_reconciling() {
        let d = decide_after(Outcome::Failed(Failure::ambiguous("timeout")), false, 0);
        assert_eq!(
            d.action,
            Action::Retry {
                at: now() + chrono::Duration::seconds(10),
                last_failure_kind: "ambiguous",
                ambiguous: true,
                retryable_failures: Some(1),
                announce: Some(PostFailureKind::Ambiguous),
            }
        );
        assert_eq!(d.outcome, "ambiguous");
    }

    #[test]
    fn retryable_failures_past_the_budget_dead_letter() {
        for failure in [Failure::transient("502"), Failure::ambiguous("timeout")] {
            let kind = failure_kind(&failure);
            let name = failure_kind_name(&failure);
            let detail = failure.to_string();
            let d = decide(
                &Facts {
                    outcome: &Outcome::Failed(failure),
                    credential_replaced: false,
                    retryable_failures: 5,
                    max_retries: 5,
                    now: now(),
                },
                |_| panic!("no backoff past the budget"),
            );
            assert_eq!(
                d,
                Decision {
                    action: Action::DeadLetter {
                        kind,
                        reason: format!("gave up after 6 failed attempts: {detail}"),
                        announce: true,
                    },
                    outcome: name,
                    detail,
                }
            );
        }
    }

    #[test]
    fn no_retries_allowed_dead_letters_the_first_transient_failure() {
        let outcome = Outcome::Failed(Failure::transient("502"));
        let facts = Facts {
            outcome: &outcome,
            credential_replaced: false,
            retryable_failures: 0,
            max_retries: 0,
            now: now(),
        };
        let d = decide(&facts, |_| panic!("no backoff past the budget"));
        assert!(matches!(d.action, Action::DeadLetter { announce: true, .. }));
    }

    #[test]
    fn rejected_content_dead_letters_at_once() {
        let (d, detail) = decide_failure(Failure::rejected("too long"), false, 0);
        assert_eq!(
            d,
            Decision {
                action: Action::DeadLetter {
                    kind: PostFailureKind::Rejected,
                    reason: detail.clone(),
                    announce: true,
                },
                outcome: "rejected",
                detail,
            }
        );
    }
}
