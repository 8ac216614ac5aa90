//! The accounts API: each account of the caller's workspace with its health, in plain words.
//! An account of another workspace is answered 404, exactly as one that does not exist.

use axum::{
    extract::{Path, State},
    http::StatusCode,
    routing::get,
    Json, Router,
};
use chrono::{DateTime, Utc};
use lifeline_kit::{
    auth::Workspace,
    events::{self, AccountDisconnected, AuthFailureCause, Envelope},
    http::ApiError,
    ids::AccountId,
    openapi::{ErrorBody, PlatformName, Unauthorized},
    Platform,
};
use serde::Serialize;
use utoipa::ToSchema;

use crate::AppState;

pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/v1/platforms", get(platforms))
        .route("/v1/accounts", get(list))
        .route("/v1/accounts/{id}", get(show).delete(disconnect))
}

/// The stored account and its health, as the read model keeps it.
#[derive(Serialize, sqlx::FromRow, ToSchema)]
struct AccountRow {
    id: AccountId,
    #[schema(value_type = PlatformName)]
    platform: String,
    /// The account's id on the platform.
    platform_user_id: String,
    /// The platform's username (may be empty where the platform has none).
    username: String,
    display_name: String,
    /// Whether publishing works (`healthy`) or waits for the owner (`needs_reconnect`).
    #[schema(value_type = AccountStatus)]
    status: String,
    /// Why it needs reconnecting (`revoked`, `password_changed`, `permission_removed`, …).
    #[schema(required = true)]
    cause: Option<String>,
    /// The platform's own words about the failure.
    #[schema(required = true)]
    status_detail: Option<String>,
    status_changed_at: DateTime<Utc>,
    /// When a credential will lapse that refreshing cannot renew.
    #[schema(required = true)]
    expiring_at: Option<DateTime<Utc>>,
    /// Which credential lapses then (`access` or `refresh`).
    #[schema(required = true)]
    expiring_credential: Option<String>,
    connected_at: DateTime<Utc>,
    #[schema(required = true)]
    reconnected_at: Option<DateTime<Utc>>,
    /// The platform's last refusal and when it came; kept after a reconnect.
    #[schema(required = true)]
    last_error: Option<String>,
    #[schema(required = true)]
    last_error_at: Option<DateTime<Utc>>,
    /// The refresher's words for an expiry that refreshing cannot prevent.
    #[schema(required = true)]
    expiring_reason: Option<String>,
    /// Posts parked after an auth failure, waiting for a reconnect.
    waiting_posts: i64,
    /// Posts retried after the last reconnect that have not gone out yet.
    retrying_posts: i64,
    /// Posts queued because the account's posting limit on its platform is spent (X allows 100
    /// posts per user per 15 minutes): they go out as the platform's windows reopen, none is
    /// dropped. Paced by the platform's own rate-limit headers.
    queued_posts: i64,
    /// Roughly when the last queued post will have gone out: the start of the last window the
    /// queue was spread over (the windows still needed × the platform's window length). Null
    /// when nothing is queued.
    #[schema(required = true)]
    queued_until: Option<DateTime<Utc>>,
    /// Posts that had waited and were published since the last reconnect.
    published_since_reconnect: i64,
    /// Times the account went from healthy to needing a reconnect in the last 30 days.
    disconnects_30d: i64,
    /// An authorization for this account was started and has neither finished nor expired.
    reconnect_in_progress: bool,
}

/// `status` of an account.
#[derive(ToSchema)]
#[schema(rename_all = "snake_case")]
#[allow(dead_code)] // a schema only: the column is text
enum AccountStatus {
    Healthy,
    NeedsReconnect,
}

/// `state` of an account: what the page shows (`reconnecting` while an authorization for it is
/// under way, `expiring` while a lapse is ahead).
#[derive(ToSchema)]
#[schema(rename_all = "snake_case")]
#[allow(dead_code)] // a schema only: the view writes the words
enum AccountState {
    Healthy,
    NeedsReconnect,
    Expiring,
    Reconnecting,
}

