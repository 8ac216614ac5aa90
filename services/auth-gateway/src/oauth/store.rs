//! Storing what an authorization brought: the tokens in the vault, the account in the read
//! model, and the event in the outbox, in the caller's transaction.

use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use lifeline_kit::{
    events::{
        self, AccountConnected, AccountReconnected, AuthFailed, AuthFailureCause,
        AuthFailureSource, Envelope, ReconnectReason,
    },
    ids::{AccountId, WorkspaceId},
    Platform,
};
use lifeline_platforms::{Grant, Needed, PlatformUser};
use lifeline_vault::{Tokens, VaultError};
use sqlx::PgConnection;

use super::{CallbackError, CallbackOutcome, Session};
use crate::{page, AppState};

pub(super) fn tokens(grant: &Grant, at: DateTime<Utc>) -> Tokens {
    Tokens {
        access_token: grant.access_token.clone(),
        refresh_token: grant.refresh_token.clone(),
        access_expires_at: grant.access_expires_at(at),
        refresh_expires_at: grant.refresh_expires_at(at),
        scopes: grant.scopes.clone(),
    }
}

/// The account this authorization renews, if any: the one a reconnect names, or the one the
/// workspace already has for this platform user (so one user never becomes two accounts).
pub(super) async fn existing_account(
    tx: &mut PgConnection,
    session: &Session,
    user: &PlatformUser,
) -> Result<Option<(AccountId, String, String)>, CallbackError> {
    let ws = session.workspace;
    let found = match session.account {
        Some(id) => sqlx::query_as("SELECT id, platform_user_id, username FROM gateway.accounts WHERE id = $1 AND workspace_id = $2 FOR UPDATE")
            .bind(id)
            .bind(ws)
            .fetch_optional(&mut *tx)
            .await?
            .map(|(id, puid, username): (uuid::Uuid, String, String)| (AccountId(id), puid, username))
            .ok_or_else(|| CallbackError::new(StatusCode::NOT_FOUND, "account_gone", "The account to reconnect no longer exists. Connect it again as a new account."))
            .map(Some)?,
        None => sqlx::query_as("SELECT id, platform_user_id, username FROM gateway.accounts WHERE workspace_id = $1 AND platform = $2 AND platform_user_id = $3 FOR UPDATE")
            .bind(ws)
            .bind(session.platform.as_str())
            .bind(&user.id)
            .fetch_optional(&mut *tx)
            .await?
            .map(|(id, puid, username): (uuid::Uuid, String, String)| (AccountId(id), puid, username)),
    };
    if let Some((id, platform_user_id, _)) = &found {
        if *platform_user_id != user.id {
            let (username, display_name): (String, String) =
                sqlx::query_as("SELECT username, display_name FROM gateway.accounts WHERE id = $1")
                    .bind(id)
                    .fetch_one(&mut *tx)
                    .await?;
            let signed_in =
                page::handle_label(session.platform, &user.username, &user.display_name);
            let expected = page::handle_label(session.platform, &username, &display_name);
            return Err(CallbackError::new(
                StatusCode::CONFLICT,
                "different_user",
                format!(
                    "You signed in to {} as {signed_in}, but this account is {expected}. Sign in as {expected} to reconnect it; nothing was changed.",
                    session.platform.display_name()
                ),
            ));
        }
    }
    Ok(found)
}

