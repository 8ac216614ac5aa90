//! What waits for the user after the callback, on the gateway's own page:
//! - `confirm`: a new identity is about to join a workspace ("Connect @acme (LinkedIn) to
//!   workspace …?"). The grant waits sealed with the vault key and is stored only on yes.
//! - `ask_again`: the user unticked a permission publishing needs. Nothing was stored; one
//!   click starts the authorization again with the platform's "ask again" parameters.
//!
//! Each is reached by a single-use token (stored as its SHA-256) and only from the browser that
//! holds the flow's binding cookie.

use std::time::Duration;

use axum::{
    body::Bytes,
    extract::State,
    http::{header, HeaderMap, StatusCode},
    response::{Html, IntoResponse, Response},
    Json,
};
use chrono::{DateTime, Utc};
use lifeline_kit::{
    ids::WorkspaceId,
    openapi::{ErrorBody, PlatformName},
    Platform,
};
use lifeline_platforms::{Needed, PlatformUser};
use lifeline_vault::Tokens;
use secrecy::{ExposeSecret as _, SecretString};
use serde::{Deserialize, Serialize};
use sqlx::{PgConnection, Row};
use utoipa::ToSchema;

use super::{binding, store, CallbackError, Session};
use crate::{page, secret, session::same_origin, AppState};

/// How long the user has to decide once they are back from the platform.
pub(super) const DECIDE_TTL: Duration = Duration::from_secs(600);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Confirm,
    AskAgain,
}

impl Kind {
    fn as_str(self) -> &'static str {
        match self {
            Kind::Confirm => "confirm",
            Kind::AskAgain => "ask_again",
        }
    }
}

/// A decision waiting for the user.
pub(super) struct Pending {
    kind: Kind,
    token: String,
    workspace: WorkspaceId,
    platform: Platform,
    user: PlatformUser,
    expires_at: DateTime<Utc>,
    missing: Vec<Needed>,
    reconnect: bool,
}

/// The grant as it waits, sealed (its JSON is the plaintext).
#[derive(Serialize, Deserialize)]
struct SealedGrant {
    access_token: String,
    refresh_token: Option<String>,
    access_expires_at: Option<DateTime<Utc>>,
    refresh_expires_at: Option<DateTime<Utc>>,
    scopes: Vec<String>,
}

fn grant_context(state_hash: &str) -> String {
    format!("lifeline-oauth:v1:{state_hash}:grant")
}

/// What to ask the user.
pub(super) enum Ask<'a> {
    /// Whether to store this new identity (with these tokens) in the workspace.
    Confirm(&'a Tokens),
    /// To grant what is missing; `reconnect` when an existing account was being renewed.
    AskAgain { missing: Vec<Needed>, reconnect: bool },
}

/// Records the decision on the session, in `tx`. Tokens wait only for a confirmation.
pub(super) async fn park(
    app: &AppState,
    tx: &mut PgConnection,
    session: &Session,
    user: &PlatformUser,
    ask: Ask<'_>,
) -> Result<Pending, CallbackError> {
    let (kind, tokens, missing, reconnect) = match ask {
        Ask::Confirm(t) => (Kind::Confirm, Some(t), Vec::new(), false),
        Ask::AskAgain { missing, reconnect } => (Kind::AskAgain, None, missing, reconnect),
    };
    let sealed = tokens.map(|t| {
        let plain = serde_json::to_string(&SealedGrant {
            access_token: t.access_token.expose_secret().to_owned(),
            refresh_token: t.refresh_token.as_ref().map(|r| r.expose_secret().to_owned()),
            access_expires_at: t.access_expires_at,
            refresh_expires_at: t.refresh_expires_at,
            scopes: t.scopes.clone(),
        })
        .expect("a grant serializes");
        app.config
            .vault_keys
            .seal_bound(&grant_context(&session.state_hash), &SecretString::from(plain))
    });
    let token = secret::random();
    let expires_at = Utc::now() + chrono::Duration::from_std(DECIDE_TTL).unwrap_or_default();
    sqlx::query(
        "UPDATE gateway.oauth_sessions SET pending_kind = $2, pending_hash = $3, pending_expires_at = $4,
             pending_grant = $5, key_id = $6, pending_user_id = $7, pending_username = $8, pending_display_name = $9
         WHERE state_hash = $1",
    )
    .bind(&session.state_hash)
    .bind(kind.as_str())
    .bind(secret::hash(&token))
    .bind(expires_at)
    .bind(sealed)
    .bind(app.config.vault_keys.active_key_id())
    .bind(&user.id)
    .bind(&user.username)
    .bind(&user.display_name)
    .execute(&mut *tx)
    .await?;
    Ok(Pending {
        kind,
        token,
        workspace: session.workspace,
        platform: session.platform,
        user: user.clone(),
        expires_at,
        missing,
        reconnect,
    })
}

