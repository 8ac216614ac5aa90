//! Signing in to the Accounts page without a token in the URL: a short-lived, single-use page
//! link (minted with an API token) is exchanged, on POST, for an HttpOnly session cookie; the
//! page's script then trades the cookie for short-lived bearer JWTs, so the JSON APIs keep
//! bearer authentication. Link and session ids are stored only as SHA-256 hashes.

use std::time::Duration;

use axum::{
    body::Bytes,
    extract::{rejection::FormRejection, Query, State},
    http::{header, HeaderMap, StatusCode},
    response::{Html, IntoResponse, Response},
    routing::{get, post},
    Extension, Form, Json, Router,
};
use chrono::{DateTime, Utc};
use lifeline_kit::{
    auth::{JwtKeys, Workspace},
    config::{ConfigError, Env},
    http::ApiError,
    ids::{AccountId, WorkspaceId},
    openapi::{ErrorBody, Unauthorized},
};
use serde::{Deserialize, Serialize};
use url::Url;
use utoipa::{IntoParams, ToSchema};

use crate::{page, secret, AppState};

/// The session cookie's name.
pub(crate) const SESSION_COOKIE: &str = "lifeline_session";
/// Lifetime of the bearer tokens the page gets for its session; it asks for a new one before.
const PAGE_TOKEN_TTL: Duration = Duration::from_secs(300);
/// The `sub` of page tokens starts with this, so a page session cannot mint itself new links.
const PAGE_SUBJECT_PREFIX: &str = "page:";

/// Settings of page links and sessions.
#[derive(Clone, Debug)]
pub struct PageConfig {
    /// `LIFELINE_PUBLIC_URL`: where browsers reach the gateway (links point there; `https`
    /// makes the cookie `Secure`).
    pub public_url: Url,
    /// `LIFELINE_PAGE_LINK_TTL` (default 15m): how long a page link can be used.
    pub link_ttl: Duration,
    /// `LIFELINE_PAGE_SESSION_TTL` (default 12h): how long a signed-in browser stays signed in.
    pub session_ttl: Duration,
}

impl PageConfig {
    pub fn from_env(env: &Env) -> Result<Self, ConfigError> {
        let public = env.string_or("LIFELINE_PUBLIC_URL", "http://127.0.0.1:8080");
        let public_url =
            Url::parse(&public).map_err(|e| env.invalid("LIFELINE_PUBLIC_URL", e.to_string()))?;
        let link_ttl = env.duration_in(
            "LIFELINE_PAGE_LINK_TTL",
            Duration::from_secs(15 * 60),
            Duration::from_secs(10)..=Duration::from_secs(24 * 3600),
        )?;
        let session_ttl = env.duration_in(
            "LIFELINE_PAGE_SESSION_TTL",
            Duration::from_secs(12 * 3600),
            Duration::from_secs(60)..=Duration::from_secs(30 * 24 * 3600),
        )?;
        Ok(PageConfig { public_url, link_ttl, session_ttl })
    }

    pub(crate) fn secure_cookies(&self) -> bool {
        self.public_url.scheme() == "https"
    }
}

pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/v1/page-links", post(mint_link))
        .route("/signin", get(signin_form).post(signin))
        .route("/signout", post(signout))
        .route("/session/token", get(session_token))
        .layer(axum::middleware::map_response(page::security_headers))
}

fn after(ttl: Duration) -> DateTime<Utc> {
    Utc::now() + chrono::Duration::from_std(ttl).unwrap_or_default()
}

/// The longest a page link may be asked to last (`ttl_seconds`): a link in an email or a
/// Slack message has to outlive the time a person takes to read it, and no more.
const LINK_TTL_MAX_SECS: f64 = 86_400.0;
/// The shortest.
const LINK_TTL_MIN_SECS: f64 = 10.0;

