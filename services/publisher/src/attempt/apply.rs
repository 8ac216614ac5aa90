//! Records an attempt: gathers the facts [`decide`](super::decide) needs, then writes its
//! decision (the post, the attempt row, the events into the outbox) in one transaction guarded
//! by the lease.

use chrono::{DateTime, Utc};
use lifeline_kit::{
    events::{
        self, timestamp, AuthFailed, AuthFailureCause, AuthFailureSource, Envelope,
        PostDeadLettered, PostFailed, PostFailureKind, PostPublished,
    },
    Platform,
};
use lifeline_platforms::{Failure, Reconciliation};
use sqlx::PgConnection;

use super::decide::{self, Action, Decision, Facts, Outcome};
use crate::{model::Post, pacing, store::outcomes, AppState};

/// What the attempt did: its outcome, the credential version it used, and whether its call was
/// reserved against the account's posting budget (then what the answer said of the budget is
/// recorded with the outcome).
pub(super) struct Call {
    pub outcome: Outcome,
    pub credential_version: i64,
    pub reserved: bool,
}

/// What the answer told of the account's budget, for a reserved call.
fn heard(post: &Post, call: &Call) -> Option<(lifeline_kit::ids::AccountId, pacing::Heard)> {
    if !call.reserved {
        return None;
    }
    let heard = match &call.outcome {
        Outcome::Published(p, _) => pacing::heard_from_published(p),
        Outcome::Failed(f) => pacing::heard_from_failure(f, Utc::now()),
        _ => pacing::Heard::Nothing,
    };
    Some((post.account_id, heard))
}

/// The post an attempt was for, as every write of its outcome needs it.
struct Attempt<'a> {
    app: &'a AppState,
    post: &'a Post,
    platform: Platform,
    about: events::Subject,
    /// The event that asked for the attempt, if any.
    cause: Option<&'a Envelope>,
    credential_version: i64,
}

impl Attempt<'_> {
    fn envelope(&self) -> Envelope {
        Envelope::build(self.about, self.cause)
    }

    fn number(&self) -> u32 {
        u32::try_from(self.post.attempts).unwrap_or_default()
    }

    fn failed_event(
        &self,
        kind: PostFailureKind,
        detail: &str,
        next: Option<DateTime<Utc>>,
    ) -> PostFailed {
        PostFailed {
            envelope: Some(self.envelope()),
            post_id: self.post.id.to_string(),
            kind: kind as i32,
            detail: detail.to_owned(),
            attempt: self.number(),
            will_retry: next.is_some(),
            next_attempt_at: next.map(timestamp),
        }
    }
}

/// Records the outcome of the attempt in one transaction, unless the lease was lost meanwhile
/// (then the new holder decides).
pub(super) async fn record(
    app: &AppState,
    post: &Post,
    platform: Platform,
    call: Call,
    cause: Option<&Envelope>,
) -> Result<(), sqlx::Error> {
    let owner = &app.config.common.instance_id;
    let heard = heard(post, &call);
    let Call { outcome, credential_version, .. } = call;
    let about = events::Subject {
        workspace_id: post.workspace_id.0,
        account_id: post.account_id.0,
        platform,
    };
    let attempt = Attempt { app, post, platform, about, cause, credential_version };
    if let Outcome::Published(found, reconciled) = &outcome {
        // A success needs no fact from the database: it joins the next group commit.
        let facts = facts(app, post, platform, &outcome, false);
        let decision = decide::decide(&facts, spread);
        if let Action::Publish { .. } = decision.action {
            return record_published(
                &attempt,
                &found.platform_post_id,
                *reconciled,
                decision,
                heard,
            )
            .await;
        }
    }
    let mut tx = app.pool.begin().await?;

    // The lease guard: if we lost the lease (we were slower than it), the new holder decides.
    let still_ours = outcomes::lock_leased(&mut tx, post.id, owner).await?;
    if still_ours != Some(post.attempts) {
        tracing::warn!(post = %post.id, "lease lost before the outcome was recorded; leaving it to the new holder");
        return Ok(());
    }
    if let Some(heard) = heard {
        pacing::store::observe(&mut tx, &[heard]).await?;
    }

    let credential_replaced = matches!(outcome, Outcome::Failed(Failure::Auth { .. }))
        && outcomes::credential_replaced_since(&mut tx, post.account_id, credential_version)
            .await?;
    let facts = facts(app, post, platform, &outcome, credential_replaced);
    let decision = decide::decide(&facts, spread);
    if let Action::HandOver { reason } = &decision.action {
        tracing::warn!(post = %post.id, %platform, %reason, "outcome unknown on a platform that cannot be checked; not sending it again");
    }
    apply(&attempt, &mut tx, &decision).await?;
    if let Action::Hold { .. } | Action::Pace { .. } = decision.action {
        // Not an attempt: `hold` removed its row.
        tx.commit().await?;
        return Ok(());
    }
    let (outcome, detail) = (decision.outcome, &decision.detail);
    outcomes::finish_attempt(&mut tx, post.id, post.attempts, outcome, detail, credential_version)
        .await?;
    tx.commit().await?;
    app.outbox.wake();
    Ok(())
}