fn missing_json(missing: &[Needed]) -> serde_json::Value {
    missing.iter().map(|n| serde_json::json!({"permission": n.scope, "why": n.why})).collect()
}

/// `result` of a callback that waits for the user.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub(crate) enum WaitingResult {
    ConfirmationRequired,
}

/// A new identity waits for "Connect @handle (Platform) to workspace …?": post `confirmation`
/// with `decision` to `confirm_url` from the same browser.
#[derive(Serialize, ToSchema)]
pub(crate) struct ConfirmationRequired {
    result: WaitingResult,
    /// Always `/oauth/confirm`.
    #[schema(value_type = String, example = "/oauth/confirm")]
    confirm_url: &'static str,
    /// The single-use token the decision presents.
    confirmation: String,
    #[schema(value_type = PlatformName)]
    platform: Platform,
    platform_user_id: String,
    username: String,
    display_name: String,
    workspace_id: WorkspaceId,
    /// When the decision must be made by (10 minutes after the callback).
    expires_at: DateTime<Utc>,
}

/// The answer to the callback that parked a decision: the gateway's page, or JSON for scripts.
pub(super) fn answer(p: Pending, json: bool) -> Response {
    let handle = page::handle_label(p.platform, &p.user.username, &p.user.display_name);
    match (p.kind, json) {
        (Kind::Confirm, true) => Json(ConfirmationRequired {
            result: WaitingResult::ConfirmationRequired,
            confirm_url: "/oauth/confirm",
            confirmation: p.token,
            platform: p.platform,
            platform_user_id: p.user.id,
            username: p.user.username,
            display_name: p.user.display_name,
            workspace_id: p.workspace,
            expires_at: p.expires_at,
        })
        .into_response(),
        (Kind::Confirm, false) => Html(page::confirm_page(
            &handle,
            p.platform.display_name(),
            &p.workspace.to_string(),
            &p.token,
        ))
        .into_response(),
        (Kind::AskAgain, true) => lifeline_kit::http::ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "permission_missing",
            missing_message(&p),
        )
        .with_details(serde_json::json!({
            "missing": missing_json(&p.missing),
            "ask_again_url": "/oauth/ask-again",
            "confirmation": p.token,
            "account_needs_reconnect": p.reconnect,
        }))
        .into_response(),
        (Kind::AskAgain, false) => {
            let missing: Vec<(&str, &str)> = p.missing.iter().map(|n| (n.scope, n.why)).collect();
            let page = page::ask_again_page(
                &handle,
                p.platform.display_name(),
                &missing,
                &p.token,
                p.reconnect,
            );
            (StatusCode::UNPROCESSABLE_ENTITY, Html(page)).into_response()
        }
    }
}

fn missing_message(p: &Pending) -> String {
    let names: Vec<&str> = p.missing.iter().map(|n| n.scope).collect();
    format!(
        "{} did not grant {} that publishing needs; nothing was stored. Ask again and keep {} ticked.",
        p.platform.display_name(),
        names.join(", "),
        if names.len() == 1 { "it" } else { "them" }
    )
}

/// The body of `POST /oauth/confirm` and `POST /oauth/ask-again`, as a form or JSON.
#[derive(Deserialize, ToSchema)]
pub(crate) struct Decision {
    /// The token of the page (or JSON answer) that asked.
    confirmation: String,
    /// `connect` or `cancel` (confirm only; ask-again needs none).
    #[serde(default)]
    #[schema(value_type = DecisionWord, required = false)]
    decision: Option<String>,
}

/// The user's answer to "Connect …?".
#[derive(ToSchema)]
#[schema(rename_all = "snake_case")]
#[allow(dead_code)] // a schema only
enum DecisionWord {
    Connect,
    Cancel,
}