/// What a page link opens; the body may also be empty.
#[derive(Deserialize, Default, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct LinkRequest {
    /// Open the page on this account (it must be one of the workspace's).
    #[schema(value_type = Option<AccountId>)]
    account_id: Option<String>,
    /// How long the link works, in seconds (10 to 86,400); default `LIFELINE_PAGE_LINK_TTL`.
    /// The notifier asks for a day for the links in its emails and Slack messages.
    #[schema(value_type = Option<u64>, minimum = 10, maximum = 86400)]
    // Read as a number: JSON Schema counts `300.0` as the integer 300, and so does this.
    ttl_seconds: Option<f64>,
}

/// A single-use sign-in link for the Accounts page.
#[derive(Serialize, ToSchema)]
pub(crate) struct LinkMinted {
    /// `<LIFELINE_PUBLIC_URL>/signin?link=…`: it works once, until `expires_at`.
    #[schema(format = "uri")]
    url: String,
    /// `ttl_seconds` (or `LIFELINE_PAGE_LINK_TTL`) from now.
    expires_at: DateTime<Utc>,
    /// The account the page opens on, when one was asked for.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    account_id: Option<AccountId>,
}

/// The `sub` of an already verified bearer token (the `Workspace` extractor checked it).
fn bearer_subject(keys: &JwtKeys, headers: &HeaderMap) -> Option<String> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let token = value.strip_prefix("Bearer ").or_else(|| value.strip_prefix("bearer "))?;
    keys.verify(token.trim()).ok().map(|c| c.sub)
}

/// `POST /v1/page-links`: a single-use link that signs a browser in to the Accounts page.
#[utoipa::path(
    post,
    path = "/v1/page-links",
    operation_id = "mint_page_link",
    tag = "page",
    security(("bearer" = [])),
    // By reference, so that the body is optional without being `null`.
    request_body(content = ref("#/components/schemas/LinkRequest"), content_type = "application/json",
        description = "Empty, or `{\"account_id\": …}`."),
    responses(
        (status = 201, description = "The link, to hand to the person (`lifelinectl page-link` prints it).", body = LinkMinted),
        (status = 400, description = "`bad_request`: the body is neither empty nor `{\"account_id\": \"<uuid>\", \"ttl_seconds\": 10..86400}` (either field optional).", body = ErrorBody),
        (status = 401, response = Unauthorized),
        (status = 403, description = "`forbidden`: a page session's token cannot mint links; use an API token.", body = ErrorBody),
        (status = 404, description = "`not_found`: `account_id` is not an account of the workspace (or not an id).", body = ErrorBody),
    ),
)]
pub(crate) async fn mint_link(
    State(app): State<AppState>,
    Workspace(ws): Workspace,
    Extension(keys): Extension<JwtKeys>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<(StatusCode, Json<LinkMinted>), ApiError> {
    let subject = bearer_subject(&keys, &headers).unwrap_or_default();
    if subject.starts_with(PAGE_SUBJECT_PREFIX) {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            "a page session cannot mint page links; use an API token (lifelinectl page-link)",
        ));
    }
    let req: LinkRequest = if body.iter().all(u8::is_ascii_whitespace) {
        LinkRequest::default()
    } else {
        lifeline_kit::http::json_object_from_slice(&body).map_err(|e| {
            ApiError::bad_request(format!(
                "the body must be empty or {{\"account_id\": \"<uuid>\", \"ttl_seconds\": 10..86400}}: {}",
                e.message
            ))
        })?
    };
    let ttl = match req.ttl_seconds {
        None => app.config.page.link_ttl,
        Some(t) if t.fract() == 0.0 && (LINK_TTL_MIN_SECS..=LINK_TTL_MAX_SECS).contains(&t) => {
            Duration::from_secs_f64(t)
        }
        Some(t) => {
            return Err(ApiError::bad_request(format!(
                "ttl_seconds must be a whole number of seconds from 10 to 86400 (a day), not {t}"
            )))
        }
    };
    let account = match req.account_id {
        None => None,
        Some(id) => {
            let id: AccountId = id.parse().map_err(|_| ApiError::not_found("account"))?;
            let known: bool = sqlx::query_scalar(
                "SELECT EXISTS (SELECT 1 FROM gateway.accounts WHERE id = $1 AND workspace_id = $2)",
            )
            .bind(id)
            .bind(ws)
            .fetch_one(&app.pool)
            .await?;
            if !known {
                return Err(ApiError::not_found("account"));
            }
            Some(id)
        }
    };
    let page = &app.config.page;
    let link = secret::random();
    let expires_at = after(ttl);
    let mut tx = app.pool.begin().await?;
    // Old links and sessions go when new ones come, so neither table grows without bound.
    sqlx::query("DELETE FROM gateway.page_links WHERE expires_at < now() - interval '1 day'")
        .execute(&mut *tx)
        .await?;
    sqlx::query("DELETE FROM gateway.page_sessions WHERE expires_at < now()")
        .execute(&mut *tx)
        .await?;
    sqlx::query(
        "INSERT INTO gateway.page_links (link_hash, workspace_id, subject, account_id, expires_at)
         VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(secret::hash(&link))
    .bind(ws)
    .bind(&subject)
    .bind(account)
    .bind(expires_at)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    let mut url = page.public_url.join("signin").map_err(ApiError::internal)?;
    url.query_pairs_mut().append_pair("link", &link);
    tracing::info!(workspace = %ws, account = ?account, "page link minted");
    Ok((
        StatusCode::CREATED,
        Json(LinkMinted { url: url.to_string(), expires_at, account_id: account }),
    ))
}

