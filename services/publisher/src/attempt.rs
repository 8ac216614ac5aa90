//! One publish attempt of a leased post: load the credential, reconcile if the last attempt's
//! outcome is unknown, call the platform, and record the outcome and its events in one
//! transaction guarded by the lease.

use std::time::Duration;

use chrono::Utc;
use lifeline_kit::{
    events::{
        self, timestamp, AuthFailed, AuthFailureSource, Envelope, PostDeadLettered, PostFailed,
        PostFailureKind, PostPublished,
    },
    Platform,
};
use lifeline_platforms::{AccessToken, Failure, Published};
use tracing::Instrument;

use crate::{model::Post, AppState};

/// What became of an attempt.
#[derive(Debug)]
enum Outcome {
    Published(Published, /* found by reconciliation */ bool),
    Failed(Failure),
    /// The account has no credentials any more (disconnected).
    NoCredentials,
}

/// Runs one attempt of a post this replica holds the lease on. `cause` is the event that asked
/// for it (a retry request), so the resulting events join its trace and correlation.
pub(crate) async fn run(app: &AppState, post: Post, cause: Option<&Envelope>) {
    let span = tracing::info_span!("publish_attempt", post = %post.id, attempt = post.attempts);
    run_attempt(app, post, cause).instrument(span).await
}

async fn run_attempt(app: &AppState, post: Post, cause: Option<&Envelope>) {
    let _permit = app.platform_calls.acquire().await;
    // Waiting for a permit may have taken a while: renew the lease, and give up if another
    // holder took the post meanwhile, so two attempts never call the platform at once.
    match renew_lease(app, &post).await {
        Ok(true) => {}
        Ok(false) => {
            tracing::warn!(post = %post.id, "lease expired while waiting to publish; the new holder publishes");
            return;
        }
        Err(e) => {
            tracing::warn!(post = %post.id, error = %e, "cannot renew the lease; the post will be retried");
            return;
        }
    }
    let platform: Platform = match post.platform.parse() {
        Ok(p) => p,
        Err(e) => {
            tracing::error!(post = %post.id, error = %e, "post has an unknown platform");
            return;
        }
    };
    let (outcome, credential_version) = call_platform(app, &post, platform).await;
    let kind = match &outcome {
        Outcome::Published(..) => "published",
        Outcome::NoCredentials => "no_credentials",
        Outcome::Failed(f) => failure_kind_name(f),
    };
    metrics::counter!("lifeline_publish_attempts_total", "platform" => platform.as_str(), "outcome" => kind).increment(1);
    if let Err(e) = record(app, &post, platform, outcome, credential_version, cause).await {
        // The lease will expire and the sweep will take the post again, reconciling first.
        tracing::error!(post = %post.id, error = %e, "cannot record the attempt's outcome");
    }
}

async fn renew_lease(app: &AppState, post: &Post) -> Result<bool, sqlx::Error> {
    let renewed = sqlx::query(
        "UPDATE publisher.posts SET lease_until = now() + make_interval(secs => $4)
         WHERE id = $1 AND status = 'publishing' AND lease_owner = $2 AND attempts = $3",
    )
    .bind(post.id)
    .bind(&app.config.common.instance_id)
    .bind(post.attempts)
    .bind(app.config.lease.as_secs_f64())
    .execute(&app.pool)
    .await?;
    Ok(renewed.rows_affected() == 1)
}

async fn call_platform(app: &AppState, post: &Post, platform: Platform) -> (Outcome, i64) {
    let Some(connector) = app.connectors.get(platform) else {
        return (
            Outcome::Failed(Failure::transient(format!(
                "{platform} is not configured on this publisher"
            ))),
            0,
        );
    };
    let credential = match app.vault.load(post.account_id).await {
        Ok(Some(c)) => c,
        Ok(None) => return (Outcome::NoCredentials, 0),
        Err(e) => return (Outcome::Failed(Failure::transient(format!("vault: {e}"))), 0),
    };
    let token = AccessToken {
        secret: credential.tokens.access_token.clone(),
        expires_at: credential.tokens.access_expires_at,
    };
    let draft = post.draft();
    if post.needs_reconcile {
        // Look a little before the first unknown attempt, for clock skew with the platform.
        let since = post.reconcile_since.unwrap_or(post.created_at) - chrono::Duration::minutes(5);
        match connector.find_published(&token, &credential.platform_user_id, &draft, since).await {
            Ok(Some(found)) => return (Outcome::Published(found, true), credential.version),
            Ok(None) => {}
            Err(f) => return (Outcome::Failed(f), credential.version),
        }
    }
    let outcome = match connector.publish(&token, &credential.platform_user_id, &draft).await {
        Ok(p) => Outcome::Published(p, false),
        Err(f) => Outcome::Failed(f),
    };
    (outcome, credential.version)
}

fn failure_kind_name(f: &Failure) -> &'static str {
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

