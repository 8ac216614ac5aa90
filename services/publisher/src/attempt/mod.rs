//! One publish attempt of a leased post: load the credential, ask the platform's circuit
//! breaker, reconcile if the last attempt's outcome is unknown (or, on a platform that cannot be
//! checked, hand the post to an operator without a call), reserve the send against the account's
//! posting budget where the platform reports one (`pacing`), call the platform, and record the
//! outcome and its events in one transaction guarded by the lease. What the outcome means for the post is decided in
//! [`decide`] (pure, unit-tested) and written in [`apply`].

mod apply;
pub(crate) mod batch;
mod decide;

use std::time::{Duration, Instant};

use lifeline_kit::{breaker::Admit, events::Envelope, ids::AccountId, Platform};
use lifeline_platforms::{AccessToken, Failure, Reconciliation};
use tracing::Instrument;

use self::decide::{failure_kind_name, Outcome};
use crate::{
    breakers::{wall_time, Breakers},
    model::Post,
    pacing::Verdict,
    AppState,
};

/// Runs one attempt of a post this replica holds the lease on. `cause` is the event that asked
/// for it (a retry request), so the resulting events join its trace and correlation.
pub(crate) async fn run(app: &AppState, post: Post, cause: Option<&Envelope>) {
    let span = tracing::info_span!("publish_attempt", post = %post.id, attempt = post.attempts);
    run_attempt(app, post, cause).instrument(span).await
}

/// The group commits of the publish path (see [`batch`]), one writer task each.
#[derive(Clone)]
pub(crate) struct Batches {
    pub lease: batch::GroupCommit<batch::LeaseRequest, Option<Post>>,
    pub published: batch::GroupCommit<batch::PublishedRecord, bool>,
    /// Reservations against accounts' posting budgets (`pacing::store::reserve`).
    pub pace: batch::GroupCommit<AccountId, Verdict>,
    /// Credentials, read for many attempts in one query (`batch::load_credentials`).
    pub credentials: batch::GroupCommit<AccountId, batch::CredentialAnswer>,
}

impl Batches {
    pub(crate) fn spawn(
        pool: &sqlx::PgPool,
        vault: &lifeline_vault::Vault,
        outbox: &lifeline_kit::outbox::Outbox,
        owner: &str,
        lease_for: Duration,
    ) -> Self {
        let (p, o) = (pool.clone(), owner.to_owned());
        let lease = batch::GroupCommit::spawn(move |requests| {
            let (p, o) = (p.clone(), o.clone());
            async move { batch::lease_for_retry(&p, &o, lease_for.as_secs_f64(), requests).await }
        });
        let (p, o, outbox) = (pool.clone(), owner.to_owned(), outbox.clone());
        let published = batch::GroupCommit::spawn(move |records| {
            let (p, o, outbox) = (p.clone(), o.clone(), outbox.clone());
            async move { batch::record_published(&p, &outbox, &o, records).await }
        });
        let p = pool.clone();
        let pace = batch::GroupCommit::spawn(move |accounts| {
            let p = p.clone();
            // A call unanswered for a lease is dead: the lease outlives any call twice over.
            async move { crate::pacing::store::reserve(&p, lease_for, accounts).await }
        });
        let v = vault.clone();
        let credentials = batch::GroupCommit::spawn(move |accounts| {
            let v = v.clone();
            async move { batch::load_credentials(&v, accounts).await }
        });
        Batches { lease, published, pace, credentials }
    }
}

/// Whether a lease taken just before waiting `waited` for a platform permit must be renewed
/// before the call: only when the wait ate into it, since a renewal is a round trip per post.
/// The lease was taken (by the database clock) before the wait began, so a wait under a quarter
/// of it leaves at least three quarters for the call.
fn must_renew(waited: Duration, lease: Duration) -> bool {
    waited >= lease / 4
}

