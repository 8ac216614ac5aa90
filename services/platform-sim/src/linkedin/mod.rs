//! LinkedIn: OAuth 2.0 on www.linkedin.com (`/linkedin/www`), OpenID
//! `userinfo` and versioned `rest/posts` on api.linkedin.com
//! (`/linkedin/api`). Access tokens live 60 days; the refresh token lives
//! 365 days from the first grant and is returned unchanged by each refresh.

// Handlers bail out with the platform's finished error response; boxing it
// would only add noise on a path that runs once per request.
#![allow(clippy::result_large_err)]

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use serde_json::{json, Value};

use crate::accounts::{self, Accounts, Code, Death, Kind, Refusal, Token};
use crate::authorize::{self, required, split_scopes, AuthRequest, Authorizer, AuthzError};
use crate::faults::{self, FaultCfg};
use crate::state::{lock, AccountAction, Common, PlatformSim, PostRecord};
use crate::support::{bearer, json_no_store, parse_form, random_b64, valid_redirect_uri};

const PLATFORM: &str = "linkedin";
const ACCESS_LIFETIME: Duration = Duration::from_secs(60 * 24 * 60 * 60);
const REFRESH_LIFETIME: Duration = Duration::from_secs(365 * 24 * 60 * 60);
const MAX_COMMENTARY: usize = 3000;
/// Oldest `LinkedIn-Version` still served (LinkedIn sunsets versions after a year or so).
const OLDEST_VERSION: u32 = 202_401;

const KNOWN_SCOPES: &[&str] = &[
    "openid",
    "profile",
    "email",
    "w_member_social",
    "r_basicprofile",
    "r_liteprofile",
    "r_emailaddress",
    "w_organization_social",
    "r_organization_social",
    "rw_organization_admin",
];

#[derive(Default)]
pub(crate) struct LinkedInSim {
    accounts: Mutex<Accounts>,
}

#[derive(Clone)]
struct Ctx {
    sim: Arc<LinkedInSim>,
    common: Arc<Common>,
}

impl Ctx {
    fn accounts(&self) -> std::sync::MutexGuard<'_, Accounts> {
        lock(&self.sim.accounts)
    }
}

impl PlatformSim for LinkedInSim {
    fn name(&self) -> &'static str {
        PLATFORM
    }

    fn router(self: Arc<Self>, common: Arc<Common>) -> Router {
        let ctx = Ctx { sim: self, common: Arc::clone(&common) };
        let oauth = Router::new()
            .route("/www/oauth/v2/authorization", get(authorize_page).post(authorize_decision))
            .route("/www/oauth/v2/accessToken", post(token))
            .route("/www/oauth/v2/revoke", post(revoke))
            .with_state(ctx.clone());
        let api = Router::new()
            .route("/api/v2/userinfo", get(userinfo))
            .route("/api/rest/posts", post(create_post).get(list_posts))
            .with_state(ctx);
        let fc = FaultCfg { platform: PLATFORM, common, outage, rate_limited };
        faults::mount(oauth, api, &fc)
    }

    fn account_action(&self, username: &str, action: &AccountAction) -> Option<usize> {
        let mut a = lock(&self.accounts);
        match action {
            AccountAction::Expire => {
                a.expire_user(username, Instant::now(), |t| t.kind == Kind::Access)
            }
            AccountAction::RemoveScope(scope) => a.remove_scope(username, scope),
            // LinkedIn has one signal for all of these: the token is revoked.
            AccountAction::Revoke
            | AccountAction::PasswordChange
            | AccountAction::SecurityCheckpoint
            | AccountAction::Deauthorize => a.kill_user(username, Death::Revoked, |_| true),
        }
    }

    fn posts(&self) -> Vec<PostRecord> {
        lock(&self.accounts).post_records(PLATFORM)
    }

    fn stats(&self) -> Value {
        lock(&self.accounts).stats_json()
    }
}

// ---- wire -----------------------------------------------------------------

/// LinkedIn's API error body: `{"status","serviceErrorCode","code","message"}`.
fn api_error(status: StatusCode, service_code: u32, code: &str, message: &str) -> Response {
    (
        status,
        axum::Json(json!({
            "status": status.as_u16(),
            "serviceErrorCode": service_code,
            "code": code,
            "message": message,
        })),
    )
        .into_response()
}

fn oauth_error(status: StatusCode, error: &str, description: &str) -> Response {
    json_no_store(status, json!({ "error": error, "error_description": description }))
}