fn facts<'a>(
    app: &'a AppState,
    post: &'a Post,
    platform: Platform,
    outcome: &'a Outcome,
    credential_replaced: bool,
) -> Facts<'a> {
    Facts {
        outcome,
        credential_replaced,
        retryable_failures: post.retryable_failures,
        unavailable_since: post.unavailable_since,
        last_error: post.last_error.as_deref(),
        retry: &app.config.retry,
        unchecked: unchecked(app, platform),
        now: Utc::now(),
    }
}

/// Records a published post through the group commit (see [`super::batch`]): the same writes
/// as [`publish`] plus the attempt row, guarded by the lease, batched with other handlers'.
async fn record_published(
    a: &Attempt<'_>,
    platform_post_id: &str,
    reconciled: bool,
    decision: Decision,
    heard: Option<(lifeline_kit::ids::AccountId, pacing::Heard)>,
) -> Result<(), sqlx::Error> {
    let record = super::batch::PublishedRecord {
        heard,
        post: a.post.id,
        attempt: a.post.attempts,
        platform_post_id: platform_post_id.to_owned(),
        detail: decision.detail,
        credential_version: a.credential_version,
        event: PostPublished {
            envelope: Some(a.envelope()),
            post_id: a.post.id.to_string(),
            platform_post_id: platform_post_id.to_owned(),
            attempt: a.number(),
        },
        span: tracing::Span::current(),
    };
    match a.app.batches.published.call(record).await {
        Ok(true) => {
            tracing::info!(post = %a.post.id, platform = %a.platform, attempt = a.number(), reconciled, "post published");
            Ok(())
        }
        Ok(false) => {
            tracing::warn!(post = %a.post.id, "lease lost before the outcome was recorded; leaving it to the new holder");
            Ok(())
        }
        Err(e) => Err(sqlx::Error::Protocol(e.to_string())),
    }
}

/// Whether `platform` cannot tell if an ambiguous publish went out, and why.
fn unchecked(app: &AppState, platform: Platform) -> Option<decide::Unchecked> {
    match app.connectors.get(platform)?.reconciliation() {
        Reconciliation::Lists => None,
        Reconciliation::CannotCheck { why } => {
            Some(decide::Unchecked { platform: platform.display_name(), why })
        }
    }
}

/// Up to a tenth more than the schedule's delay, so that posts that failed together do not all
/// come back at the same instant.
fn spread(delay: std::time::Duration) -> std::time::Duration {
    use rand::Rng;
    delay.mul_f64(1.0 + rand::thread_rng().gen_range(0.0..0.1))
}