/// Why a link cannot sign anyone in.
enum LinkRefused {
    Unknown,
    Used,
    Expired,
}

impl LinkRefused {
    fn into_page(self) -> Response {
        let (status, title, text) = match self {
            LinkRefused::Unknown => (
                StatusCode::BAD_REQUEST,
                "This sign-in link is not valid",
                "Check that the whole link was copied, or ask for a new one (lifelinectl page-link).",
            ),
            LinkRefused::Used => (
                StatusCode::GONE,
                "This sign-in link was already used",
                "Each link signs in once. If it signed this browser in, the Accounts page below still opens; otherwise use the link of a newer notification, or ask for one (lifelinectl page-link).",
            ),
            LinkRefused::Expired => (
                StatusCode::GONE,
                "This sign-in link has expired",
                "Links work for a limited time only. Use the link of a newer notification, or ask for one (lifelinectl page-link).",
            ),
        };
        (status, Html(page::message_page(title, text))).into_response()
    }
}

/// Whether `link` could sign in now, without using it up.
async fn check_link(app: &AppState, link: &str) -> Result<(), LinkRefused> {
    if link.is_empty() || link.len() > 128 {
        return Err(LinkRefused::Unknown);
    }
    let row: Option<(DateTime<Utc>, Option<DateTime<Utc>>)> =
        sqlx::query_as("SELECT expires_at, used_at FROM gateway.page_links WHERE link_hash = $1")
            .bind(secret::hash(link))
            .fetch_optional(&app.pool)
            .await
            .map_err(|e| {
                tracing::error!(error = %e, "cannot look up a page link");
                LinkRefused::Unknown
            })?;
    match row {
        None => Err(LinkRefused::Unknown),
        Some((_, Some(_))) => Err(LinkRefused::Used),
        Some((expires_at, None)) if expires_at <= Utc::now() => Err(LinkRefused::Expired),
        Some(_) => Ok(()),
    }
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct SigninQuery {
    /// The page link's secret (from `POST /v1/page-links`).
    #[param(required = true, value_type = String, max_length = 128)]
    link: Option<String>,
}

/// `GET /signin?link=…`: a page with a Sign in button. Fetching it (a link preview, a mail
/// scanner) does not use the link up.
#[utoipa::path(
    get,
    path = "/signin",
    operation_id = "signin_page",
    tag = "page",
    params(SigninQuery),
    responses(
        (status = 200, description = "The Sign in page (a button that posts the link).", content_type = "text/html", body = String),
        (status = 400, description = "The link is not valid (unknown, or missing).", content_type = "text/html", body = String),
        (status = 410, description = "The link was used already, or expired.", content_type = "text/html", body = String),
    ),
)]
pub(crate) async fn signin_form(
    State(app): State<AppState>,
    query: Result<Query<SigninQuery>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let link = query.ok().and_then(|Query(q)| q.link).unwrap_or_default();
    match check_link(&app, &link).await {
        Ok(()) => Html(page::signin_page(&link)).into_response(),
        Err(refused) => refused.into_page(),
    }
}