fn outage(status: StatusCode) -> Response {
    let reason = status.canonical_reason().unwrap_or("Service Unavailable");
    (status, axum::Json(json!({ "status": status.as_u16(), "message": reason }))).into_response()
}

fn rate_limited(_: &Common, _until: Instant) -> Response {
    api_error(
        StatusCode::TOO_MANY_REQUESTS,
        101,
        "TOO_MANY_REQUESTS",
        "Resource level throttle APPLICATION DAY limit for calls to this resource is reached.",
    )
}

/// A 422 in LinkedIn's Rest.li validation format.
fn unprocessable(field: &str, code: &str, description: &str) -> Response {
    (
        StatusCode::UNPROCESSABLE_ENTITY,
        axum::Json(json!({
            "errorDetailType": "com.linkedin.common.error.BadRequest",
            "message": format!("ERROR :: /{field} :: {description}"),
            "errorDetails": { "inputErrors": [{
                "description": description,
                "input": { "inputPath": { "fieldPath": field } },
                "code": code,
            }]},
            "status": 422,
        })),
    )
        .into_response()
}

fn access_denied(resource: &str) -> Response {
    api_error(
        StatusCode::FORBIDDEN,
        100,
        "ACCESS_DENIED",
        &format!("Not enough permissions to access: {resource}"),
    )
}

// ---- authorize ------------------------------------------------------------

impl Authorizer for Ctx {
    fn common(&self) -> &Common {
        &self.common
    }
    fn title(&self) -> &'static str {
        "LinkedIn: Sign in"
    }
    fn carried(&self) -> &'static [&'static str] {
        &["response_type", "client_id", "redirect_uri", "scope", "state"]
    }
    fn deny_pairs(&self) -> Vec<(&'static str, &'static str)> {
        vec![
            ("error", "user_cancelled_authorize"),
            ("error_description", "The user cancelled the authorization"),
        ]
    }

    fn validate(&self, params: &HashMap<String, String>) -> Result<AuthRequest, AuthzError> {
        let client_id = required(params, "client_id")
            .filter(|c| self.common.client(PLATFORM, c).is_some())
            .ok_or_else(|| AuthzError::Page("The passed in client_id is invalid".into()))?;
        let redirect_uri =
            required(params, "redirect_uri").filter(|r| valid_redirect_uri(r)).ok_or_else(
                || AuthzError::Page("The redirect_uri does not match the registered value".into()),
            )?;
        let back = |error: &str, description: String| AuthzError::Redirect {
            redirect_uri: redirect_uri.to_owned(),
            pairs: [("error", error.to_owned()), ("error_description", description)]
                .into_iter()
                .chain(params.get("state").map(|s| ("state", s.clone())))
                .map(|(k, v)| (k.to_owned(), v))
                .collect(),
        };
        if required(params, "response_type") != Some("code") {
            return Err(back("invalid_request", "Invalid response_type".into()));
        }
        let scopes = split_scopes(required(params, "scope").unwrap_or(""));
        if scopes.is_empty() {
            return Err(back(
                "invalid_request",
                "A required parameter \"scope\" is missing".into(),
            ));
        }
        if let Some(bad) = scopes.iter().find(|s| !KNOWN_SCOPES.contains(&s.as_str())) {
            return Err(back(
                "unauthorized_scope_error",
                format!("Scope \"{bad}\" is not authorized for your application"),
            ));
        }
        Ok(AuthRequest {
            client_id: client_id.to_owned(),
            redirect_uri: redirect_uri.to_owned(),
            scopes,
            state: params.get("state").cloned(),
            pkce: None,
            offline: false,
            prompt_consent: false,
        })
    }

    fn issue_code(&self, request: &AuthRequest, username: &str) -> String {
        let mut a = self.accounts();
        let user = a.sign_in(username, |_| {
            let sub: String =
                random_b64(12).chars().filter(char::is_ascii_alphanumeric).take(10).collect();
            (sub, String::new())
        });
        a.issue_code(Code::for_request(request, user.key, &self.common.clock))
    }
}

async fn authorize_page(State(ctx): State<Ctx>, RawQuery(q): RawQuery) -> Response {
    authorize::page(&ctx, &parse_form(q.unwrap_or_default().as_bytes()))
}

async fn authorize_decision(State(ctx): State<Ctx>, body: Bytes) -> Response {
    authorize::decision(&ctx, &parse_form(&body))
}

// ---- token ----------------------------------------------------------------