/// `result` of a cancelled confirmation.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub(crate) enum CancelledResult {
    Cancelled,
}

/// The user chose not to connect: nothing was stored.
#[derive(Serialize, ToSchema)]
pub(crate) struct Cancelled {
    result: CancelledResult,
}

/// `POST /oauth/confirm`'s JSON answer.
#[derive(Serialize, ToSchema)]
#[serde(untagged)]
#[allow(dead_code)] // a schema only: the two answers are built apart
pub(crate) enum ConfirmAnswer {
    Stored(super::CallbackOutcome),
    Cancelled(Cancelled),
}

fn parse_decision(headers: &HeaderMap, body: &Bytes) -> Option<Decision> {
    let is_json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if is_json {
        serde_json::from_slice(body).ok()
    } else {
        serde_urlencoded_form(body)
    }
}

fn serde_urlencoded_form(body: &Bytes) -> Option<Decision> {
    let mut confirmation = None;
    let mut decision = None;
    for (k, v) in url::form_urlencoded::parse(body) {
        match &*k {
            "confirmation" => confirmation = Some(v.into_owned()),
            "decision" => decision = Some(v.into_owned()),
            _ => {}
        }
    }
    Some(Decision { confirmation: confirmation?, decision })
}

/// What a claimed decision holds.
struct Claimed {
    session: Session,
    user: PlatformUser,
    grant: Option<Vec<u8>>,
    grant_key: String,
}

/// Takes the decision token under the row lock: unknown, decided, expired, of the other kind,
/// or presented without the flow's cookie is refused. A request without the cookie burns it.
async fn claim(
    tx: &mut PgConnection,
    headers: &HeaderMap,
    token: &str,
    kind: Kind,
) -> Result<Claimed, CallbackError> {
    let bad = |code, msg: &str| CallbackError::new(StatusCode::BAD_REQUEST, code, msg);
    if token.is_empty() || token.len() > 128 {
        return Err(bad("unknown_confirmation", UNKNOWN));
    }
    let row = sqlx::query(
        "SELECT state_hash, workspace_id, platform, account_id, key_id, binding_hash, pending_kind,
                pending_expires_at, decided_at, pending_grant, pending_user_id, pending_username, pending_display_name
         FROM gateway.oauth_sessions WHERE pending_hash = $1 FOR UPDATE",
    )
    .bind(secret::hash(token))
    .fetch_optional(&mut *tx)
    .await?
    .ok_or_else(|| bad("unknown_confirmation", UNKNOWN))?;
    let state_hash: String = row.try_get("state_hash")?;
    let decided: Option<DateTime<Utc>> = row.try_get("decided_at")?;
    if decided.is_some() {
        return Err(bad(
            "already_decided",
            "This was already answered. Start connecting again from the Accounts page.",
        ));
    }
    let stored_kind: Option<String> = row.try_get("pending_kind")?;
    if stored_kind.as_deref() != Some(kind.as_str()) {
        return Err(bad("unknown_confirmation", UNKNOWN));
    }
    let binding: Option<String> = row.try_get("binding_hash")?;
    let burn = sqlx::query(
        "UPDATE gateway.oauth_sessions SET decided_at = now(), pending_grant = NULL WHERE state_hash = $1",
    )
    .bind(state_hash.clone());
    if !binding::matches(headers, &state_hash, binding.as_deref()) {
        burn.execute(&mut *tx).await?;
        return Err(CallbackError::new(
            StatusCode::FORBIDDEN,
            "oauth_binding_mismatch",
            super::OTHER_BROWSER,
        ));
    }
    let expires: Option<DateTime<Utc>> = row.try_get("pending_expires_at")?;
    if expires.is_none_or(|e| e <= Utc::now()) {
        burn.execute(&mut *tx).await?;
        return Err(bad("confirmation_expired", "This took too long and expired; nothing was stored. Start connecting again from the Accounts page."));
    }
    burn.execute(&mut *tx).await?;
    let platform: String = row.try_get("platform")?;
    Ok(Claimed {
        session: Session {
            state_hash,
            workspace: row.try_get("workspace_id")?,
            platform: platform.parse().map_err(|_| bad("unknown_confirmation", UNKNOWN))?,
            account: row.try_get("account_id")?,
            key_id: row.try_get("key_id")?,
            pkce_verifier: None,
        },
        user: PlatformUser {
            id: row.try_get::<Option<String>, _>("pending_user_id")?.unwrap_or_default(),
            username: row.try_get::<Option<String>, _>("pending_username")?.unwrap_or_default(),
            display_name: row
                .try_get::<Option<String>, _>("pending_display_name")?
                .unwrap_or_default(),
        },
        grant: row.try_get("pending_grant")?,
        grant_key: row.try_get("key_id")?,
    })
}

