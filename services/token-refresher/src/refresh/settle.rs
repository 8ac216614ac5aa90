//! Step 3, the settle: outcomes are written in small batches, one transaction each: the vault's
//! compare-and-swap first, then the schedule, then the events into the outbox. Every write is
//! conditional on still holding the lease.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use lifeline_kit::{
    events::{
        self, timestamp, AccountReconnected, AuthFailed, AuthFailureCause, AuthFailureSource,
        Envelope, ReconnectReason, TokenRefreshed,
    },
    ids::AccountId,
    Platform,
};
use lifeline_platforms::Failure;
use lifeline_vault::{Tokens, VaultError};
use sqlx::{PgConnection, Postgres, Transaction};
use tokio::time::Instant;
use uuid::Uuid;

use super::{
    call::{CredentialFacts, Outcome},
    lease::Leased,
};
use crate::{
    policy::{self, State},
    AppState,
};

/// One leased row's outcome, on its way to the writers.
pub(super) struct Settlement {
    pub platform: Platform,
    pub row: Leased,
    /// The stored credential when the call was made (absent when gone).
    pub credential: Option<CredentialFacts>,
    pub outcome: Outcome,
    pub leased_at: Instant,
}

impl Settlement {
    fn about(&self) -> events::Subject {
        events::Subject {
            workspace_id: self.row.workspace_id,
            account_id: self.row.account_id,
            platform: self.platform,
        }
    }

    /// What the warning rules need to know of this row, in `state` after `failures` misses.
    fn facts(&self, state: State, failures: i32) -> policy::Facts {
        let credential = self.credential.as_ref();
        policy::Facts {
            platform: self.platform,
            state,
            failures,
            access_issued_at: self.row.access_issued_at,
            access_expires_at: credential.and_then(|c| c.access_expires_at),
            refresh_expires_at: credential.and_then(|c| c.refresh_expires_at),
        }
    }
}

/// After the commit: metrics, the gate's lease count, and rows to reschedule from the vault.
pub(super) async fn finish(app: &AppState, batch: &[Settlement], superseded: Vec<events::Subject>) {
    app.outbox.wake();
    for s in batch {
        metrics::counter!("lifeline_refreshes_total", "platform" => s.platform.as_str(), "outcome" => s.outcome.label())
            .increment(1);
        metrics::histogram!("lifeline_refresh_latency_seconds")
            .record(s.leased_at.elapsed().as_secs_f64());
        if let Some(gate) = app.gates.get(&s.platform) {
            gate.settled();
        }
    }
    for about in superseded {
        if let Err(e) = crate::schedule::schedule_from_vault(app, about).await {
            tracing::warn!(account = %about.account_id, error = ?e, "cannot reschedule after a newer credential was stored");
        }
    }
}

/// Writes every outcome of the batch in one transaction; returns the accounts whose credential
/// was replaced meanwhile (to reschedule from the vault once committed). The common outcomes
/// (new tokens, healthy probes) are written a statement per kind for the whole batch; the rest
/// one by one.
pub(super) async fn settle_batch(
    app: &AppState,
    batch: &[Settlement],
) -> Result<Vec<events::Subject>, sqlx::Error> {
    let mut tx = app.pool.begin().await?;
    let mut events = app.outbox.stage();
    let (refreshed, rest): (Vec<&Settlement>, Vec<&Settlement>) =
        batch.iter().partition(|s| matches!(s.outcome, Outcome::Refreshed { .. }));
    let (probed, rest): (Vec<&Settlement>, Vec<&Settlement>) =
        rest.into_iter().partition(|s| matches!(s.outcome, Outcome::Probed));
    let superseded = settle_refreshed(app, &mut tx, &refreshed, &mut events).await?;
    settle_probed(app, &mut tx, &probed).await?;
    for s in rest {
        settle_one(app, &mut tx, s, &mut events).await?;
    }
    events.insert(&mut tx).await?;
    tx.commit().await?;
    Ok(superseded)
}