fn missing(name: &str) -> Response {
    oauth_error(
        StatusCode::BAD_REQUEST,
        "invalid_request",
        &format!("A required parameter \"{name}\" is missing"),
    )
}

/// LinkedIn takes client_id and client_secret in the form.
fn authenticate_client(ctx: &Ctx, form: &HashMap<String, String>) -> Result<String, Response> {
    let id = required(form, "client_id").ok_or_else(|| missing("client_id"))?;
    let secret = required(form, "client_secret").ok_or_else(|| missing("client_secret"))?;
    ctx.common.authenticate_client(PLATFORM, id, secret).map(|c| c.client_id.clone()).ok_or_else(
        || oauth_error(StatusCode::UNAUTHORIZED, "invalid_client", "Client authentication failed"),
    )
}

/// `POST /oauth/v2/accessToken`: `authorization_code` and `refresh_token`.
async fn token(State(ctx): State<Ctx>, body: Bytes) -> Response {
    let form = parse_form(&body);
    let grant_type = match required(&form, "grant_type") {
        Some(g) => g.to_owned(),
        None => return missing("grant_type"),
    };
    let client_id = match authenticate_client(&ctx, &form) {
        Ok(c) => c,
        Err(r) => return r,
    };
    let clock = &ctx.common.clock;
    let now = clock.now();
    let (access, expires_in, refresh, refresh_expires_in, scope) = match grant_type.as_str() {
        "authorization_code" => {
            let Some(code) = required(&form, "code") else { return missing("code") };
            let Some(redirect_uri) = required(&form, "redirect_uri") else {
                return missing("redirect_uri");
            };
            let mut a = ctx.accounts();
            let code = match a.redeem_code(code, &client_id, Some(redirect_uri), now) {
                Ok(c) => c,
                Err(reason) => {
                    tracing::info!(platform = PLATFORM, ?reason, "code refused");
                    return oauth_error(
                        StatusCode::BAD_REQUEST,
                        "invalid_grant",
                        "Unable to retrieve access token: appid/redirect uri/code verifier does not match authorization code. Or authorization code expired.",
                    );
                }
            };
            let grant = a.new_grant();
            let base = accounts::grant_base(&code.user_key, &client_id, code.scopes, grant, now);
            let (at, expires_in) = accounts::timed(clock, Kind::Access, &base, ACCESS_LIFETIME);
            let (rt, refresh_expires_in) =
                accounts::timed(clock, Kind::Refresh, &base, REFRESH_LIFETIME);
            let scope = base.scopes.join(",");
            let access = a.insert_token("AQV", at);
            let refresh = a.insert_token("AQW", rt);
            a.stats.tokens_issued += 1;
            (access, expires_in, refresh, refresh_expires_in, scope)
        }
        "refresh_token" => {
            let Some(rt) = required(&form, "refresh_token") else {
                return missing("refresh_token");
            };
            let mut a = ctx.accounts();
            let t = match a.check(rt, &[Kind::Refresh], now) {
                Ok(t) if t.client_id == client_id => t,
                other => {
                    tracing::info!(platform = PLATFORM, reason = ?other.err(), "refresh refused");
                    return oauth_error(
                        StatusCode::BAD_REQUEST,
                        "invalid_grant",
                        "The provided authorization grant or refresh token is invalid, expired or revoked.",
                    );
                }
            };
            let (at, expires_in) = accounts::timed(clock, Kind::Access, &t, ACCESS_LIFETIME);
            let access = a.insert_token("AQV", at);
            // Not extended: what is left of the 365 days since the first grant.
            let left = t.expires_at.map_or(0, |e| e.saturating_duration_since(now).as_secs());
            a.stats.tokens_issued += 1;
            a.stats.refreshes += 1;
            (access, expires_in, rt.to_owned(), left.max(1), t.scopes.join(","))
        }
        other => {
            return oauth_error(
                StatusCode::BAD_REQUEST,
                "unsupported_grant_type",
                &format!("Grant type \"{other}\" is not supported"),
            )
        }
    };
    ctx.common.record_secret(&access);
    if grant_type == "authorization_code" {
        ctx.common.record_secret(&refresh);
    }
    tracing::info!(platform = PLATFORM, client_id, grant_type, "tokens issued");
    json_no_store(
        StatusCode::OK,
        json!({
            "access_token": access,
            "expires_in": expires_in,
            "refresh_token": refresh,
            "refresh_token_expires_in": refresh_expires_in,
            "scope": scope,
            "token_type": "Bearer",
        }),
    )
}