/// An account as the API shows it.
#[derive(Serialize, ToSchema)]
#[schema(as = Account)]
pub(crate) struct AccountView {
    #[serde(flatten)]
    row: AccountRow,
    /// The platform's name as people write it ("LinkedIn").
    #[schema(value_type = String, example = "LinkedIn")]
    platform_name: &'static str,
    /// `@handle` where the platform has handles (never a display name), else null.
    #[schema(required = true)]
    handle: Option<String>,
    /// What to call the account: its display name, or its handle when it has none.
    name: String,
    /// One of `healthy`, `needs_reconnect`, `expiring`, `reconnecting` (what the page shows).
    #[schema(value_type = AccountState)]
    state: &'static str,
    /// The cause in plain words, when the account needs reconnecting.
    #[schema(required = true)]
    cause_text: Option<String>,
    /// What the owner should do, if anything.
    #[schema(required = true)]
    action: Option<String>,
}

/// The handle to show: the platform's username without a leading `@`, or none.
pub(crate) fn handle(username: &str) -> Option<String> {
    let bare = username.trim().trim_start_matches('@');
    (!bare.is_empty()).then(|| format!("@{bare}"))
}

/// What reconnecting asks of the owner, per cause.
fn how_to_fix(cause: AuthFailureCause, platform: &str) -> String {
    match cause {
        AuthFailureCause::PasswordChanged => format!(
            "Reconnect and sign in to {platform} with the new password; waiting posts will then go out."
        ),
        AuthFailureCause::PermissionRemoved => format!(
            "Reconnect and leave every permission ticked on {platform}: Lifeline needs them to publish."
        ),
        AuthFailureCause::SecurityEvent => format!(
            "Sign in to {platform} once to clear its security check, then reconnect here."
        ),
        AuthFailureCause::Policy => format!(
            "Check {platform}'s messages about the app, then reconnect; waiting posts will then go out."
        ),
        _ => format!(
            "Reconnect {platform} to resume posting; posts that failed will be retried once."
        ),
    }
}

impl From<AccountRow> for AccountView {
    fn from(row: AccountRow) -> Self {
        let platform_name =
            row.platform.parse::<Platform>().map(Platform::display_name).unwrap_or("unknown");
        let cause = row.cause.as_deref().and_then(AuthFailureCause::parse);
        let needs = row.status == "needs_reconnect";
        let cause_text =
            needs.then(|| cause.unwrap_or(AuthFailureCause::Unknown).explain().to_owned());
        let action = if needs {
            Some(how_to_fix(cause.unwrap_or(AuthFailureCause::Unknown), platform_name))
        } else {
            row.expiring_at.map(|at| {
                let when = at.format("%Y-%m-%d %H:%M UTC");
                match row.expiring_reason.as_deref().filter(|r| !r.is_empty()) {
                    Some(reason) => format!("{reason}. Reconnect before {when} to keep posting."),
                    None => format!("The connection will lapse on {when}; reconnect before then."),
                }
            })
        };
        let state = if row.reconnect_in_progress {
            "reconnecting"
        } else if needs {
            "needs_reconnect"
        } else if row.expiring_at.is_some() {
            "expiring"
        } else {
            "healthy"
        };
        let handle = handle(&row.username);
        let name = match row.display_name.trim() {
            "" => handle.clone().unwrap_or_else(|| format!("{platform_name} account")),
            display => display.to_owned(),
        };
        AccountView { row, platform_name, handle, name, state, cause_text, action }
    }
}

const SELECT: &str = "SELECT a.id, a.platform, a.platform_user_id, a.username, a.display_name, a.status, a.cause,
    a.status_detail, a.status_changed_at, a.expiring_at, a.expiring_credential, a.connected_at, a.reconnected_at,
    a.last_error, a.last_error_at, a.expiring_reason,
    (SELECT count(*) FROM gateway.account_posts p WHERE p.account_id = a.id AND p.state = 'waiting') AS waiting_posts,
    (SELECT count(*) FROM gateway.account_posts p WHERE p.account_id = a.id AND p.state = 'retrying') AS retrying_posts,
    (SELECT count(*) FROM gateway.account_posts p WHERE p.account_id = a.id AND p.state = 'queued') AS queued_posts,
    (SELECT max(p.next_attempt_at) FROM gateway.account_posts p WHERE p.account_id = a.id AND p.state = 'queued')
        AS queued_until,
    (SELECT count(*) FROM gateway.account_posts p WHERE p.account_id = a.id AND p.state = 'published'
        AND p.parked_at IS NOT NULL AND a.reconnected_at IS NOT NULL AND p.changed_at >= a.reconnected_at)
        AS published_since_reconnect,
    (SELECT count(*) FROM gateway.account_incidents i WHERE i.account_id = a.id
        AND i.started_at > now() - interval '30 days') AS disconnects_30d,
    EXISTS (SELECT 1 FROM gateway.oauth_sessions o WHERE o.account_id = a.id AND o.used_at IS NULL
        AND o.expires_at > now()) AS reconnect_in_progress
    FROM gateway.accounts a";