async fn record(
    app: &AppState,
    post: &Post,
    platform: Platform,
    outcome: Outcome,
    credential_version: i64,
    cause: Option<&Envelope>,
) -> Result<(), sqlx::Error> {
    let owner = &app.config.common.instance_id;
    let about = events::Subject {
        workspace_id: post.workspace_id.0,
        account_id: post.account_id.0,
        platform,
    };
    let envelope = || Envelope::build(about, cause);
    let attempt = u32::try_from(post.attempts).unwrap_or_default();
    let mut tx = app.pool.begin().await?;

    // The lease guard: if we lost the lease (we were slower than it), the new holder decides.
    let still_ours: Option<i32> = sqlx::query_scalar(
        "SELECT attempts FROM publisher.posts WHERE id = $1 AND status = 'publishing' AND lease_owner = $2 FOR UPDATE",
    )
    .bind(post.id)
    .bind(owner)
    .fetch_optional(&mut *tx)
    .await?;
    if still_ours != Some(post.attempts) {
        tracing::warn!(post = %post.id, "lease lost before the outcome was recorded; leaving it to the new holder");
        return Ok(());
    }

    let (outcome_name, detail) = match &outcome {
        Outcome::Published(p, reconciled) => {
            sqlx::query(
                "UPDATE publisher.posts SET status = 'published', platform_post_id = $2, published_at = now(),
                     needs_reconcile = false, lease_owner = NULL, lease_until = NULL, updated_at = now()
                 WHERE id = $1",
            )
            .bind(post.id)
            .bind(&p.platform_post_id)
            .execute(&mut *tx)
            .await?;
            let event = PostPublished {
                envelope: Some(envelope()),
                post_id: post.id.to_string(),
                platform_post_id: p.platform_post_id.clone(),
                attempt,
            };
            app.outbox.enqueue(&mut tx, &event).await?;
            tracing::info!(post = %post.id, %platform, attempt, reconciled, "post published");
            (
                "published",
                if *reconciled {
                    "found on the platform after an unknown outcome".to_owned()
                } else {
                    String::new()
                },
            )
        }
        Outcome::NoCredentials => {
            dead_letter(
                app,
                &mut tx,
                post,
                about,
                cause,
                PostFailureKind::Auth,
                "the account is disconnected",
            )
            .await?;
            ("dead_lettered", "the account is disconnected".to_owned())
        }
        Outcome::Failed(failure) => {
            let detail = failure.to_string();
            let kind = failure_kind(failure);
            let failed_event = |will_retry: bool, next: Option<chrono::DateTime<Utc>>| PostFailed {
                envelope: Some(envelope()),
                post_id: post.id.to_string(),
                kind: kind as i32,
                detail: detail.clone(),
                attempt,
                will_retry,
                next_attempt_at: next.map(timestamp),
            };
            match failure {
                Failure::Auth { .. }
                    if replaced_since(&mut tx, post.account_id, credential_version).await? =>
                {
                    // The token was replaced (refreshed or reconnected) while this call was out:
                    // try again with the new one instead of parking the post.
                    reschedule(&mut tx, post, Utc::now(), "auth", &detail, false).await?;
                    tracing::info!(post = %post.id, %platform, "auth failure with a token replaced since; retrying at once");
                }
                Failure::Auth { cause: auth_cause, .. } => {
                    sqlx::query(
                        "UPDATE publisher.posts SET status = 'failed_auth', last_failure_kind = 'auth', last_error = $2,
                             lease_owner = NULL, lease_until = NULL, updated_at = now()
                         WHERE id = $1",
                    )
                    .bind(post.id)
                    .bind(&detail)
                    .execute(&mut *tx)
                    .await?;
                    let auth_failed = AuthFailed {
                        envelope: Some(envelope()),
                        cause: *auth_cause as i32,
                        source: AuthFailureSource::Publish as i32,
                        detail: detail.clone(),
                        credential_version: u64::try_from(credential_version).unwrap_or_default(),
                        post_id: post.id.to_string(),
                    };
                    app.outbox.enqueue(&mut tx, &auth_failed).await?;
                    app.outbox.enqueue(&mut tx, &failed_event(false, None)).await?;
                    tracing::warn!(post = %post.id, %platform, cause = auth_cause.as_str(), "post parked until the account is reconnected");
                }
                Failure::RateLimited { retry_after, .. } => {
                    let wait = retry_after
                        .unwrap_or(Duration::from_secs(60))
                        .min(Duration::from_secs(24 * 3600));
                    let next = Utc::now() + chrono::Duration::from_std(wait).unwrap_or_default();
                    reschedule(&mut tx, post, next, "rate_limited", &detail, false).await?;
                    app.outbox.enqueue(&mut tx, &failed_event(true, Some(next))).await?;
                }
                Failure::Transient { .. } | Failure::Ambiguous { .. } => {
                    let failures = post.retryable_failures + 1;
                    if failures > app.config.max_retries {
                        app.outbox.enqueue(&mut tx, &failed_event(false, None)).await?;
                        let reason = format!("gave up after {failures} failed attempts: {detail}");
                        dead_letter(app, &mut tx, post, about, cause, kind, &reason).await?;
                    } else {
                        let next = Utc::now()
                            + chrono::Duration::from_std(lifeline_kit::backoff::full_jitter(
                                app.config.retry_base,
                                failures,
                            ))
                            .unwrap_or_default();
                        let ambiguous = matches!(failure, Failure::Ambiguous { .. });
                        reschedule(
                            &mut tx,
                            post,
                            next,
                            failure_kind_name(failure),
                            &detail,
                            ambiguous,
                        )
                        .await?;
                        sqlx::query(
                            "UPDATE publisher.posts SET retryable_failures = $2 WHERE id = $1",
                        )
                        .bind(post.id)
                        .bind(failures)
                        .execute(&mut *tx)
                        .await?;
                        app.outbox.enqueue(&mut tx, &failed_event(true, Some(next))).await?;
                    }
                }
                Failure::Rejected { .. } => {
                    app.outbox.enqueue(&mut tx, &failed_event(false, None)).await?;
                    dead_letter(app, &mut tx, post, about, cause, kind, &detail).await?;
                }
            }
            (failure_kind_name(failure), detail.clone())
        }
    };
    sqlx::query(
        "UPDATE publisher.attempts SET finished_at = now(), outcome = $3, detail = $4, credential_version = $5
         WHERE post_id = $1 AND attempt = $2",
    )
    .bind(post.id)
    .bind(post.attempts)
    .bind(outcome_name)
    .bind(&detail)
    .bind(credential_version)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    app.outbox.wake();
    Ok(())
}