/// New tokens: the vault's compare-and-swap first (the rotated refresh token is the only copy),
/// then the schedule, then TokenRefreshed (and AccountReconnected for an account that recovered
/// after a publish failure).
async fn settle_refreshed(
    app: &AppState,
    tx: &mut Transaction<'static, Postgres>,
    batch: &[&Settlement],
    events: &mut lifeline_kit::outbox::Staged<'_>,
) -> Result<Vec<events::Subject>, sqlx::Error> {
    if batch.is_empty() {
        return Ok(Vec::new());
    }
    let me = &app.config.common.instance_id;
    let now = Utc::now();
    let stored = store_tokens(app, tx, batch).await?;
    let mut superseded = Vec::new();
    let mut rows = ScheduleRows::default();
    for s in batch {
        let Outcome::Refreshed { tokens, .. } = &s.outcome else { continue };
        let account = s.row.account_id;
        let Some(version) = stored.get(&AccountId(account)).copied() else {
            // A reconnect stored a newer credential meanwhile.
            clear_lease(tx, account, me).await?;
            superseded.push(s.about());
            continue;
        };
        rows.push(app, s, tokens, version, now);
    }
    let recovered = reschedule_refreshed(tx, me, &rows).await?;
    let (mut announced, mut announced_versions) = (Vec::new(), Vec::new());
    for s in batch {
        let Outcome::Refreshed { tokens, platform_user_id, .. } = &s.outcome else {
            continue;
        };
        let account = s.row.account_id;
        let Some(version) = stored.get(&AccountId(account)).copied() else { continue };
        let before = recovered.get(&account);
        if announce_refreshed(events, s, tokens, platform_user_id, version, before)? {
            announced.push(account);
            announced_versions.push(version);
        }
    }
    if !announced.is_empty() {
        // The reactive path announces no second recovery for these versions.
        sqlx::query(
            "INSERT INTO refresher.recoveries (account_id, credential_version)
             SELECT * FROM unnest($1::uuid[], $2::bigint[]) ON CONFLICT DO NOTHING",
        )
        .bind(&announced)
        .bind(&announced_versions)
        .execute(&mut **tx)
        .await?;
    }
    Ok(superseded)
}

/// The vault's compare-and-swap of every new token set of the batch; the version stored for
/// each account whose credential was not replaced meanwhile.
async fn store_tokens(
    app: &AppState,
    tx: &mut Transaction<'static, Postgres>,
    batch: &[&Settlement],
) -> Result<HashMap<AccountId, i64>, sqlx::Error> {
    let swaps: Vec<(AccountId, i64, &Tokens)> = batch
        .iter()
        .filter_map(|s| match &s.outcome {
            Outcome::Refreshed { from_version, tokens, .. } => {
                Some((AccountId(s.row.account_id), *from_version, tokens))
            }
            _ => None,
        })
        .collect();
    match app.vault.compare_and_swap_many(tx, &swaps, false).await {
        Ok(stored) => Ok(stored),
        Err(VaultError::Db(e)) => Err(e),
        Err(e) => Err(sqlx::Error::Protocol(format!("vault: {e}"))),
    }
}

/// Writes the refreshed rows' new schedule in one statement; returns each row's publish
/// failure as it stood just before.
async fn reschedule_refreshed(
    tx: &mut Transaction<'static, Postgres>,
    me: &str,
    rows: &ScheduleRows,
) -> Result<HashMap<Uuid, Before>, sqlx::Error> {
    // `before` reads each row as it is now (a publish failure may have been recorded while the
    // call was out), locked until the update.
    Ok(sqlx::query_as::<_, (Uuid, Option<i64>, Option<String>, Option<String>)>(
        "WITH u AS (SELECT * FROM unnest($2::uuid[], $3::timestamptz[], $4::text[], $5::bigint[],
                                         $6::timestamptz[], $7::timestamptz[], $8::timestamptz[],
                                         $9::text[])
                    AS u(account_id, due_at, state, version, access_exp, refresh_exp, warn_at, action)),
              before AS (SELECT s.account_id, s.publish_failed_version, s.publish_failed_event,
                                s.publish_failed_correlation FROM refresher.schedule s
                         JOIN u USING (account_id) WHERE s.lease_owner = $1 FOR UPDATE OF s)
         UPDATE refresher.schedule s SET due_at = u.due_at, state = u.state, action = u.action, failures = 0,
             last_error = NULL, last_refreshed_at = now(), credential_version = u.version,
             sent_version = NULL, access_issued_at = now(), access_expires_at = u.access_exp,
             refresh_expires_at = u.refresh_exp, warn_at = u.warn_at, publish_failed_version = NULL,
             publish_failed_event = NULL, publish_failed_correlation = NULL,
             lease_owner = NULL, lease_until = NULL, updated_at = now()
         FROM u JOIN before USING (account_id)
         WHERE s.account_id = u.account_id
         RETURNING s.account_id, before.publish_failed_version, before.publish_failed_event,
                   before.publish_failed_correlation",
    )
    .bind(me)
    .bind(&rows.account)
    .bind(&rows.due)
    .bind(&rows.state)
    .bind(&rows.version)
    .bind(&rows.access)
    .bind(&rows.refresh)
    .bind(&rows.warn)
    .bind(&rows.action)
    .fetch_all(&mut **tx)
    .await?
    .into_iter()
    .map(|(account, version, event, correlation)| (account, Before { version, event, correlation }))
    .collect())
}

