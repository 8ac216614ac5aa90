//! Step 2, the call: the credentials of a leased batch in one query, then one task per row passes
//! the platform's gate (breaker, concurrency, rate) and refreshes or probes. What happened is an
//! [`Outcome`], for the settle step to write.

use std::{collections::HashMap, time::Duration};

use chrono::{DateTime, Utc};
use lifeline_kit::{events::AuthFailureCause, ids::AccountId};
use lifeline_platforms::{AccessToken, Failure, Grant};
use lifeline_vault::{Credential, Tokens, VaultError};
use tokio::time::Instant;
use uuid::Uuid;

use super::lease::Leased;
use crate::{
    gate::{Admit, Gate},
    policy, AppState,
};

/// What happened to one leased row.
#[derive(Debug)]
pub(super) enum Outcome {
    Refreshed {
        from_version: i64,
        tokens: Tokens,
        platform_user_id: String,
    },
    Probed,
    /// The platform refused the credential.
    Refused {
        cause: AuthFailureCause,
        detail: String,
        version: i64,
    },
    /// The platform or network failed; retried with backoff. Never breaks the account.
    Failed(Failure),
    /// A rotating refresh token went out and no answer came back.
    InDoubt {
        detail: String,
    },
    /// The breaker kept the call back.
    Deferred(DateTime<Utc>),
    Unrefreshable,
    /// The account was disconnected.
    Gone,
    /// The lease ran out before the call; another replica has the row.
    LeaseLost,
}

impl Outcome {
    pub(super) fn label(&self) -> &'static str {
        match self {
            Outcome::Refreshed { .. } => "refreshed",
            Outcome::Probed => "probed_ok",
            Outcome::Refused { .. } => "auth_failed",
            Outcome::Failed(Failure::RateLimited { .. }) => "rate_limited",
            Outcome::Failed(_) => "transient",
            Outcome::InDoubt { .. } => "in_doubt",
            Outcome::Deferred(_) => "deferred",
            Outcome::Unrefreshable => "unrefreshable",
            Outcome::Gone => "gone",
            Outcome::LeaseLost => "lease_lost",
        }
    }
}

/// What the stored credential said when the call was made.
#[derive(Debug, Clone, Copy)]
pub(super) struct CredentialFacts {
    pub access_expires_at: Option<DateTime<Utc>>,
    pub refresh_expires_at: Option<DateTime<Utc>>,
}

impl From<&Credential> for CredentialFacts {
    fn from(c: &Credential) -> Self {
        CredentialFacts {
            access_expires_at: c.tokens.access_expires_at,
            refresh_expires_at: c.tokens.refresh_expires_at,
        }
    }
}

pub(super) type Credentials = HashMap<AccountId, Result<Credential, VaultError>>;

/// The credentials of a leased batch, in one query. `None` when the vault cannot be read: the
/// rows stay leased (they come back when the lease runs out) and leave the gate.
pub(super) async fn load_credentials(
    app: &AppState,
    gate: &Gate,
    rows: &[Leased],
) -> Option<Credentials> {
    let ids: Vec<AccountId> = rows.iter().map(|r| AccountId(r.account_id)).collect();
    match app.vault.load_many(&ids).await {
        Ok(found) => Some(found.into_iter().collect()),
        Err(e) => {
            tracing::warn!(platform = %gate.platform, error = %e, "cannot load leased credentials");
            for _ in rows {
                gate.settled();
            }
            None
        }
    }
}

/// Calls the platform for one leased row; also returns what the stored credential said
/// (absent when it could not be read).
pub(super) async fn call(
    app: &AppState,
    gate: &Gate,
    row: &Leased,
    credential: Option<Result<Credential, VaultError>>,
) -> (Option<CredentialFacts>, Outcome) {
    let credential = match credential {
        None => return (None, Outcome::Gone),
        Some(Err(e)) => {
            return (None, Outcome::Failed(Failure::transient(format!("vault: {e}"))));
        }
        Some(Ok(c)) => c,
    };
    let facts = CredentialFacts::from(&credential);
    (Some(facts), call_platform(app, gate, row, credential).await)
}