/// Whether the vault holds a newer credential than `version`. The row is share-locked until the
/// caller's transaction ends, so a refresh or reconnect storing a newer one waits for this
/// post's fate to be committed; its AccountReconnected then finds the post parked.
async fn replaced_since(
    tx: &mut sqlx::PgConnection,
    account: lifeline_kit::ids::AccountId,
    version: i64,
) -> Result<bool, sqlx::Error> {
    let current: Option<i64> =
        sqlx::query_scalar("SELECT version FROM vault.credentials WHERE account_id = $1 FOR SHARE")
            .bind(account)
            .fetch_optional(tx)
            .await?;
    Ok(current.is_some_and(|v| v > version))
}

async fn reschedule(
    tx: &mut sqlx::PgConnection,
    post: &Post,
    next: chrono::DateTime<Utc>,
    kind: &str,
    detail: &str,
    ambiguous: bool,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE publisher.posts SET status = 'scheduled', next_attempt_at = $2, last_failure_kind = $3, last_error = $4,
             needs_reconcile = needs_reconcile OR $5,
             reconcile_since = CASE WHEN $5 AND reconcile_since IS NULL THEN now() ELSE reconcile_since END,
             lease_owner = NULL, lease_until = NULL, updated_at = now()
         WHERE id = $1",
    )
    .bind(post.id)
    .bind(next)
    .bind(kind)
    .bind(detail)
    .bind(ambiguous)
    .execute(tx)
    .await?;
    Ok(())
}

async fn dead_letter(
    app: &AppState,
    tx: &mut sqlx::PgConnection,
    post: &Post,
    about: events::Subject,
    cause: Option<&Envelope>,
    kind: PostFailureKind,
    reason: &str,
) -> Result<(), sqlx::Error> {
    let kind_name = kind.as_str_name().trim_start_matches("POST_FAILURE_KIND_").to_lowercase();
    sqlx::query(
        "UPDATE publisher.posts SET status = 'dead_lettered', last_failure_kind = $2, last_error = $3,
             lease_owner = NULL, lease_until = NULL, updated_at = now()
         WHERE id = $1",
    )
    .bind(post.id)
    .bind(&kind_name)
    .bind(reason)
    .execute(&mut *tx)
    .await?;
    sqlx::query(
        "INSERT INTO publisher.dead_letters (post_id, workspace_id, kind, reason, attempts)
         VALUES ($1, $2, $3, $4, $5)
         ON CONFLICT (post_id) DO UPDATE SET kind = $3, reason = $4, attempts = $5, dead_lettered_at = now(), replayed_at = NULL",
    )
    .bind(post.id)
    .bind(post.workspace_id)
    .bind(&kind_name)
    .bind(reason)
    .bind(post.attempts)
    .execute(&mut *tx)
    .await?;
    let event = PostDeadLettered {
        envelope: Some(Envelope::build(about, cause)),
        post_id: post.id.to_string(),
        kind: kind as i32,
        reason: reason.to_owned(),
        attempts: u32::try_from(post.attempts).unwrap_or_default(),
    };
    app.outbox.enqueue(tx, &event).await?;
    tracing::error!(post = %post.id, platform = %about.platform, %reason, "post dead-lettered");
    Ok(())
}