/// TokenRefreshed for one stored refresh, and AccountReconnected when it ended a publish
/// failure (`before`); says whether it announced that recovery.
fn announce_refreshed(
    events: &mut lifeline_kit::outbox::Staged<'_>,
    s: &Settlement,
    tokens: &Tokens,
    platform_user_id: &str,
    version: i64,
    before: Option<&Before>,
) -> Result<bool, sqlx::Error> {
    let account = s.row.account_id;
    let about = s.about();
    // After a publish failure, the recovery is told as its consequence.
    let cause = before.and_then(|b| {
        Some(Envelope {
            event_id: b.event.clone()?,
            correlation_id: b.correlation.clone().unwrap_or_default(),
            ..Envelope::default()
        })
    });
    let refreshed = Envelope::build(about, cause.as_ref());
    events.add(&TokenRefreshed {
        envelope: Some(refreshed.clone()),
        access_expires_at: tokens.access_expires_at.map(timestamp),
        refresh_expires_at: tokens.refresh_expires_at.map(timestamp),
        credential_version: u64::try_from(version).unwrap_or_default(),
    })?;
    // A publish failed with the old token and the refresh worked: the account recovered by
    // itself. Announce it so parked posts retry and the incident closes quietly.
    if before.is_some_and(|b| b.version.is_some()) || s.row.publish_failed_version.is_some() {
        events.add(&AccountReconnected {
            envelope: Some(Envelope::build(about, Some(&refreshed))),
            platform_user_id: platform_user_id.to_owned(),
            scopes: tokens.scopes.clone(),
            credential_version: u64::try_from(version).unwrap_or_default(),
            reason: ReconnectReason::RecoveredByRefresh as i32,
        })?;
        tracing::info!(%account, platform = %s.platform, version, "account recovered by refreshing; parked posts will retry");
        return Ok(true);
    }
    Ok(false)
}

/// A refreshed row's publish failure, as it stood just before the update.
struct Before {
    version: Option<i64>,
    event: Option<String>,
    correlation: Option<String>,
}

/// The refreshed rows of a batch, a column per field, for one `unnest` update.
#[derive(Default)]
struct ScheduleRows {
    account: Vec<Uuid>,
    action: Vec<String>,
    due: Vec<Option<DateTime<Utc>>>,
    state: Vec<String>,
    version: Vec<i64>,
    access: Vec<Option<DateTime<Utc>>>,
    refresh: Vec<Option<DateTime<Utc>>>,
    warn: Vec<Option<DateTime<Utc>>>,
}

impl ScheduleRows {
    /// Adds a row refreshed to `version`, planned as at connect time: a token that no longer
    /// expires is probed from now on.
    fn push(
        &mut self,
        app: &AppState,
        s: &Settlement,
        tokens: &Tokens,
        version: i64,
        now: DateTime<Utc>,
    ) {
        let account = s.row.account_id;
        let policy::Plan { action, state, due_at: due } = policy::plan(
            s.platform,
            account,
            now,
            tokens.access_expires_at,
            tokens.refresh_token.is_some(),
            app.config.probe_interval,
        );
        let facts = policy::Facts {
            platform: s.platform,
            state,
            failures: 0,
            access_issued_at: Some(now),
            access_expires_at: tokens.access_expires_at,
            refresh_expires_at: tokens.refresh_expires_at,
        };
        self.account.push(account);
        self.action.push(action.to_owned());
        self.due.push(due);
        self.state.push(state.as_str().to_owned());
        self.version.push(version);
        self.access.push(tokens.access_expires_at);
        self.refresh.push(tokens.refresh_expires_at);
        self.warn.push(warn_at(app, &facts, now));
    }
}