async fn run_attempt(app: &AppState, post: Post, cause: Option<&Envelope>) {
    let asked = Instant::now();
    let _permit = app.platform_calls.acquire().await;
    if !must_renew(asked.elapsed(), app.config.lease) {
        return call_and_record(app, post, cause).await;
    }
    // Waiting for a permit took a while: renew the lease, and give up if another holder took
    // the post meanwhile, so two attempts never call the platform at once.
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
    call_and_record(app, post, cause).await;
}

async fn call_and_record(app: &AppState, post: Post, cause: Option<&Envelope>) {
    let platform = post.platform;
    let (outcome, credential_version, reserved) = call_platform(app, &post, platform).await;
    let kind = match &outcome {
        Outcome::Published(..) => "published",
        Outcome::NoCredentials => "no_credentials",
        Outcome::Failed(f) => failure_kind_name(f),
        Outcome::Held { .. } => "held",
        Outcome::Paced { .. } => "paced",
        Outcome::Unknown { .. } => "outcome_unknown",
    };
    match kind {
        "held" => Breakers::skipped(platform, 1),
        "paced" => {
            metrics::counter!("lifeline_publish_paced_total", "platform" => platform.as_str())
                .increment(1);
        }
        _ => {
            metrics::counter!("lifeline_publish_attempts_total", "platform" => platform.as_str(), "outcome" => kind).increment(1);
        }
    }
    let call = apply::Call { outcome, credential_version, reserved };
    if let Err(e) = apply::record(app, &post, platform, call, cause).await {
        // The lease will expire and the sweep will take the post again, reconciling first.
        tracing::error!(post = %post.id, error = %e, "cannot record the attempt's outcome");
    }
}

async fn renew_lease(app: &AppState, post: &Post) -> Result<bool, sqlx::Error> {
    let (owner, lease) = (&app.config.common.instance_id, app.config.lease.as_secs_f64());
    crate::store::leases::renew(&app.pool, post.id, owner, post.attempts, lease).await
}

/// Makes the call (or decides not to): the outcome, the credential version used, and whether a
/// call was reserved against the account's posting budget (its answer then tells the budget).
async fn call_platform(app: &AppState, post: &Post, platform: Platform) -> (Outcome, i64, bool) {
    let Some(connector) = app.connectors.get(platform) else {
        return (
            Outcome::Failed(Failure::transient(format!(
                "{platform} is not configured on this publisher"
            ))),
            0,
            false,
        );
    };
    if post.needs_reconcile
        && matches!(connector.reconciliation(), Reconciliation::CannotCheck { .. })
    {
        // Whatever we sent last may be out, and nothing can tell: no call at all, so no
        // breaker trial is spent on it either.
        let last = match (post.last_failure_kind.as_deref(), &post.last_error) {
            (Some("ambiguous"), Some(error)) => error.clone(),
            _ => "the last attempt was abandoned mid-call (the lease expired)".to_owned(),
        };
        return (Outcome::Unknown { last }, 0, false);
    }
    let loaded = app.batches.credentials.call(post.account_id).await;
    let credential = match loaded.map_err(|e| e.to_string()).and_then(|answer| answer) {
        Ok(Some(c)) => c,
        Ok(None) => return (Outcome::NoCredentials, 0, false),
        Err(e) => return (Outcome::Failed(Failure::transient(format!("vault: {e}"))), 0, false),
    };
    // A post whose last outcome is unknown is looked for first, and that look is not a post:
    // the posting budget is asked only for a call that sends. Asked first, a budget the lost
    // send itself spent would hold the post for the platform's whole window (X: 15 minutes)
    // although the post is already out.
    let budgeted = connector.reports_rate_budget();
    let reserved_first = budgeted && !post.needs_reconcile;
    if reserved_first {
        if let Some(until) = pace(app, post).await {
            return (Outcome::Paced { until }, credential.version, false);
        }
    }
    let token = AccessToken {
        secret: credential.tokens.access_token.clone(),
        expires_at: credential.tokens.access_expires_at,
    };
    let admitted = app.breakers.admit(platform);
    if let Admit::Defer(until) = admitted {
        return (Outcome::Held { until: wall_time(until) }, credential.version, reserved_first);
    }
    let call = async {
        if post.needs_reconcile {
            if let Some(found) = reconcile(connector.as_ref(), post, &token, &credential).await {
                return (found, false);
            }
            if budgeted {
                if let Some(until) = pace(app, post).await {
                    return (Outcome::Paced { until }, false);
                }
            }
        }
        (publish(connector.as_ref(), post, &token, &credential).await, budgeted)
    };
    let (outcome, reserved) = keeping_lease(app, post, call).await;
    // The platform's own failures count towards its breaker; an answer of any kind (a refused
    // token, refused content, a rate limit) shows that it is up.
    let platform_failed =
        matches!(outcome, Outcome::Failed(Failure::Transient { .. } | Failure::Ambiguous { .. }));
    app.breakers.record(platform, admitted, platform_failed);
    (outcome, credential.version, reserved)
}