/// A platform accounts can be connected on.
#[derive(Serialize, ToSchema)]
#[schema(as = PlatformInfo)]
struct PlatformView {
    #[schema(value_type = PlatformName)]
    id: Platform,
    /// Its name as people write it.
    #[schema(value_type = String, example = "LinkedIn")]
    name: &'static str,
}

#[derive(Serialize, ToSchema)]
pub(crate) struct PlatformList {
    platforms: Vec<PlatformView>,
}

/// The platforms this Lifeline can connect (those with a configured OAuth client).
#[utoipa::path(
    get,
    path = "/v1/platforms",
    operation_id = "list_platforms",
    tag = "accounts",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "In Lifeline's order.", body = PlatformList),
        (status = 401, response = Unauthorized),
    ),
)]
pub(crate) async fn platforms(
    State(app): State<AppState>,
    Workspace(_): Workspace,
) -> Json<PlatformList> {
    let platforms = Platform::ALL
        .into_iter()
        .filter(|p| app.connectors.get(*p).is_some())
        .map(|p| PlatformView { id: p, name: p.display_name() })
        .collect();
    Json(PlatformList { platforms })
}

#[derive(Serialize, ToSchema)]
pub(crate) struct AccountList {
    /// Oldest connection first.
    accounts: Vec<AccountView>,
}

/// Every account of the workspace with its health.
#[utoipa::path(
    get,
    path = "/v1/accounts",
    operation_id = "list_accounts",
    tag = "accounts",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The workspace's accounts, oldest connection first.", body = AccountList),
        (status = 401, response = Unauthorized),
    ),
)]
pub(crate) async fn list(
    State(app): State<AppState>,
    Workspace(ws): Workspace,
) -> Result<Json<AccountList>, ApiError> {
    let rows: Vec<AccountRow> = sqlx::query_as(&format!(
        "{SELECT} WHERE a.workspace_id = $1 ORDER BY a.connected_at, a.id"
    ))
    .bind(ws)
    .fetch_all(&app.pool)
    .await?;
    Ok(Json(AccountList { accounts: rows.into_iter().map(AccountView::from).collect() }))
}

async fn find(
    app: &AppState,
    ws: lifeline_kit::ids::WorkspaceId,
    id: &str,
) -> Result<AccountRow, ApiError> {
    let id: AccountId = id.parse().map_err(|_| ApiError::not_found("account"))?;
    sqlx::query_as(&format!("{SELECT} WHERE a.id = $1 AND a.workspace_id = $2"))
        .bind(id)
        .bind(ws)
        .fetch_optional(&app.pool)
        .await?
        .ok_or_else(|| ApiError::not_found("account"))
}

/// One account of the workspace.
#[utoipa::path(
    get,
    path = "/v1/accounts/{id}",
    operation_id = "get_account",
    tag = "accounts",
    security(("bearer" = [])),
    params(("id" = AccountId, Path, description = "The account.")),
    responses(
        (status = 200, description = "The account and its health.", body = AccountView),
        (status = 401, response = Unauthorized),
        (status = 404, description = "`not_found`: no such account in the workspace (or not an id).", body = ErrorBody),
    ),
)]
pub(crate) async fn show(
    State(app): State<AppState>,
    Workspace(ws): Workspace,
    Path(id): Path<String>,
) -> Result<Json<AccountView>, ApiError> {
    Ok(Json(find(&app, ws, &id).await?.into()))
}

