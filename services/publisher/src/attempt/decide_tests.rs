//! Tests of `decide.rs`.
use super::*;

fn now() -> DateTime<Utc> {
    DateTime::from_timestamp(1_800_000_000, 0).unwrap()
}

/// Retries after 10 s, 20 s, … 50 s, then every 50 s, for an hour.
fn policy() -> RetryPolicy {
    RetryPolicy {
        schedule: (1..=5).map(|n| Duration::from_secs(10 * n)).collect(),
        window: Duration::from_secs(3600),
    }
}

/// The decision for `outcome` of a post with `retryable_failures` so far, unavailable
/// since `since` seconds ago (`None`: it was not).
fn decide_at(
    outcome: Outcome,
    retryable_failures: i32,
    since: Option<i64>,
    retry: &RetryPolicy,
) -> Decision {
    let facts = Facts {
        outcome: &outcome,
        credential_replaced: false,
        retryable_failures,
        unavailable_since: since.map(|s| now() - chrono::Duration::seconds(s)),
        last_error: None,
        retry,
        unchecked: None,
        now: now(),
    };
    decide(&facts, |delay| delay)
}

/// The decision for `outcome` of a post with `retryable_failures` so far, within the window.
fn decide_after(outcome: Outcome, replaced: bool, retryable_failures: i32) -> Decision {
    let retry = policy();
    let facts = Facts {
        outcome: &outcome,
        credential_replaced: replaced,
        retryable_failures,
        unavailable_since: None,
        last_error: None,
        retry: &retry,
        unchecked: None,
        now: now(),
    };
    decide(&facts, |delay| delay)
}

/// The decision after `failure`, and the failure as it is told.
fn decide_failure(failure: Failure, replaced: bool, retryable: i32) -> (Decision, String) {
    let detail = failure.to_string();
    (decide_after(Outcome::Failed(failure), replaced, retryable), detail)
}