/// Reserves a call against the account's posting budget: `None` to go ahead, or when to try
/// again.
async fn pace(app: &AppState, post: &Post) -> Option<chrono::DateTime<chrono::Utc>> {
    match app.batches.pace.call(post.account_id).await {
        Ok(Verdict::Go) => None,
        Ok(Verdict::Wait(until)) => Some(until),
        Err(e) => {
            // Without the budget there is no telling whether a call fits: hold briefly.
            tracing::warn!(post = %post.id, error = %e, "cannot reserve the call; holding the post");
            let recheck = chrono::Duration::from_std(crate::pacing::RECHECK).unwrap_or_default();
            Some(chrono::Utc::now() + recheck)
        }
    }
}

/// Runs a platform call while renewing the post's lease every third of its length. A
/// multi-step publish (TikTok's status polling, Instagram's container, a YouTube upload that
/// first downloads the video) can outlast the lease; taken over mid-call, the post would be
/// sent again or, where nothing can check, handed to an operator.
async fn keeping_lease<T>(
    app: &AppState,
    post: &Post,
    call: impl std::future::Future<Output = T>,
) -> T {
    tokio::pin!(call);
    let every = app.config.lease / 3;
    loop {
        tokio::select! {
            out = &mut call => return out,
            () = tokio::time::sleep(every) => match renew_lease(app, post).await {
                Ok(true) => {}
                // Only an expired lease is taken; the outcome is then recorded by nobody here
                // (`record` checks the lease) and the new holder reconciles first.
                Ok(false) => tracing::warn!(post = %post.id, "lease lost during the platform call"),
                Err(e) => tracing::warn!(post = %post.id, error = %e, "cannot renew the lease; the call goes on"),
            },
        }
    }
}

/// Looks for the post on the platform after an unknown outcome: its outcome when that settles
/// it (found, or the look failed), `None` when it is not there and must be sent.
async fn reconcile(
    connector: &dyn lifeline_platforms::Connector,
    post: &Post,
    token: &AccessToken,
    credential: &lifeline_vault::Credential,
) -> Option<Outcome> {
    // Look a little before the first unknown attempt, for clock skew with the platform.
    let since = post.reconcile_since.unwrap_or(post.created_at) - chrono::Duration::minutes(5);
    match connector.find_published(token, &credential.platform_user_id, &post.draft(), since).await
    {
        Ok(Some(found)) => Some(Outcome::Published(found, true)),
        Ok(None) => None,
        Err(f) => Some(Outcome::Failed(f)),
    }
}

async fn publish(
    connector: &dyn lifeline_platforms::Connector,
    post: &Post,
    token: &AccessToken,
    credential: &lifeline_vault::Credential,
) -> Outcome {
    match connector.publish(token, &credential.platform_user_id, &post.draft()).await {
        Ok(p) => Outcome::Published(p, false),
        Err(f) => Outcome::Failed(f),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lease_is_renewed_only_when_the_wait_for_a_permit_ate_a_quarter_of_it() {
        let lease = Duration::from_secs(60);
        assert!(!must_renew(Duration::ZERO, lease));
        assert!(!must_renew(Duration::from_millis(14_999), lease));
        assert!(must_renew(Duration::from_secs(15), lease));
        assert!(must_renew(Duration::from_secs(120), lease));
    }
}