/// Stores the tokens and the account (new, or renewed), and queues the event, in `tx`.
pub(super) async fn store(
    app: &AppState,
    tx: &mut PgConnection,
    session: &Session,
    user: &PlatformUser,
    tokens: &Tokens,
) -> Result<CallbackOutcome, CallbackError> {
    let ws = session.workspace;
    let target = existing_account(tx, session, user).await?;
    let outcome = match target {
        Some((account, _, _)) => {
            let version =
                swap_tokens(app, tx, account, ws, session.platform, &user.id, tokens).await?;
            sqlx::query(
                "UPDATE gateway.accounts SET status = 'healthy', cause = NULL, status_detail = NULL,
                     status_changed_at = now(), reconnected_at = now(), username = $2, display_name = $3,
                     credential_version = GREATEST(credential_version, $4), expiring_at = NULL, expiring_credential = NULL
                 WHERE id = $1",
            )
            .bind(account)
            .bind(&user.username)
            .bind(&user.display_name)
            .bind(version)
            .execute(&mut *tx)
            .await?;
            let event = AccountReconnected {
                envelope: Some(Envelope::build(about(ws, account, session.platform), None)),
                platform_user_id: user.id.clone(),
                scopes: tokens.scopes.clone(),
                credential_version: u64::try_from(version).unwrap_or_default(),
                reason: ReconnectReason::UserReauthorized as i32,
            };
            app.outbox.enqueue(tx, &event).await?;
            CallbackOutcome::new("reconnected", account, session.platform, user)
        }
        None => {
            let account = AccountId::new();
            sqlx::query(
                "INSERT INTO gateway.accounts (id, workspace_id, platform, platform_user_id, username, display_name, status, credential_version)
                 VALUES ($1, $2, $3, $4, $5, $6, 'healthy', 1)",
            )
            .bind(account)
            .bind(ws)
            .bind(session.platform.as_str())
            .bind(&user.id)
            .bind(&user.username)
            .bind(&user.display_name)
            .execute(&mut *tx)
            .await?;
            app.vault
                .insert(tx, account, ws, session.platform, &user.id, tokens)
                .await
                .map_err(vault_error)?;
            let event = AccountConnected {
                envelope: Some(Envelope::build(about(ws, account, session.platform), None)),
                platform_user_id: user.id.clone(),
                display_name: user.display_name.clone(),
                scopes: tokens.scopes.clone(),
                credential_version: 1,
            };
            app.outbox.enqueue(tx, &event).await?;
            CallbackOutcome::new("connected", account, session.platform, user)
        }
    };
    Ok(outcome)
}

/// A reconnect whose consent lacked a permission publishing needs: the new grant is not
/// stored, and the account is (or stays) broken with cause `permission_removed`, through the
/// same `AuthFailed` every other detection uses (the read model and the notifier follow it).
pub(super) async fn refuse_reconnect(
    app: &AppState,
    tx: &mut PgConnection,
    session: &Session,
    account: AccountId,
    missing: &[Needed],
) -> Result<(), CallbackError> {
    let version: Option<i64> =
        sqlx::query_scalar("SELECT version FROM vault.credentials WHERE account_id = $1")
            .bind(account)
            .fetch_optional(&mut *tx)
            .await?;
    let names: Vec<&str> = missing.iter().map(|n| n.scope).collect();
    let event = AuthFailed {
        envelope: Some(Envelope::build(about(session.workspace, account, session.platform), None)),
        cause: AuthFailureCause::PermissionRemoved as i32,
        source: AuthFailureSource::Consent as i32,
        detail: format!("the reconnect's consent lacked {}", names.join(", ")),
        credential_version: version.and_then(|v| u64::try_from(v).ok()).unwrap_or_default(),
        post_id: String::new(),
    };
    app.outbox.enqueue(tx, &event).await?;
    Ok(())
}

fn about(ws: WorkspaceId, account: AccountId, platform: Platform) -> events::Subject {
    events::Subject { workspace_id: ws.0, account_id: account.0, platform }
}

/// Replaces an account's tokens by compare-and-swap. The version is read under the row lock, so
/// a refresh that committed first is simply superseded; one still in flight will lose its CAS.
async fn swap_tokens(
    app: &AppState,
    tx: &mut PgConnection,
    account: AccountId,
    ws: WorkspaceId,
    platform: Platform,
    platform_user_id: &str,
    tokens: &Tokens,
) -> Result<i64, CallbackError> {
    let current: Option<i64> = sqlx::query_scalar(
        "SELECT version FROM vault.credentials WHERE account_id = $1 FOR UPDATE",
    )
    .bind(account)
    .fetch_optional(&mut *tx)
    .await?;
    match current {
        Some(v) => {
            app.vault.compare_and_swap(tx, account, v, tokens, true).await.map_err(vault_error)
        }
        // The credentials were deleted (disconnect raced us): store them afresh.
        None => app
            .vault
            .insert(tx, account, ws, platform, platform_user_id, tokens)
            .await
            .map_err(vault_error),
    }
}

fn vault_error(e: VaultError) -> CallbackError {
    tracing::error!(error = %e, "vault write failed");
    CallbackError::new(
        StatusCode::INTERNAL_SERVER_ERROR,
        "internal",
        "internal error; nothing was changed, please try again",
    )
}