/// Disconnects an account: its credentials are deleted and AccountDisconnected is emitted.
#[utoipa::path(
    delete,
    path = "/v1/accounts/{id}",
    operation_id = "disconnect_account",
    tag = "accounts",
    security(("bearer" = [])),
    params(("id" = AccountId, Path, description = "The account.")),
    responses(
        (status = 204, description = "Disconnected: the account and its credentials are gone."),
        (status = 401, response = Unauthorized),
        (status = 404, description = "`not_found`: no such account in the workspace (or not an id).", body = ErrorBody),
    ),
)]
pub(crate) async fn disconnect(
    State(app): State<AppState>,
    Workspace(ws): Workspace,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let row = find(&app, ws, &id).await?;
    let platform: Platform = row.platform.parse().map_err(ApiError::internal)?;
    let mut tx = app.pool.begin().await?;
    app.vault.delete(&mut tx, row.id).await.map_err(ApiError::internal)?;
    for table in ["accounts", "account_posts", "account_incidents"] {
        let key = if table == "accounts" { "id" } else { "account_id" };
        sqlx::query(&format!("DELETE FROM gateway.{table} WHERE {key} = $1"))
            .bind(row.id)
            .execute(&mut *tx)
            .await?;
    }
    let about = events::Subject { workspace_id: ws.0, account_id: row.id.0, platform };
    let event = AccountDisconnected {
        envelope: Some(Envelope::build(about, None)),
        reason: "disconnected by the owner".into(),
    };
    app.outbox.enqueue(&mut tx, &event).await?;
    tx.commit().await?;
    app.outbox.wake();
    tracing::info!(account = %row.id, %platform, "account disconnected");
    Ok(StatusCode::NO_CONTENT)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn handles_never_double_the_at_sign_and_empty_ones_are_none() {
        assert_eq!(handle("acme").as_deref(), Some("@acme"));
        assert_eq!(handle("@demo_user").as_deref(), Some("@demo_user"));
        assert_eq!(handle(""), None);
        assert_eq!(handle(" @ "), None);
    }

    fn row(username: &str, display_name: &str) -> AccountRow {
        AccountRow {
            id: AccountId::new(),
            platform: "linkedin".into(),
            platform_user_id: "u1".into(),
            username: username.into(),
            display_name: display_name.into(),
            status: "healthy".into(),
            cause: None,
            status_detail: None,
            status_changed_at: Utc::now(),
            expiring_at: None,
            expiring_credential: None,
            connected_at: Utc::now(),
            reconnected_at: None,
            last_error: None,
            last_error_at: None,
            expiring_reason: None,
            waiting_posts: 0,
            queued_posts: 0,
            queued_until: None,
            retrying_posts: 0,
            published_since_reconnect: 0,
            disconnects_30d: 0,
            reconnect_in_progress: false,
        }
    }

    #[test]
    fn an_account_without_a_handle_is_named_by_its_display_name() {
        let view = AccountView::from(row("", "Demo User"));
        assert_eq!(view.handle, None);
        assert_eq!(view.name, "Demo User");
        let view = AccountView::from(row("acme", ""));
        assert_eq!(view.name, "@acme");
    }

    #[test]
    fn the_state_says_what_matters_most() {
        let mut r = row("acme", "Acme");
        r.expiring_at = Some(Utc::now());
        r.expiring_reason =
            Some("LinkedIn refresh tokens end 365 days after the first grant".into());
        let view = AccountView::from(r);
        assert_eq!(view.state, "expiring");
        assert!(view.action.as_deref().is_some_and(|a| a.starts_with("LinkedIn refresh tokens")));

        let mut r = row("acme", "Acme");
        r.status = "needs_reconnect".into();
        r.cause = Some("password_changed".into());
        let view = AccountView::from(r);
        assert_eq!(view.state, "needs_reconnect");
        assert_eq!(view.cause_text.as_deref(), Some(AuthFailureCause::PasswordChanged.explain()));
        assert!(view.action.as_deref().is_some_and(|a| a.contains("new password")));

        let mut r = row("acme", "Acme");
        r.status = "needs_reconnect".into();
        r.reconnect_in_progress = true;
        assert_eq!(AccountView::from(r).state, "reconnecting");
    }
}