fn published(id: &str) -> Published {
    Published::new(id.to_owned())
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
            unavailable_since: None,
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
                        unavailable_since: None,
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
fn a_transient_failure_within_the_window_retries_on_the_schedule() {
    let (d, detail) = decide_failure(Failure::transient("502"), false, 4);
    assert_eq!(
        d,
        Decision {
            action: Action::Retry {
                at: now() + chrono::Duration::seconds(50),
                last_failure_kind: "transient",
                ambiguous: false,
                retryable_failures: Some(5),
                unavailable_since: Some(now()),
                announce: Some(PostFailureKind::Transient),
            },
            outcome: "transient",
            detail,
        }
    );
}

#[test]
fn an_ambiguous_failure_within_the_window_retries_after_reconciling() {
    let d = decide_after(Outcome::Failed(Failure::ambiguous("timeout")), false, 0);
    assert_eq!(
        d.action,
        Action::Retry {
            at: now() + chrono::Duration::seconds(10),
            last_failure_kind: "ambiguous",
            ambiguous: true,
            retryable_failures: Some(1),
            unavailable_since: Some(now()),
            announce: Some(PostFailureKind::Ambiguous),
        }
    );
    assert_eq!(d.outcome, "ambiguous");
}

#[test]
fn the_schedule_grows_its_last_delay_repeats_and_the_first_failure_starts_the_clock() {
    let retry = policy();
    let at = |failures: i32, since: Option<i64>| match decide_at(
        Outcome::Failed(Failure::transient("503")),
        failures,
        since,
        &retry,
    )
    .action
    {
        Action::Retry { at, unavailable_since, .. } => {
            ((at - now()).num_seconds(), (now() - unavailable_since.unwrap()).num_seconds())
        }
        other => panic!("not a retry: {other:?}"),
    };
    assert_eq!(at(0, None), (10, 0), "the first failure starts the clock now");
    assert_eq!(at(1, Some(10)), (20, 10), "a later one keeps it");
    assert_eq!(at(4, Some(100)), (50, 100));
    assert_eq!(at(30, Some(3000)), (50, 3000), "the last delay repeats");
    assert_eq!(at(30, Some(3570)), (30, 3570), "the last try is at the window's end");
}

#[test]
fn retryable_failures_past_the_window_dead_letter_naming_it() {
    for failure in [Failure::transient("502"), Failure::ambiguous("timeout")] {
        let kind = failure_kind(&failure);
        let name = failure_kind_name(&failure);
        let detail = failure.to_string();
        let retry = policy();
        let d = decide(
            &Facts {
                outcome: &Outcome::Failed(failure),
                credential_replaced: false,
                retryable_failures: 7,
                unavailable_since: Some(now() - chrono::Duration::seconds(3601)),
                last_error: Some("transient failure: X 503"),
                retry: &retry,
                unchecked: None,
                now: now(),
            },
            |_| panic!("no retry past the window"),
        );
        assert_eq!(
            d,
            Decision {
                action: Action::DeadLetter {
                    kind,
                    reason: format!(
                        "platform unavailable for 60m; gave up after 8 failed attempts: {detail}"
                    ),
                    announce: true,
                },
                outcome: name,
                detail,
            }
        );
    }
}

#[test]
fn the_default_window_is_told_in_hours() {
    let retry = RetryPolicy {
        schedule: vec![Duration::from_secs(5)],
        window: Duration::from_secs(27 * 3600 + 35 * 60 + 5),
    };
    let d = decide_at(Outcome::Failed(Failure::transient("503")), 7, Some(99_400), &retry);
    assert!(
        matches!(&d.action, Action::DeadLetter { reason, .. }
            if reason.starts_with("platform unavailable for 28h; gave up after 8 failed attempts: ")),
        "{d:?}"
    );
}

#[test]
fn a_held_post_past_the_window_tells_the_platform_s_last_answer() {
    let retry = policy();
    let outcome = Outcome::Held { until: now() };
    let facts = Facts {
        outcome: &outcome,
        credential_replaced: false,
        retryable_failures: 4,
        unavailable_since: Some(now() - chrono::Duration::seconds(4000)),
        last_error: Some("transient failure: X 503: Service Unavailable"),
        retry: &retry,
        unchecked: None,
        now: now(),
    };
    let d = decide(&facts, |_| panic!("no retry past the window"));
    assert!(
        matches!(&d.action, Action::DeadLetter { reason, announce: false, .. } if reason
            == "platform unavailable for 67m; gave up after 4 failed attempts: \
                transient failure: X 503: Service Unavailable (then held by the circuit breaker)"),
        "{d:?}"
    );
}

#[test]
fn a_zero_window_dead_letters_the_first_transient_failure() {
    let retry = RetryPolicy { schedule: vec![Duration::from_secs(1)], window: Duration::ZERO };
    let d = decide_at(Outcome::Failed(Failure::transient("502")), 0, None, &retry);
    assert!(matches!(d.action, Action::DeadLetter { announce: true, .. }), "{d:?}");
}

#[test]
fn a_post_the_breaker_held_waits_for_the_trial_without_counting_a_failure() {
    let until = now() + chrono::Duration::seconds(30);
    let d = decide_at(Outcome::Held { until }, 2, None, &policy());
    assert_eq!(
        d,
        Decision {
            action: Action::Hold { at: until, unavailable_since: now() },
            outcome: "held",
            detail: "the platform's circuit breaker is open; no call was made".into(),
        }
    );
    let earlier = decide_at(Outcome::Held { until }, 2, Some(600), &policy());
    assert_eq!(
        earlier.action,
        Action::Hold { at: until, unavailable_since: now() - chrono::Duration::seconds(600) }
    );
}

#[test]
fn a_post_held_past_the_window_is_dead_lettered_without_a_call() {
    let until = now() + chrono::Duration::seconds(30);
    let d = decide_at(Outcome::Held { until }, 3, Some(7200), &policy());
    let reason = "platform unavailable for 2h; gave up after 3 failed attempts: \
                  held by the circuit breaker; no call was made";
    assert_eq!(
        d,
        Decision {
            action: Action::DeadLetter {
                kind: PostFailureKind::Transient,
                reason: reason.into(),
                announce: false,
            },
            outcome: "dead_lettered",
            detail: reason.into(),
        }
    );
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

const LINKEDIN: Unchecked = Unchecked { platform: "LinkedIn", why: "it lists nothing" };

/// The decision for `outcome` on a platform that cannot be checked, within the window.
fn decide_unchecked(outcome: Outcome) -> Decision {
    let retry = policy();
    let facts = Facts {
        outcome: &outcome,
        credential_replaced: false,
        retryable_failures: 0,
        unavailable_since: None,
        last_error: None,
        retry: &retry,
        unchecked: Some(LINKEDIN),
        now: now(),
    };
    decide(&facts, |delay| delay)
}

#[test]
fn an_ambiguous_failure_where_nothing_can_check_is_handed_to_an_operator_not_retried() {
    let failure = Failure::ambiguous("no complete answer after sending: request failed");
    let detail = failure.to_string();
    let d = decide_unchecked(Outcome::Failed(failure));
    let Action::HandOver { reason } = &d.action else { panic!("{d:?}") };
    assert!(
        reason.starts_with(
            "outcome unknown and LinkedIn offers no way to check (it lists nothing); check the account and replay or discard"
        ),
        "{reason}"
    );
    assert!(reason.ends_with(&detail), "the last answer is told: {reason}");
    assert_eq!((d.outcome, d.detail.as_str()), ("ambiguous", detail.as_str()));
}

#[test]
fn an_unknown_outcome_where_nothing_can_check_is_handed_over_without_a_call() {
    let d = decide_unchecked(Outcome::Unknown { last: "LinkedIn 500".into() });
    let Action::HandOver { reason } = &d.action else { panic!("{d:?}") };
    assert!(reason.contains("LinkedIn offers no way to check"), "{reason}");
    assert!(reason.ends_with("Last answer: LinkedIn 500"), "{reason}");
    assert_eq!(d.outcome, "outcome_unknown");
}

#[test]
fn only_ambiguous_failures_are_handed_over_where_nothing_can_check() {
    let d = decide_unchecked(Outcome::Failed(Failure::transient("LinkedIn 503")));
    assert!(matches!(d.action, Action::Retry { ambiguous: false, .. }), "{d:?}");
    let d = decide_unchecked(Outcome::Failed(Failure::rejected("policy")));
    assert!(matches!(d.action, Action::DeadLetter { .. }), "{d:?}");
    let d = decide_unchecked(Outcome::Published(published("urn:li:share:1"), false));
    assert!(matches!(d.action, Action::Publish { .. }), "{d:?}");
}

#[test]
fn a_paced_post_is_queued_for_its_window_without_a_failure_however_long_it_waited() {
    let until = now() + chrono::Duration::seconds(600);
    // Even a post the platform kept back for longer than the retry window is only paced.
    for since in [None, Some(7200)] {
        let d = decide_at(Outcome::Paced { until }, 2, since, &policy());
        assert_eq!(d.action, Action::Pace { at: until });
        assert_eq!(d.outcome, "paced");
        assert!(d.detail.contains("posting limit is spent"), "{}", d.detail);
    }
    // A window that has begun already means now.
    let d = decide_at(
        Outcome::Paced { until: now() - chrono::Duration::seconds(1) },
        0,
        None,
        &policy(),
    );
    assert_eq!(d.action, Action::Pace { at: now() });
}

#[test]
fn a_rate_limit_that_still_happens_is_retried_at_the_reset_and_not_counted() {
    let retry = policy();
    let d = decide_at(
        Outcome::Failed(Failure::RateLimited {
            retry_after: Some(Duration::from_secs(300)),
            detail: "X 429: Rate limit exceeded".into(),
        }),
        4,
        Some(7200),
        &retry,
    );
    match d.action {
        Action::Retry { at, retryable_failures: None, unavailable_since: None, .. } => {
            assert_eq!(at, now() + chrono::Duration::seconds(300))
        }
        other => panic!("expected a retry at the reset, got {other:?}"),
    }
}