const UNKNOWN: &str =
    "This confirmation is not one Lifeline asked for. Start connecting again from the Accounts page.";

fn open_grant(app: &AppState, c: &Claimed) -> Result<Tokens, CallbackError> {
    let internal = || {
        CallbackError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "internal error; nothing was stored, start connecting again",
        )
    };
    let sealed = c.grant.as_ref().ok_or_else(internal)?;
    let plain = app
        .config
        .vault_keys
        .open_bound(&c.grant_key, &grant_context(&c.session.state_hash), sealed)
        .map_err(|e| {
            tracing::error!(error = %e, "cannot open a pending grant");
            internal()
        })?;
    let g: SealedGrant = serde_json::from_str(plain.expose_secret()).map_err(|_| internal())?;
    Ok(Tokens {
        access_token: SecretString::from(g.access_token),
        refresh_token: g.refresh_token.map(SecretString::from),
        access_expires_at: g.access_expires_at,
        refresh_expires_at: g.refresh_expires_at,
        scopes: g.scopes,
    })
}

/// Answers "Connect @handle (Platform) to workspace …?": `connect` stores the waiting identity
/// in the workspace, `cancel` drops it. The browser goes back to the Accounts page; JSON
/// callers (`Accept: application/json`) get the outcome.
///
/// Only from the browser that started the flow (its binding cookie `lifeline_oauth_<16 hex>`),
/// and only from this origin (`Origin`, or `Sec-Fetch-Site`). The token is single use: a
/// refused decision other than a malformed one uses it up.
#[utoipa::path(
    post,
    path = "/oauth/confirm",
    operation_id = "oauth_confirm",
    tag = "oauth",
    request_body(content(
        (Decision = "application/x-www-form-urlencoded"),
        (Decision = "application/json"),
    )),
    responses(
        (status = 200, description = "JSON: stored (`connected`/`reconnected`) or `cancelled`. HTML: the \"nothing was connected\" page after a cancel.",
            content((ConfirmAnswer = "application/json"), (String = "text/html"))),
        (status = 303, description = "Stored: back to the Accounts page (`/?connected=<id>`); the flow's cookie is cleared.",
            headers(("Location" = String), ("Set-Cookie" = String))),
        (status = 400, description = "`malformed_decision`, `unknown_confirmation`, `already_decided`, `confirmation_expired`.",
            content((ErrorBody = "application/json"), (String = "text/html"))),
        (status = 403, description = "`cross_site`: posted from another site; `oauth_binding_mismatch`: from another browser.",
            content((ErrorBody = "application/json"), (String = "text/html"))),
        (status = 404, description = "`account_gone`: the account being reconnected was disconnected meanwhile.",
            content((ErrorBody = "application/json"), (String = "text/html"))),
        (status = 409, description = "`different_user`: the identity belongs to another account of the workspace.",
            content((ErrorBody = "application/json"), (String = "text/html"))),
        (status = 500, description = "`internal`: nothing was stored.",
            content((ErrorBody = "application/json"), (String = "text/html"))),
    ),
)]
pub(crate) async fn confirm(
    State(app): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let json = super::wants_json(&headers);
    match decide_confirm(&app, &headers, &body).await {
        Ok(Some((outcome, state_hash))) => super::stored_answer(&app, outcome, &state_hash, json),
        Ok(None) if json => Json(Cancelled { result: CancelledResult::Cancelled }).into_response(),
        Ok(None) => Html(page::message_page(
            "Nothing was connected",
            "You chose not to connect this account. Nothing was stored.",
        ))
        .into_response(),
        Err(e) => super::refused(e, json),
    }
}

