//! Keeps the health read model current from the connection events.

use lifeline_kit::{
    bus::{Bus, Delivery, HandlerError},
    events::{
        AccountReconnected, AuthFailed, AuthFailureCause, ExpiringCredential, TokenExpiring,
        TokenRefreshed,
    },
    service::spawn_consumer,
};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::AppState;

pub(crate) fn spawn(
    tasks: &mut JoinSet<()>,
    bus: &Bus,
    app: &AppState,
    shutdown: &CancellationToken,
) {
    spawn_consumer(tasks, bus, 8, app.clone(), on_auth_failed, shutdown.clone());
    spawn_consumer(tasks, bus, 8, app.clone(), on_reconnected, shutdown.clone());
    spawn_consumer(tasks, bus, 8, app.clone(), on_refreshed, shutdown.clone());
    spawn_consumer(tasks, bus, 8, app.clone(), on_expiring, shutdown.clone());
}

fn version(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

/// Marks the account broken, unless a newer credential than the refused one was stored since.
/// Within one incident the first specific cause stands; a vague one (`expired` — often only our
/// inference that a token lapsed after refreshing failed — or `unknown`) gives way to a specific
/// one, so a revocation the token endpoint reported is not overwritten by a later 401.
async fn on_auth_failed(app: AppState, e: AuthFailed, d: Delivery) -> Result<(), HandlerError> {
    let about = d.about;
    let cause = AuthFailureCause::try_from(e.cause).unwrap_or(AuthFailureCause::Unknown);
    let changed = sqlx::query(
        "UPDATE gateway.accounts SET status = 'needs_reconnect', cause = $2, status_detail = $3, status_changed_at = now()
         WHERE id = $1 AND credential_version <= $4
           AND (status <> 'needs_reconnect'
                OR (cause IN ('expired', 'unknown', 'unspecified') AND $2 NOT IN ('expired', 'unknown', 'unspecified')))",
    )
    .bind(about.account_id)
    .bind(cause.as_str())
    .bind(&e.detail)
    .bind(version(e.credential_version))
    .execute(&app.pool)
    .await?;
    if changed.rows_affected() > 0 {
        tracing::warn!(account = %about.account_id, platform = %about.platform, cause = cause.as_str(), "account needs reconnecting");
    }
    Ok(())
}

async fn on_reconnected(
    app: AppState,
    e: AccountReconnected,
    d: Delivery,
) -> Result<(), HandlerError> {
    let about = d.about;
    sqlx::query(
        "UPDATE gateway.accounts SET status = 'healthy', cause = NULL, status_detail = NULL, status_changed_at = now(),
             credential_version = $2, reconnected_at = COALESCE(reconnected_at, now())
         WHERE id = $1 AND credential_version <= $2 AND status <> 'healthy'",
    )
    .bind(about.account_id)
    .bind(version(e.credential_version))
    .execute(&app.pool)
    .await?;
    Ok(())
}

async fn on_refreshed(app: AppState, e: TokenRefreshed, d: Delivery) -> Result<(), HandlerError> {
    let about = d.about;
    sqlx::query(
        "UPDATE gateway.accounts SET credential_version = GREATEST(credential_version, $2),
             expiring_at = CASE WHEN expiring_credential = 'access_token' THEN NULL ELSE expiring_at END,
             expiring_credential = CASE WHEN expiring_credential = 'access_token' THEN NULL ELSE expiring_credential END
         WHERE id = $1",
    )
    .bind(about.account_id)
    .bind(version(e.credential_version))
    .execute(&app.pool)
    .await?;
    Ok(())
}

async fn on_expiring(app: AppState, e: TokenExpiring, d: Delivery) -> Result<(), HandlerError> {
    let about = d.about;
    let expires_at = e.expires_at.as_ref().and_then(lifeline_kit::events::from_timestamp);
    let credential = match ExpiringCredential::try_from(e.credential) {
        Ok(ExpiringCredential::RefreshToken) => "refresh_token",
        _ => "access_token",
    };
    sqlx::query(
        "UPDATE gateway.accounts SET expiring_at = $2, expiring_credential = $3 WHERE id = $1",
    )
    .bind(about.account_id)
    .bind(expires_at)
    .bind(credential)
    .execute(&app.pool)
    .await?;
    Ok(())
}