/// Writes the decision about the post and stages its events.
async fn apply(
    a: &Attempt<'_>,
    tx: &mut PgConnection,
    decision: &Decision,
) -> Result<(), sqlx::Error> {
    let detail = &decision.detail;
    match &decision.action {
        Action::Publish { platform_post_id, reconciled } => {
            publish(a, tx, platform_post_id, *reconciled).await
        }
        Action::Retry {
            at,
            last_failure_kind,
            ambiguous,
            retryable_failures,
            unavailable_since,
            announce,
        } => {
            outcomes::reschedule(tx, a.post.id, *at, last_failure_kind, detail, *ambiguous).await?;
            if let Some(failures) = retryable_failures {
                outcomes::count_retryable_failures(tx, a.post.id, *failures, *unavailable_since)
                    .await?;
            }
            match announce {
                Some(kind) => {
                    a.app.outbox.enqueue(tx, &a.failed_event(*kind, detail, Some(*at))).await?;
                }
                None => {
                    tracing::info!(post = %a.post.id, platform = %a.platform, "auth failure with a token replaced since; retrying at once");
                }
            }
            Ok(())
        }
        Action::Hold { at, unavailable_since } => {
            let since = Some(*unavailable_since);
            outcomes::hold(tx, a.post.id, a.post.attempts, *at, since).await?;
            tracing::debug!(post = %a.post.id, platform = %a.platform, %at, "circuit breaker open; post held until its next trial");
            Ok(())
        }
        Action::Pace { at } => {
            outcomes::hold(tx, a.post.id, a.post.attempts, *at, None).await?;
            let queued = PostFailed {
                attempt: a.number().saturating_sub(1),
                ..a.failed_event(PostFailureKind::RateLimited, detail, Some(*at))
            };
            a.app.outbox.enqueue(tx, &queued).await?;
            tracing::debug!(post = %a.post.id, platform = %a.platform, %at, "account's posting limit spent; post queued for its window");
            Ok(())
        }
        Action::Park { cause } => park(a, tx, *cause, detail).await,
        Action::DeadLetter { kind, reason, announce } => {
            if *announce {
                a.app.outbox.enqueue(&mut *tx, &a.failed_event(*kind, detail, None)).await?;
            }
            dead_letter(a, tx, *kind, reason).await
        }
        Action::HandOver { reason } => hand_over(a, tx, detail, reason).await,
    }
}

/// Dead-letters a post whose outcome is unknown on a platform that cannot be checked. The
/// unknown outcome becomes the operator's to settle: `needs_reconcile` is cleared, so a replay
/// (the operator looked and the post is not there) sends it, where a check would only hand it
/// back again.
async fn hand_over(
    a: &Attempt<'_>,
    tx: &mut PgConnection,
    detail: &str,
    reason: &str,
) -> Result<(), sqlx::Error> {
    let kind = PostFailureKind::Ambiguous;
    a.app.outbox.enqueue(&mut *tx, &a.failed_event(kind, detail, None)).await?;
    dead_letter(a, tx, kind, reason).await?;
    outcomes::clear_reconcile(tx, a.post.id).await?;
    Ok(())
}

async fn publish(
    a: &Attempt<'_>,
    tx: &mut PgConnection,
    platform_post_id: &str,
    reconciled: bool,
) -> Result<(), sqlx::Error> {
    outcomes::publish(tx, a.post.id, platform_post_id).await?;
    let event = PostPublished {
        envelope: Some(a.envelope()),
        post_id: a.post.id.to_string(),
        platform_post_id: platform_post_id.to_owned(),
        attempt: a.number(),
    };
    a.app.outbox.enqueue(tx, &event).await?;
    tracing::info!(post = %a.post.id, platform = %a.platform, attempt = a.number(), reconciled, "post published");
    Ok(())
}

/// Parks the post until the account is reconnected, and tells why.
async fn park(
    a: &Attempt<'_>,
    tx: &mut PgConnection,
    cause: AuthFailureCause,
    detail: &str,
) -> Result<(), sqlx::Error> {
    outcomes::park(tx, a.post.id, detail).await?;
    let auth_failed = AuthFailed {
        envelope: Some(a.envelope()),
        cause: cause as i32,
        source: AuthFailureSource::Publish as i32,
        detail: detail.to_owned(),
        credential_version: u64::try_from(a.credential_version).unwrap_or_default(),
        post_id: a.post.id.to_string(),
    };
    a.app.outbox.enqueue(&mut *tx, &auth_failed).await?;
    a.app.outbox.enqueue(&mut *tx, &a.failed_event(PostFailureKind::Auth, detail, None)).await?;
    tracing::warn!(post = %a.post.id, platform = %a.platform, cause = cause.as_str(), "post parked until the account is reconnected");
    Ok(())
}

async fn dead_letter(
    a: &Attempt<'_>,
    tx: &mut PgConnection,
    kind: PostFailureKind,
    reason: &str,
) -> Result<(), sqlx::Error> {
    let post = a.post;
    let kind_name = kind.as_str_name().trim_start_matches("POST_FAILURE_KIND_").to_lowercase();
    outcomes::dead_letter(tx, post, &kind_name, reason).await?;
    let event = PostDeadLettered {
        envelope: Some(a.envelope()),
        post_id: post.id.to_string(),
        kind: kind as i32,
        reason: reason.to_owned(),
        attempts: a.number(),
    };
    a.app.outbox.enqueue(tx, &event).await?;
    tracing::error!(post = %post.id, platform = %a.about.platform, %reason, "post dead-lettered");
    Ok(())
}