/// `POST /oauth/v2/revoke` with client credentials and `token`.
async fn revoke(State(ctx): State<Ctx>, body: Bytes) -> Response {
    let form = parse_form(&body);
    let client_id = match authenticate_client(&ctx, &form) {
        Ok(c) => c,
        Err(r) => return r,
    };
    let Some(token) = required(&form, "token") else { return missing("token") };
    let mut a = ctx.accounts();
    if let Some(grant) = a.token(token).filter(|t| t.client_id == client_id).map(|t| t.grant) {
        a.kill_grant(grant, Death::Revoked);
    }
    StatusCode::OK.into_response()
}

// ---- API ------------------------------------------------------------------

fn caller(ctx: &Ctx, headers: &HeaderMap) -> Result<Token, Response> {
    let invalid = || {
        api_error(StatusCode::UNAUTHORIZED, 65600, "INVALID_ACCESS_TOKEN", "Invalid access token")
    };
    let token = bearer(headers).ok_or_else(invalid)?;
    ctx.accounts().check(&token, &[Kind::Access], ctx.common.clock.now()).map_err(|r| match r {
        Refusal::Dead(_) => api_error(
            StatusCode::UNAUTHORIZED,
            65601,
            "REVOKED_ACCESS_TOKEN",
            "The token used in the request has been revoked by the user",
        ),
        Refusal::Expired { .. } => api_error(
            StatusCode::UNAUTHORIZED,
            65602,
            "EXPIRED_ACCESS_TOKEN",
            "The token used in the request has expired",
        ),
        _ => invalid(),
    })
}

/// `GET /v2/userinfo` (OpenID Connect).
async fn userinfo(State(ctx): State<Ctx>, headers: HeaderMap) -> Response {
    let t = match caller(&ctx, &headers) {
        Ok(t) => t,
        Err(r) => return r,
    };
    if !t.has_scope("openid") {
        return access_denied("userinfo.GET.NO_VERSION");
    }
    let Some(u) = ctx.accounts().user(&t.user_key).cloned() else {
        return access_denied("userinfo.GET.NO_VERSION");
    };
    let mut body = json!({ "sub": u.id, "locale": { "country": "US", "language": "en" } });
    if t.has_scope("profile") {
        let mut parts = u.name.splitn(2, ' ');
        body["name"] = json!(u.name);
        body["given_name"] = json!(parts.next().unwrap_or_default());
        body["family_name"] = json!(parts.next().unwrap_or_default());
        body["picture"] = json!("https://media.licdn.com/dms/image/sim/profile.jpg");
    }
    if t.has_scope("email") {
        body["email"] = json!(format!("{}@example.com", u.key));
        body["email_verified"] = json!(true);
    }
    axum::Json(body).into_response()
}

/// Checks `LinkedIn-Version: YYYYMM`, required by every `/rest` call.
fn check_version(headers: &HeaderMap) -> Result<(), Response> {
    let Some(raw) = headers.get("linkedin-version").and_then(|v| v.to_str().ok()) else {
        return Err(api_error(
            StatusCode::BAD_REQUEST,
            0,
            "VERSION_MISSING",
            "A version must be present. Please specify a version by adding the LinkedIn-Version header.",
        ));
    };
    let raw = raw.trim();
    let month: Option<u32> = raw.get(..6).and_then(|m| m.parse().ok()).filter(|_| {
        (raw.len() == 6 || (raw.len() == 9 && raw.as_bytes()[6] == b'.'))
            && raw.bytes().all(|b| b.is_ascii_digit() || b == b'.')
    });
    match month {
        None => Err(api_error(
            StatusCode::BAD_REQUEST,
            0,
            "INVALID_VERSION",
            &format!("Invalid version format: {raw}. Expected YYYYMM."),
        )),
        Some(m) if m < OLDEST_VERSION => Err(api_error(
            StatusCode::UPGRADE_REQUIRED,
            0,
            "NONEXISTENT_VERSION",
            &format!("Requested version {raw} is not active"),
        )),
        Some(_) => Ok(()),
    }
}