/// Why a cookie-authenticated request was refused as coming from another site.
pub(crate) struct CrossSite;

impl CrossSite {
    pub(crate) const MESSAGE: &'static str =
        "This request came from another site and was refused. Open the Accounts page itself.";
}

/// Refuses a browser request made by another origin. Browsers send `Origin` with every POST
/// and with cross-origin fetches, and `Sec-Fetch-Site` with every request; a client that sends
/// neither is not a browser and cannot ride on someone's cookie.
pub(crate) fn same_origin(headers: &HeaderMap, public: &Url) -> Result<(), CrossSite> {
    let fetch_site = headers.get("sec-fetch-site").and_then(|v| v.to_str().ok());
    if let Some(origin) = headers.get(header::ORIGIN) {
        let origin = origin.to_str().map_err(|_| CrossSite)?;
        // An opaque origin: Chromium posts a form from a page served with
        // `Referrer-Policy: no-referrer` (all of ours) with `Origin: null`. Only the browser's
        // own `Sec-Fetch-Site` can then say where it came from.
        if origin == "null" {
            return if fetch_site == Some("same-origin") { Ok(()) } else { Err(CrossSite) };
        }
        let parsed = Url::parse(origin).map_err(|_| CrossSite)?;
        if parsed.origin() == public.origin() {
            return Ok(());
        }
        // The gateway as this request reached it (a host name other than the public URL's).
        let authority = match (parsed.host_str(), parsed.port()) {
            (Some(host), Some(port)) => format!("{host}:{port}"),
            (Some(host), None) => host.to_owned(),
            _ => return Err(CrossSite),
        };
        let host = headers.get(header::HOST).and_then(|h| h.to_str().ok());
        return if parsed.scheme() == public.scheme() && host == Some(authority.as_str()) {
            Ok(())
        } else {
            Err(CrossSite)
        };
    }
    match fetch_site {
        None | Some("same-origin") | Some("none") => Ok(()),
        Some(_) => Err(CrossSite),
    }
}

/// The Sign in page's form.
#[derive(Deserialize, ToSchema)]
pub(crate) struct SigninForm {
    /// The page link's secret.
    link: String,
}