/// Healthy probes: the next probe at the account's slot.
async fn settle_probed(
    app: &AppState,
    tx: &mut Transaction<'static, Postgres>,
    batch: &[&Settlement],
) -> Result<(), sqlx::Error> {
    if batch.is_empty() {
        return Ok(());
    }
    let now = Utc::now();
    let accounts: Vec<Uuid> = batch.iter().map(|s| s.row.account_id).collect();
    let next: Vec<DateTime<Utc>> =
        accounts.iter().map(|a| policy::next_probe(*a, now, app.config.probe_interval)).collect();
    sqlx::query(
        "UPDATE refresher.schedule s SET due_at = u.due_at, failures = 0, last_error = NULL,
             lease_owner = NULL, lease_until = NULL, updated_at = now()
         FROM unnest($2::uuid[], $3::timestamptz[]) AS u(account_id, due_at)
         WHERE s.account_id = u.account_id AND s.lease_owner = $1",
    )
    .bind(&app.config.common.instance_id)
    .bind(&accounts)
    .bind(&next)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// One of the rarer outcomes. Every write is conditional on still holding the lease.
async fn settle_one(
    app: &AppState,
    tx: &mut Transaction<'static, Postgres>,
    s: &Settlement,
    events: &mut lifeline_kit::outbox::Staged<'_>,
) -> Result<(), sqlx::Error> {
    let account = s.row.account_id;
    let me = &app.config.common.instance_id;
    let now = Utc::now();
    match &s.outcome {
        // Written for the whole batch by settle_refreshed and settle_probed.
        Outcome::Refreshed { .. } | Outcome::Probed => {}
        Outcome::Refused { cause, detail, version } => {
            settle_refused(app, tx, s, *cause, detail, *version, events).await?;
        }
        Outcome::Failed(failure) => {
            let failures = s.row.failures.saturating_add(1);
            let wait = match failure {
                Failure::RateLimited { retry_after: Some(d), .. } => *d,
                _ => lifeline_kit::backoff::full_jitter(app.config.retry_base, failures),
            };
            let next = now + chrono::Duration::from_std(wait).unwrap_or_default();
            reschedule_failing(app, tx, s, next, failures, &failure.to_string()).await?;
            // An outage never marks an account as needing reconnect; it is only retried.
            tracing::debug!(%account, platform = %s.platform, failures, error = %failure, "refresh failed; will retry");
        }
        Outcome::Deferred(until) => {
            let failures = s.row.failures.saturating_add(1);
            reschedule_failing(app, tx, s, *until, failures, "circuit breaker open").await?;
        }
        Outcome::InDoubt { detail } => settle_in_doubt(app, tx, s, detail, now, events).await?,
        Outcome::Unrefreshable => {
            let f = s.facts(State::Unrefreshable, 0);
            sqlx::query(
                "UPDATE refresher.schedule SET state = 'unrefreshable', warn_at = $3,
                     lease_owner = NULL, lease_until = NULL, updated_at = now()
                 WHERE account_id = $1 AND lease_owner = $2",
            )
            .bind(account)
            .bind(me)
            .bind(warn_at(app, &f, now))
            .execute(&mut **tx)
            .await?;
        }
        Outcome::Gone => {
            sqlx::query(
                "DELETE FROM refresher.schedule WHERE account_id = $1 AND lease_owner = $2",
            )
            .bind(account)
            .bind(me)
            .execute(&mut **tx)
            .await?;
        }
        Outcome::LeaseLost => {}
    }
    Ok(())
}

/// The platform refused the credential: the account is broken until reconnected, and
/// AuthFailed says why.
async fn settle_refused(
    app: &AppState,
    tx: &mut Transaction<'static, Postgres>,
    s: &Settlement,
    cause: AuthFailureCause,
    detail: &str,
    version: i64,
    events: &mut lifeline_kit::outbox::Staged<'_>,
) -> Result<(), sqlx::Error> {
    let account = s.row.account_id;
    let me = &app.config.common.instance_id;
    let source =
        if s.row.action == "probe" { AuthFailureSource::Probe } else { AuthFailureSource::Refresh };
    let event = AuthFailed {
        envelope: Some(Envelope::build(s.about(), None)),
        cause: cause as i32,
        source: source as i32,
        detail: detail.to_owned(),
        credential_version: u64::try_from(version).unwrap_or_default(),
        post_id: String::new(),
    };
    if break_account(tx, account, me, detail, true).await? {
        events.add(&event)?;
        tracing::warn!(%account, platform = %s.platform, cause = cause.as_str(), source = source.as_str_name(), "the platform refused the credential; the account needs reconnecting");
    }
    Ok(())
}

/// A rotating refresh token went out and no answer came back: it is never sent again. The row
/// waits `in_doubt` (the owner is warned) while the access token lasts; once it has lapsed, the
/// account needs reconnecting.
async fn settle_in_doubt(
    app: &AppState,
    tx: &mut Transaction<'static, Postgres>,
    s: &Settlement,
    detail: &str,
    now: DateTime<Utc>,
    events: &mut lifeline_kit::outbox::Staged<'_>,
) -> Result<(), sqlx::Error> {
    let account = s.row.account_id;
    let me = &app.config.common.instance_id;
    let f = s.facts(State::InDoubt, s.row.failures);
    if f.access_expires_at.is_some_and(|at| at <= now) {
        // The interrupted refresh was the last chance: the access token has lapsed and
        // the refresh token may be spent. The account needs reconnecting; say so now
        // rather than when a post fails.
        let event = AuthFailed {
            envelope: Some(Envelope::build(s.about(), None)),
            cause: AuthFailureCause::Expired as i32,
            source: AuthFailureSource::Refresh as i32,
            detail: format!(
                "the token lapsed after a refresh was interrupted and could not safely be repeated ({detail})"
            ),
            credential_version: u64::try_from(s.row.sent_version.unwrap_or_default())
                .unwrap_or_default(),
            post_id: String::new(),
        };
        // The mark stays: that refresh token may be spent.
        if break_account(tx, account, me, detail, false).await? {
            events.add(&event)?;
        }
        tracing::warn!(%account, platform = %s.platform, %detail, "an interrupted rotating refresh left a lapsed token; the account needs reconnecting");
        return Ok(());
    }
    sqlx::query(
        "UPDATE refresher.schedule SET state = 'in_doubt', last_error = $3, warn_at = $4,
             lease_owner = NULL, lease_until = NULL, updated_at = now()
         WHERE account_id = $1 AND lease_owner = $2",
    )
    .bind(account)
    .bind(me)
    .bind(detail)
    .bind(warn_at(app, &f, now))
    .execute(&mut **tx)
    .await?;
    tracing::warn!(%account, platform = %s.platform, %detail, "a rotating refresh token's fate is unknown; it will not be sent again, the owner is warned");
    Ok(())
}

/// Marks the row broken (it waits for a reconnect); false when the lease was lost.
async fn break_account(
    tx: &mut Transaction<'static, Postgres>,
    account: Uuid,
    me: &str,
    detail: &str,
    clear_sent: bool,
) -> Result<bool, sqlx::Error> {
    let held = sqlx::query(
        "UPDATE refresher.schedule SET state = 'broken', last_error = $3, warn_at = NULL,
             sent_version = CASE WHEN $4 THEN NULL ELSE sent_version END,
             lease_owner = NULL, lease_until = NULL, updated_at = now()
         WHERE account_id = $1 AND lease_owner = $2",
    )
    .bind(account)
    .bind(me)
    .bind(detail)
    .bind(clear_sent)
    .execute(&mut **tx)
    .await?;
    Ok(held.rows_affected() == 1)
}

async fn reschedule_failing(
    app: &AppState,
    tx: &mut Transaction<'static, Postgres>,
    s: &Settlement,
    next: DateTime<Utc>,
    failures: i32,
    error: &str,
) -> Result<(), sqlx::Error> {
    let f = s.facts(State::Active, failures);
    sqlx::query(
        "UPDATE refresher.schedule SET failures = $3, last_error = $4, due_at = $5, sent_version = NULL,
             warn_at = $6, lease_owner = NULL, lease_until = NULL, updated_at = now()
         WHERE account_id = $1 AND lease_owner = $2",
    )
    .bind(s.row.account_id)
    .bind(&app.config.common.instance_id)
    .bind(failures)
    .bind(error)
    .bind(next)
    .bind(warn_at(app, &f, Utc::now()))
    .execute(&mut **tx)
    .await?;
    Ok(())
}

fn warn_at(app: &AppState, facts: &policy::Facts, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
    policy::watch(facts, &app.config.horizons).and_then(|w| policy::next_warning(&w, now))
}

async fn clear_lease(conn: &mut PgConnection, account: Uuid, me: &str) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE refresher.schedule SET lease_owner = NULL, lease_until = NULL
         WHERE account_id = $1 AND lease_owner = $2",
    )
    .bind(account)
    .bind(me)
    .execute(conn)
    .await?;
    Ok(())
}