/// `POST /rest/posts`: a member's text post. 201, empty body, `x-restli-id`.
async fn create_post(State(ctx): State<Ctx>, headers: HeaderMap, body: Bytes) -> Response {
    let t = match caller(&ctx, &headers) {
        Ok(t) => t,
        Err(r) => return r,
    };
    if let Err(r) = check_version(&headers) {
        return r;
    }
    if !t.has_scope("w_member_social") {
        return access_denied("partnerApiPostsExternal.CREATE.20240101");
    }
    let Ok(Value::Object(post)) = serde_json::from_slice::<Value>(&body) else {
        return api_error(
            StatusCode::BAD_REQUEST,
            0,
            "ILLEGAL_ARGUMENT",
            "Unable to parse the request body as JSON",
        );
    };
    let Some(user) = ctx.accounts().user(&t.user_key).cloned() else {
        return access_denied("partnerApiPostsExternal.CREATE.20240101");
    };
    for field in ["author", "lifecycleState", "visibility", "distribution"] {
        if post.get(field).is_none_or(Value::is_null) {
            return unprocessable(
                field,
                "FIELD_REQUIRED",
                "field is required but not found and has no default value",
            );
        }
    }
    let author = post.get("author").and_then(Value::as_str).unwrap_or_default();
    if author != format!("urn:li:person:{}", user.id) {
        return access_denied(&format!(
            "partnerApiPostsExternal.CREATE.20240101 for author {author}"
        ));
    }
    let text = match post.get("commentary") {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(s)) => s.clone(),
        Some(_) => return unprocessable("commentary", "INVALID_TYPE", "expected a string"),
    };
    if text.chars().count() > MAX_COMMENTARY {
        return unprocessable(
            "commentary",
            "FIELD_VALUE_TOO_LONG",
            "length exceeds the maximum of 3000",
        );
    }
    if post.get("lifecycleState").and_then(Value::as_str) != Some("PUBLISHED") {
        return unprocessable("lifecycleState", "INVALID_VALUE", "only PUBLISHED is supported");
    }
    let visibility = post.get("visibility").and_then(Value::as_str).unwrap_or_default();
    if !["PUBLIC", "CONNECTIONS", "LOGGED_IN", "CONTAINER"].contains(&visibility) {
        return unprocessable(
            "visibility",
            "INVALID_VALUE",
            "is not a valid MemberNetworkVisibility",
        );
    }
    if ctx.common.content_rejected(PLATFORM) {
        return unprocessable(
            "commentary",
            "CONTENT_POLICY_VIOLATION",
            "Content violates the LinkedIn Professional Community Policies",
        );
    }
    let urn = {
        let mut a = ctx.accounts();
        let post = a.record_post(&t.user_key, &text, |n| {
            format!("urn:li:share:{}", 7_200_000_000_000_000_000u64 + n)
        });
        post.id
    };
    tracing::info!(platform = PLATFORM, post = %urn, "post created");
    let mut resp = StatusCode::CREATED.into_response();
    if let Ok(v) = HeaderValue::from_str(&urn) {
        resp.headers_mut().insert(HeaderName::from_static("x-restli-id"), v.clone());
        resp.headers_mut().insert(HeaderName::from_static("x-linkedin-id"), v);
    }
    resp
}

/// `GET /rest/posts?q=author&author={urn}&count=N`: the member's posts, newest first.
async fn list_posts(State(ctx): State<Ctx>, headers: HeaderMap, RawQuery(q): RawQuery) -> Response {
    let t = match caller(&ctx, &headers) {
        Ok(t) => t,
        Err(r) => return r,
    };
    if let Err(r) = check_version(&headers) {
        return r;
    }
    let params = parse_form(q.unwrap_or_default().as_bytes());
    if params.get("q").map(String::as_str) != Some("author") {
        return api_error(
            StatusCode::BAD_REQUEST,
            0,
            "ILLEGAL_ARGUMENT",
            "Query parameter q must be author",
        );
    }
    let a = ctx.accounts();
    let Some(user) = a.user(&t.user_key) else { return access_denied("posts.FINDER-author") };
    let urn = format!("urn:li:person:{}", user.id);
    if params.get("author") != Some(&urn) {
        return access_denied("partnerApiPostsExternal.FINDER-author.20240101");
    }
    let count: usize = params.get("count").and_then(|c| c.parse().ok()).unwrap_or(10).min(100);
    let posts: Vec<_> = a.posts_of(&t.user_key).collect();
    let elements: Vec<Value> = posts
        .iter()
        .rev()
        .take(count)
        .map(|p| {
            json!({
                "id": p.id,
                "author": urn,
                "commentary": p.text,
                "createdAt": p.created_at.timestamp_millis(),
                "lifecycleState": "PUBLISHED",
                "visibility": "PUBLIC",
            })
        })
        .collect();
    axum::Json(json!({
        "elements": elements,
        "paging": { "start": 0, "count": count, "total": posts.len() },
    }))
    .into_response()
}