async fn call_platform(
    app: &AppState,
    gate: &Gate,
    row: &Leased,
    credential: Credential,
) -> Outcome {
    let platform = gate.platform;
    let Some(connector) = app.connectors.get(platform) else {
        return Outcome::Failed(Failure::transient(format!(
            "{platform} is not configured on this refresher"
        )));
    };
    let probe = row.action == "probe";
    let rotating = !probe && policy::rotates(platform);
    if rotating && row.sent_version == Some(credential.version) {
        return Outcome::InDoubt {
            detail: "a refresh of this token was sent earlier and its answer never arrived".into(),
        };
    }
    let refresh_token = match (&credential.tokens.refresh_token, probe) {
        (_, true) => None,
        (Some(t), false) => Some(t.clone()),
        (None, false) => return Outcome::Unrefreshable,
    };
    let admitted = gate.admit();
    if let Admit::Defer(until) = admitted {
        let wait = until.saturating_duration_since(Instant::now())
            + lifeline_kit::backoff::full_jitter(Duration::from_secs(1), 1);
        return Outcome::Deferred(
            Utc::now() + chrono::Duration::from_std(wait).unwrap_or_default(),
        );
    }
    let _permit = gate.enter().await;
    if rotating {
        match mark_sent(app, row.account_id, credential.version).await {
            Ok(true) => {}
            Ok(false) => return Outcome::LeaseLost,
            Err(e) => return Outcome::Failed(Failure::transient(format!("database: {e}"))),
        }
    }
    let started = Instant::now();
    let result = match refresh_token {
        Some(token) => connector.refresh(&token).await.map(Some),
        None => {
            let token = AccessToken {
                secret: credential.tokens.access_token.clone(),
                expires_at: credential.tokens.access_expires_at,
            };
            connector.probe(&token).await.map(|()| None)
        }
    };
    metrics::histogram!("lifeline_refresh_call_seconds", "platform" => platform.as_str())
        .record(started.elapsed().as_secs_f64());
    record_at_gate(gate, admitted, &result);
    let now = Utc::now();
    match result {
        Ok(None) => Outcome::Probed,
        Ok(Some(grant)) => refreshed(&grant, credential, now),
        Err(Failure::Auth { cause, detail }) => {
            Outcome::Refused { cause, detail, version: credential.version }
        }
        Err(Failure::Ambiguous { detail }) if rotating => Outcome::InDoubt { detail },
        Err(failure) => Outcome::Failed(failure),
    }
}

/// Tells the gate how the call went: the platform's own failures count towards its breaker,
/// and a rate limit pauses it for as long as the platform asked.
fn record_at_gate(gate: &Gate, admitted: Admit, result: &Result<Option<Grant>, Failure>) {
    let platform_failed = matches!(
        result,
        Err(Failure::Transient { .. } | Failure::Ambiguous { .. } | Failure::RateLimited { .. })
    );
    let pause = match result {
        Err(Failure::RateLimited { retry_after, .. }) => *retry_after,
        _ => None,
    };
    gate.record(admitted, platform_failed, pause);
}

/// The tokens a refresh granted, completed from the stored credential where the platform said
/// nothing new.
fn refreshed(grant: &Grant, credential: Credential, now: DateTime<Utc>) -> Outcome {
    let tokens = Tokens {
        access_token: grant.access_token.clone(),
        // Keep the stored refresh token when the platform returned none (non-rotating).
        refresh_token: grant.refresh_token.clone().or(credential.tokens.refresh_token),
        access_expires_at: grant.access_expires_at(now),
        refresh_expires_at: grant.refresh_expires_at(now).or(credential.tokens.refresh_expires_at),
        scopes: if grant.scopes.is_empty() {
            credential.tokens.scopes.clone()
        } else {
            grant.scopes.clone()
        },
    };
    Outcome::Refreshed {
        from_version: credential.version,
        tokens,
        platform_user_id: credential.platform_user_id,
    }
}

/// Records that this credential version's refresh token is about to go out, and renews the
/// lease so that the call (bounded by the platform timeout, at most half a lease) ends well
/// within it: time spent waiting at the gate cannot make the next holder see a call that is
/// still on the wire. False when the lease was lost meanwhile.
async fn mark_sent(app: &AppState, account: Uuid, version: i64) -> Result<bool, sqlx::Error> {
    let done = sqlx::query(
        "UPDATE refresher.schedule SET sent_version = $2, lease_until = now() + make_interval(secs => $4)
         WHERE account_id = $1 AND lease_owner = $3 AND lease_until > now()",
    )
    .bind(account)
    .bind(version)
    .bind(&app.config.common.instance_id)
    .bind(app.config.lease.as_secs_f64())
    .execute(&app.pool)
    .await?;
    Ok(done.rows_affected() == 1)
}