/// `POST /signin`: uses the link up and opens a session (cookie), then sends the browser to
/// the page, so the link leaves the address bar.
#[utoipa::path(
    post,
    path = "/signin",
    operation_id = "signin",
    tag = "page",
    request_body(content = SigninForm, content_type = "application/x-www-form-urlencoded"),
    responses(
        (status = 303, description = "Signed in: to the Accounts page (`/` or `/?account=<id>`), with the session cookie.",
            headers(("Location" = String), ("Set-Cookie" = String, description = "`lifeline_session`: HttpOnly, SameSite=Lax, Path=/."))),
        (status = 400, description = "The link is not valid (unknown, or the form is malformed); nothing changed.", content_type = "text/html", body = String),
        (status = 403, description = "Posted from another site.", content_type = "text/html", body = String),
        (status = 410, description = "The link was used already, or expired.", content_type = "text/html", body = String),
        (status = 500, description = "Failed on our side; the link was not used.", content_type = "text/html", body = String),
    ),
)]
pub(crate) async fn signin(
    State(app): State<AppState>,
    headers: HeaderMap,
    form: Result<Form<SigninForm>, FormRejection>,
) -> Response {
    if same_origin(&headers, &app.config.page.public_url).is_err() {
        let page = page::message_page("Sign-in refused", CrossSite::MESSAGE);
        return (StatusCode::FORBIDDEN, Html(page)).into_response();
    }
    let Ok(Form(form)) = form else { return LinkRefused::Unknown.into_page() };
    match open_session(&app, &form.link).await {
        Ok(Ok((session, account))) => {
            let location = match account {
                Some(id) => format!("/?account={id}"),
                None => "/".to_owned(),
            };
            let cookie = session_cookie(&app.config.page, &session);
            (StatusCode::SEE_OTHER, [(header::LOCATION, location), (header::SET_COOKIE, cookie)])
                .into_response()
        }
        Ok(Err(refused)) => refused.into_page(),
        Err(e) => {
            tracing::error!(error = %e, "cannot open a page session");
            let page = page::message_page(
                "Sign-in failed",
                "Something went wrong on our side; the link was not used. Please try again.",
            );
            (StatusCode::INTERNAL_SERVER_ERROR, Html(page)).into_response()
        }
    }
}

/// Uses the link and stores a session in one transaction: a failure leaves the link usable,
/// and of two racing requests only one gets a session.
async fn open_session(
    app: &AppState,
    link: &str,
) -> Result<Result<(String, Option<AccountId>), LinkRefused>, sqlx::Error> {
    if link.is_empty() || link.len() > 128 {
        return Ok(Err(LinkRefused::Unknown));
    }
    let mut tx = app.pool.begin().await?;
    let used: Option<(WorkspaceId, String, Option<AccountId>)> = sqlx::query_as(
        "UPDATE gateway.page_links SET used_at = now()
         WHERE link_hash = $1 AND used_at IS NULL AND expires_at > now()
         RETURNING workspace_id, subject, account_id",
    )
    .bind(secret::hash(link))
    .fetch_optional(&mut *tx)
    .await?;
    let Some((ws, subject, account)) = used else {
        drop(tx);
        return Ok(Err(check_link(app, link).await.err().unwrap_or(LinkRefused::Used)));
    };
    let session = secret::random();
    sqlx::query(
        "INSERT INTO gateway.page_sessions (session_hash, workspace_id, subject, expires_at)
         VALUES ($1, $2, $3, $4)",
    )
    .bind(secret::hash(&session))
    .bind(ws)
    .bind(&subject)
    .bind(after(app.config.page.session_ttl))
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    tracing::info!(workspace = %ws, "page session opened");
    Ok(Ok((session, account)))
}

fn session_cookie(page: &PageConfig, session: &str) -> String {
    let secure = if page.secure_cookies() { "; Secure" } else { "" };
    format!(
        "{SESSION_COOKIE}={session}; HttpOnly; SameSite=Lax; Path=/; Max-Age={}{secure}",
        page.session_ttl.as_secs()
    )
}

/// The session cookie's value, if the request has one.
fn session_of(headers: &HeaderMap) -> Option<String> {
    cookie_value(headers, SESSION_COOKIE)
}

/// The value of the cookie `name`, if the request has a non-empty one of sane length.
pub(crate) fn cookie_value(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(n, _)| *n == name)
        .map(|(_, value)| value.to_owned())
        .filter(|v| !v.is_empty() && v.len() <= 128)
}