async fn decide_confirm(
    app: &AppState,
    headers: &HeaderMap,
    body: &Bytes,
) -> Result<Option<(super::CallbackOutcome, String)>, CallbackError> {
    if same_origin(headers, &app.config.page.public_url).is_err() {
        return Err(CallbackError::new(
            StatusCode::FORBIDDEN,
            "cross_site",
            crate::session::CrossSite::MESSAGE,
        ));
    }
    let d = parse_decision(headers, body).ok_or_else(|| {
        CallbackError::new(
            StatusCode::BAD_REQUEST,
            "malformed_decision",
            "The answer is malformed.",
        )
    })?;
    let connect = match d.decision.as_deref() {
        Some("connect") => true,
        Some("cancel") => false,
        _ => {
            return Err(CallbackError::new(
                StatusCode::BAD_REQUEST,
                "malformed_decision",
                "The answer must be `connect` or `cancel`.",
            ))
        }
    };
    let mut tx = app.pool.begin().await?;
    let claimed = claim(&mut tx, headers, &d.confirmation, Kind::Confirm).await;
    let claimed = match claimed {
        Ok(c) => c,
        Err(e) => {
            // A burnt token stays burnt.
            tx.commit().await?;
            return Err(e);
        }
    };
    if !connect {
        tx.commit().await?;
        tracing::info!(platform = %claimed.session.platform, "connect cancelled by the user");
        return Ok(None);
    }
    let tokens = open_grant(app, &claimed)?;
    let outcome = store::store(app, &mut tx, &claimed.session, &claimed.user, &tokens).await?;
    tx.commit().await?;
    app.outbox.wake();
    super::completed(&outcome);
    Ok(Some((outcome, claimed.session.state_hash)))
}

/// Starts the authorization again, asking the platform to show the declined permissions; the
/// browser goes straight to the platform. Same browser and origin rules as `/oauth/confirm`.
#[utoipa::path(
    post,
    path = "/oauth/ask-again",
    operation_id = "oauth_ask_again",
    tag = "oauth",
    request_body(content(
        (Decision = "application/x-www-form-urlencoded"),
        (Decision = "application/json"),
    )),
    responses(
        (status = 201, description = "JSON: the new authorization (and its new binding cookie).",
            body = super::start::AuthorizationStarted, headers(("Set-Cookie" = String))),
        (status = 303, description = "To the platform's consent page, asking again.",
            headers(("Location" = String), ("Set-Cookie" = String))),
        (status = 400, description = "`malformed_decision`, `unknown_confirmation`, `already_decided`, `confirmation_expired`, \
            `platform_not_configured`.", content((ErrorBody = "application/json"), (String = "text/html"))),
        (status = 403, description = "`cross_site`: posted from another site; `oauth_binding_mismatch`: from another browser.",
            content((ErrorBody = "application/json"), (String = "text/html"))),
        (status = 500, description = "`internal`.",
            content((ErrorBody = "application/json"), (String = "text/html"))),
    ),
)]
pub(crate) async fn ask_again(
    State(app): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let json = super::wants_json(&headers);
    let started = async {
        if same_origin(&headers, &app.config.page.public_url).is_err() {
            return Err(CallbackError::new(
                StatusCode::FORBIDDEN,
                "cross_site",
                crate::session::CrossSite::MESSAGE,
            ));
        }
        let d = parse_decision(&headers, &body).ok_or_else(|| {
            CallbackError::new(
                StatusCode::BAD_REQUEST,
                "malformed_decision",
                "The answer is malformed.",
            )
        })?;
        let mut tx = app.pool.begin().await?;
        let claimed = claim(&mut tx, &headers, &d.confirmation, Kind::AskAgain).await;
        tx.commit().await?;
        let c = claimed?;
        super::start::begin(&app, c.session.workspace, c.session.platform, c.session.account, true)
            .await
            .map_err(|e| CallbackError::new(e.status, e.code, e.message))
    }
    .await;
    match started {
        Ok(s) if json => s.into_response(),
        Ok(s) => (
            StatusCode::SEE_OTHER,
            [(header::LOCATION, s.body.authorize_url), (header::SET_COOKIE, s.cookie)],
        )
            .into_response(),
        Err(e) => super::refused(e, json),
    }
}