/// `POST /signout`: ends the session and clears the cookie.
#[utoipa::path(
    post,
    path = "/signout",
    operation_id = "signout",
    tag = "page",
    security((), ("page_session" = [])),
    responses(
        (status = 303, description = "Signed out (or was not signed in): to `/?signed_out=1`, the cookie cleared.",
            headers(("Location" = String), ("Set-Cookie" = String))),
        (status = 403, description = "Posted from another site.", content_type = "text/html", body = String),
        (status = 500, description = "Failed on our side; still signed in.", content_type = "text/html", body = String),
    ),
)]
pub(crate) async fn signout(State(app): State<AppState>, headers: HeaderMap) -> Response {
    if same_origin(&headers, &app.config.page.public_url).is_err() {
        let page = page::message_page("Sign-out refused", CrossSite::MESSAGE);
        return (StatusCode::FORBIDDEN, Html(page)).into_response();
    }
    if let Some(session) = session_of(&headers) {
        let ended = sqlx::query("DELETE FROM gateway.page_sessions WHERE session_hash = $1")
            .bind(secret::hash(&session))
            .execute(&app.pool)
            .await;
        if let Err(e) = ended {
            tracing::error!(error = %e, "cannot end a page session");
            let page = page::message_page(
                "Sign-out failed",
                "Something went wrong on our side; you are still signed in. Please try again.",
            );
            return (StatusCode::INTERNAL_SERVER_ERROR, Html(page)).into_response();
        }
    }
    let secure = if app.config.page.secure_cookies() { "; Secure" } else { "" };
    let clear = format!("{SESSION_COOKIE}=; HttpOnly; SameSite=Lax; Path=/; Max-Age=0{secure}");
    (
        StatusCode::SEE_OTHER,
        [(header::LOCATION, "/?signed_out=1".to_owned()), (header::SET_COOKIE, clear)],
    )
        .into_response()
}

/// A bearer token for the page's own script.
#[derive(Serialize, ToSchema)]
pub(crate) struct PageToken {
    /// A member JWT for the session's workspace (`sub` `page:<who signed in>`).
    token: String,
    expires_at: DateTime<Utc>,
    /// Seconds until `expires_at`.
    expires_in: i64,
    workspace_id: WorkspaceId,
}

/// `GET /session/token`: a short-lived bearer JWT for the session's workspace, for the page's
/// own script (same origin only; never cached).
#[utoipa::path(
    get,
    path = "/session/token",
    operation_id = "session_token",
    tag = "page",
    security(("page_session" = [])),
    responses(
        (status = 200, description = "A token of at most 5 minutes, never outliving the session.", body = PageToken),
        (status = 401, description = "`signed_out`: no session, or it ended; open a new page link.", body = ErrorBody),
        (status = 403, description = "`cross_site`: asked from another site.", body = ErrorBody),
    ),
)]
pub(crate) async fn session_token(
    State(app): State<AppState>,
    Extension(keys): Extension<JwtKeys>,
    headers: HeaderMap,
) -> Result<Json<PageToken>, ApiError> {
    if same_origin(&headers, &app.config.page.public_url).is_err() {
        return Err(ApiError::new(StatusCode::FORBIDDEN, "cross_site", CrossSite::MESSAGE));
    }
    let signed_out = || {
        ApiError::new(
            StatusCode::UNAUTHORIZED,
            "signed_out",
            "not signed in; open a new page link (lifelinectl page-link)",
        )
    };
    let session = session_of(&headers).ok_or_else(signed_out)?;
    let row: Option<(WorkspaceId, String, DateTime<Utc>)> = sqlx::query_as(
        "SELECT workspace_id, subject, expires_at FROM gateway.page_sessions
         WHERE session_hash = $1 AND expires_at > now()",
    )
    .bind(secret::hash(&session))
    .fetch_optional(&app.pool)
    .await?;
    let (ws, subject, session_ends) = row.ok_or_else(signed_out)?;
    // A token never outlives its session.
    let left = (session_ends - Utc::now()).to_std().unwrap_or_default();
    let ttl = PAGE_TOKEN_TTL.min(left).max(Duration::from_secs(1));
    let token = keys.mint(&format!("{PAGE_SUBJECT_PREFIX}{subject}"), ws, ttl);
    let expires_at = after(ttl);
    let expires_in = i64::try_from(ttl.as_secs()).unwrap_or(i64::MAX);
    Ok(Json(PageToken { token, expires_at, expires_in, workspace_id: ws }))
}

#[cfg(test)]
mod tests;
