//! TikTok Login Kit and Content Posting API: authorize on www.tiktok.com
//! (`/tiktok/www`), token, revoke, user info and video publishing on
//! open.tiktokapis.com (`/tiktok/open`), file uploads on
//! open-upload.tiktokapis.com (`/tiktok/upload`). Refresh tokens rotate.

// Handlers bail out with the platform's finished error response; boxing it
// would only add noise on a path that runs once per request.
#![allow(clippy::result_large_err)]

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::Router;
use chrono::Utc;
use serde_json::{json, Value};

use crate::accounts::{self, Accounts, Code, Death, Kind, Pkce, Refusal, Token, TokenState, DAY};
use crate::authorize::{self, required, split_scopes, AuthRequest, Authorizer, AuthzError};
use crate::faults::{self, FaultCfg};
use crate::state::{lock, AccountAction, Common, PlatformSim, PostRecord};
use crate::support::{
    bearer, json_no_store, parse_form, random_b64, request_base, valid_redirect_uri,
};

const PLATFORM: &str = "tiktok";
const ACCESS_LIFETIME: Duration = DAY;
const REFRESH_LIFETIME: Duration = Duration::from_secs(365 * DAY.as_secs());
const MAX_TITLE: usize = 2200;
const PRIVACY_LEVELS: &[&str] =
    &["PUBLIC_TO_EVERYONE", "MUTUAL_FOLLOW_FRIENDS", "FOLLOWER_OF_CREATOR", "SELF_ONLY"];
const KNOWN_SCOPES: &[&str] = &[
    "user.info.basic",
    "user.info.profile",
    "user.info.stats",
    "video.list",
    "video.publish",
    "video.upload",
];
/// Which scope each `user/info` field needs.
const USER_FIELDS: &[(&str, &str)] = &[
    ("open_id", "user.info.basic"),
    ("union_id", "user.info.basic"),
    ("avatar_url", "user.info.basic"),
    ("avatar_url_100", "user.info.basic"),
    ("avatar_large_url", "user.info.basic"),
    ("display_name", "user.info.basic"),
    ("bio_description", "user.info.profile"),
    ("profile_deep_link", "user.info.profile"),
    ("is_verified", "user.info.profile"),
    ("username", "user.info.profile"),
    ("follower_count", "user.info.stats"),
    ("following_count", "user.info.stats"),
    ("likes_count", "user.info.stats"),
    ("video_count", "user.info.stats"),
];

#[derive(Debug, Clone)]
struct Publish {
    user_key: String,
    title: String,
    pull: bool,
    uploaded: bool,
    fetches: u32,
    post_id: Option<String>,
    bytes: u64,
}

#[derive(Default)]
struct Store {
    accounts: Accounts,
    publishes: HashMap<String, Publish>,
    next_publish: u64,
}

#[derive(Default)]
pub(crate) struct TikTokSim {
    store: Mutex<Store>,
}

#[derive(Clone)]
struct Ctx {
    sim: Arc<TikTokSim>,
    common: Arc<Common>,
}

impl Ctx {
    fn store(&self) -> std::sync::MutexGuard<'_, Store> {
        lock(&self.sim.store)
    }
}

impl PlatformSim for TikTokSim {
    fn name(&self) -> &'static str {
        PLATFORM
    }

    fn router(self: Arc<Self>, common: Arc<Common>) -> Router {
        let ctx = Ctx { sim: self, common: Arc::clone(&common) };
        let oauth = Router::new()
            .route("/www/v2/auth/authorize/", get(authorize_page).post(authorize_decision))
            .route("/www/v2/auth/authorize", get(authorize_page).post(authorize_decision))
            .route("/open/v2/oauth/token/", post(token))
            .route("/open/v2/oauth/revoke/", post(revoke))
            .with_state(ctx.clone());
        let api = Router::new()
            .route("/open/v2/user/info/", get(user_info))
            .route("/open/v2/post/publish/creator_info/query/", post(creator_info))
            .route("/open/v2/post/publish/video/init/", post(video_init))
            .route("/open/v2/post/publish/status/fetch/", post(status_fetch))
            .route("/upload/video/", put(upload))
            .with_state(ctx);
        let fc = FaultCfg { platform: PLATFORM, common, outage, rate_limited };
        faults::mount(oauth, api, &fc)
    }

    fn account_action(&self, username: &str, action: &AccountAction) -> Option<usize> {
        let a = &mut lock(&self.store).accounts;
        match action {
            AccountAction::Expire => {
                a.expire_user(username, Instant::now(), |t| t.kind == Kind::Access)
            }
            AccountAction::RemoveScope(scope) => a.remove_scope(username, scope),
            AccountAction::Revoke
            | AccountAction::PasswordChange
            | AccountAction::SecurityCheckpoint
            | AccountAction::Deauthorize => a.kill_user(username, Death::Revoked, |_| true),
        }
    }

    fn posts(&self) -> Vec<PostRecord> {
        lock(&self.store).accounts.post_records(PLATFORM)
    }

    fn stats(&self) -> Value {
        lock(&self.store).accounts.stats_json()
    }
}

// ---- wire -----------------------------------------------------------------

fn log_id() -> String {
    let hex: String = random_b64(12).bytes().map(|b| format!("{:X}", b % 16)).collect();
    format!("{}{hex}", Utc::now().format("%Y%m%d%H%M%S"))
}

/// `{"data": data, "error": {"code","message","log_id"}}`.
fn api(status: StatusCode, data: Value, code: &str, message: &str) -> Response {
    (
        status,
        axum::Json(json!({ "data": data, "error": { "code": code, "message": message, "log_id": log_id() } })),
    )
        .into_response()
}

fn ok(data: Value) -> Response {
    api(StatusCode::OK, data, "ok", "")
}

fn invalid_params(message: &str) -> Response {
    api(StatusCode::BAD_REQUEST, json!({}), "invalid_params", message)
}

fn token_invalid() -> Response {
    api(
        StatusCode::UNAUTHORIZED,
        json!({}),
        "access_token_invalid",
        "The access token is invalid or not found in the request.",
    )
}

fn scope_not_authorized(scope: &str) -> Response {
    api(
        StatusCode::UNAUTHORIZED,
        json!({}),
        "scope_not_authorized",
        &format!(
            "The user did not authorize the scope required for completing this request: {scope}"
        ),
    )
}

fn oauth_error(status: StatusCode, error: &str, description: &str) -> Response {
    json_no_store(
        status,
        json!({ "error": error, "error_description": description, "log_id": log_id() }),
    )
}

fn outage(status: StatusCode) -> Response {
    api(status, json!({}), "internal_error", "Something went wrong. Please try again later.")
}

fn rate_limited(_: &Common, _until: Instant) -> Response {
    api(
        StatusCode::TOO_MANY_REQUESTS,
        json!({}),
        "rate_limit_exceeded",
        "API rate limit exceeded, please retry later.",
    )
}

// ---- authorize ------------------------------------------------------------

impl Authorizer for Ctx {
    fn common(&self) -> &Common {
        &self.common
    }
    fn title(&self) -> &'static str {
        "TikTok: Authorize"
    }
    fn carried(&self) -> &'static [&'static str] {
        &[
            "client_key",
            "redirect_uri",
            "response_type",
            "scope",
            "state",
            "code_challenge",
            "code_challenge_method",
        ]
    }
    fn deny_pairs(&self) -> Vec<(&'static str, &'static str)> {
        vec![
            ("error", "access_denied"),
            ("error_description", "The user denied the authorization request."),
        ]
    }
    fn success_extra(&self, request: &AuthRequest) -> Vec<(&'static str, String)> {
        vec![("scopes", request.scopes.join(","))]
    }

    fn validate(&self, params: &HashMap<String, String>) -> Result<AuthRequest, AuthzError> {
        let client_key = required(params, "client_key")
            .filter(|c| self.common.client(PLATFORM, c).is_some())
            .ok_or_else(|| {
                AuthzError::Page("Something went wrong. error_type: client_key".into())
            })?;
        let redirect_uri =
            required(params, "redirect_uri").filter(|r| valid_redirect_uri(r)).ok_or_else(
                || AuthzError::Page("Something went wrong. error_type: redirect_uri".into()),
            )?;
        if required(params, "response_type") != Some("code") {
            return Err(AuthzError::Page("Something went wrong. error_type: response_type".into()));
        }
        let scopes = split_scopes(required(params, "scope").unwrap_or(""));
        if scopes.is_empty() || scopes.iter().any(|s| !KNOWN_SCOPES.contains(&s.as_str())) {
            return Err(AuthzError::Page("Something went wrong. error_type: scope".into()));
        }
        let pkce = required(params, "code_challenge").map(|c| Pkce {
            challenge: c.to_owned(),
            method: params.get("code_challenge_method").cloned().unwrap_or_else(|| "S256".into()),
        });
        Ok(AuthRequest {
            client_id: client_key.to_owned(),
            redirect_uri: redirect_uri.to_owned(),
            scopes,
            state: params.get("state").cloned(),
            pkce,
            offline: true,
            prompt_consent: false,
        })
    }

    fn issue_code(&self, request: &AuthRequest, username: &str) -> String {
        let mut s = self.store();
        let user = s.accounts.sign_in(username, |_| {
            (uuid::Uuid::new_v4().to_string(), uuid::Uuid::new_v4().to_string())
        });
        s.accounts.issue_code(Code {
            pkce: request.pkce.clone(),
            offline: true,
            ..Code::for_request(request, user.key, &self.common.clock)
        })
    }
}

async fn authorize_page(State(ctx): State<Ctx>, RawQuery(q): RawQuery) -> Response {
    authorize::page(&ctx, &parse_form(q.unwrap_or_default().as_bytes()))
}

async fn authorize_decision(State(ctx): State<Ctx>, body: Bytes) -> Response {
    authorize::decision(&ctx, &parse_form(&body))
}

// ---- token ----------------------------------------------------------------

fn authenticate_client(ctx: &Ctx, form: &HashMap<String, String>) -> Result<String, Response> {
    let (Some(key), Some(secret)) = (required(form, "client_key"), required(form, "client_secret"))
    else {
        return Err(oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "client_key and client_secret are required.",
        ));
    };
    ctx.common.authenticate_client(PLATFORM, key, secret).map(|c| c.client_id.clone()).ok_or_else(
        || {
            oauth_error(
                StatusCode::UNAUTHORIZED,
                "invalid_client",
                "Client key or secret is incorrect.",
            )
        },
    )
}

/// `POST /v2/oauth/token/`: `authorization_code` and rotating `refresh_token`.
async fn token(State(ctx): State<Ctx>, body: Bytes) -> Response {
    let form = parse_form(&body);
    let client_key = match authenticate_client(&ctx, &form) {
        Ok(c) => c,
        Err(r) => return r,
    };
    let clock = &ctx.common.clock;
    let now = clock.now();
    let invalid_grant = |d: &str| oauth_error(StatusCode::BAD_REQUEST, "invalid_grant", d);
    let mut s = ctx.store();
    let a = &mut s.accounts;
    let base = match required(&form, "grant_type") {
        None => {
            return oauth_error(
                StatusCode::BAD_REQUEST,
                "invalid_request",
                "grant_type is required.",
            )
        }
        Some("authorization_code") => {
            let (Some(code), Some(redirect_uri)) =
                (required(&form, "code"), required(&form, "redirect_uri"))
            else {
                return oauth_error(
                    StatusCode::BAD_REQUEST,
                    "invalid_request",
                    "code and redirect_uri are required.",
                );
            };
            let code = match a.redeem_code(code, &client_key, Some(redirect_uri), now) {
                Ok(c) => c,
                Err(_) => return invalid_grant("Authorization code is expired."),
            };
            if let Some(pkce) = &code.pkce {
                if !required(&form, "code_verifier").is_some_and(|v| pkce.verifies(v)) {
                    return invalid_grant("Code verifier is invalid.");
                }
            }
            let grant = a.new_grant();
            accounts::grant_base(&code.user_key, &client_key, code.scopes, grant, now)
        }
        Some("refresh_token") => {
            let Some(rt) = required(&form, "refresh_token") else {
                return oauth_error(
                    StatusCode::BAD_REQUEST,
                    "invalid_request",
                    "refresh_token is required.",
                );
            };
            match a.check(rt, &[Kind::Refresh], now) {
                Ok(t) if t.client_id == client_key => {
                    // Rotation: the presented token is spent from now on.
                    if let Some(old) = a.token_mut(rt) {
                        old.state = TokenState::Spent;
                    }
                    a.stats.refreshes += 1;
                    t
                }
                Err(Refusal::Spent) => {
                    a.stats.refresh_token_reuse += 1;
                    tracing::warn!(platform = PLATFORM, "spent refresh token reused");
                    return invalid_grant("Refresh token is invalid or expired.");
                }
                other => {
                    tracing::info!(platform = PLATFORM, reason = ?other.err(), "refresh refused");
                    return invalid_grant("Refresh token is invalid or expired.");
                }
            }
        }
        Some(_) => {
            return oauth_error(
                StatusCode::BAD_REQUEST,
                "unsupported_grant_type",
                "Grant type is not supported.",
            )
        }
    };
    let (at, expires_in) = accounts::timed(clock, Kind::Access, &base, ACCESS_LIFETIME);
    let (rt, refresh_expires_in) = accounts::timed(clock, Kind::Refresh, &base, REFRESH_LIFETIME);
    let access = a.insert_token("act.", at);
    let refresh = a.insert_token("rft.", rt);
    a.stats.tokens_issued += 1;
    let open_id = a.user(&base.user_key).map(|u| u.id.clone()).unwrap_or_default();
    drop(s);
    ctx.common.record_secret(&access);
    ctx.common.record_secret(&refresh);
    tracing::info!(platform = PLATFORM, client_key, "tokens issued");
    json_no_store(
        StatusCode::OK,
        json!({
            "access_token": access,
            "expires_in": expires_in,
            "open_id": open_id,
            "refresh_expires_in": refresh_expires_in,
            "refresh_token": refresh,
            "scope": base.scopes.join(","),
            "token_type": "Bearer",
        }),
    )
}

/// `POST /v2/oauth/revoke/` with client credentials and the access `token`.
async fn revoke(State(ctx): State<Ctx>, body: Bytes) -> Response {
    let form = parse_form(&body);
    let client_key = match authenticate_client(&ctx, &form) {
        Ok(c) => c,
        Err(r) => return r,
    };
    let Some(token) = required(&form, "token") else {
        return oauth_error(StatusCode::BAD_REQUEST, "invalid_request", "token is required.");
    };
    let mut s = ctx.store();
    if let Some(grant) =
        s.accounts.token(token).filter(|t| t.client_id == client_key).map(|t| t.grant)
    {
        s.accounts.kill_grant(grant, Death::Revoked);
    }
    (StatusCode::OK, axum::Json(json!({}))).into_response()
}

// ---- API ------------------------------------------------------------------

fn caller(ctx: &Ctx, headers: &HeaderMap, scope: &str) -> Result<Token, Response> {
    let token = bearer(headers).ok_or_else(token_invalid)?;
    let t = ctx
        .store()
        .accounts
        .check(&token, &[Kind::Access], ctx.common.clock.now())
        .map_err(|_| token_invalid())?;
    if !t.has_scope(scope) {
        return Err(scope_not_authorized(scope));
    }
    Ok(t)
}

/// `GET /v2/user/info/?fields=open_id,display_name,…`.
async fn user_info(State(ctx): State<Ctx>, headers: HeaderMap, RawQuery(q): RawQuery) -> Response {
    let t = match caller(&ctx, &headers, "user.info.basic") {
        Ok(t) => t,
        Err(r) => return r,
    };
    let params = parse_form(q.unwrap_or_default().as_bytes());
    let Some(fields) = required(&params, "fields") else {
        return invalid_params("fields is required.");
    };
    let Some(u) = ctx.store().accounts.user(&t.user_key).cloned() else { return token_invalid() };
    let mut user = serde_json::Map::new();
    for f in fields.split(',').map(str::trim).filter(|f| !f.is_empty()) {
        let Some((_, scope)) = USER_FIELDS.iter().find(|(name, _)| *name == f) else {
            return invalid_params(&format!("Invalid field: {f}"));
        };
        if !t.has_scope(scope) {
            return scope_not_authorized(scope);
        }
        let v = match f {
            "open_id" => json!(u.id),
            "union_id" => json!(u.secondary_id),
            "display_name" => json!(u.name),
            "username" => json!(u.key),
            "is_verified" => json!(false),
            "bio_description" => json!(""),
            "profile_deep_link" => json!(format!("https://vm.tiktok.com/{}", u.key)),
            f if f.ends_with("_count") => json!(0),
            _ => json!("https://p16-sign.tiktokcdn-us.com/sim/avatar.jpeg"),
        };
        user.insert(f.to_owned(), v);
    }
    ok(json!({ "user": user }))
}

/// `POST /v2/post/publish/creator_info/query/`.
async fn creator_info(State(ctx): State<Ctx>, headers: HeaderMap) -> Response {
    let t = match caller(&ctx, &headers, "video.publish") {
        Ok(t) => t,
        Err(r) => return r,
    };
    let Some(u) = ctx.store().accounts.user(&t.user_key).cloned() else { return token_invalid() };
    ok(json!({
        "creator_avatar_url": "https://p16-sign.tiktokcdn-us.com/sim/avatar.jpeg",
        "creator_username": u.key,
        "creator_nickname": u.name,
        "privacy_level_options": PRIVACY_LEVELS,
        "comment_disabled": false,
        "duet_disabled": false,
        "stitch_disabled": false,
        "max_video_post_duration_sec": 600,
    }))
}

fn json_body(body: &[u8]) -> Result<serde_json::Map<String, Value>, Response> {
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(m)) => Ok(m),
        _ => Err(invalid_params("The request body is not valid JSON.")),
    }
}

/// `POST /v2/post/publish/video/init/` (Direct Post): `PULL_FROM_URL` with
/// `video_url`, or `FILE_UPLOAD` answered with an `upload_url`.
async fn video_init(State(ctx): State<Ctx>, headers: HeaderMap, body: Bytes) -> Response {
    let t = match caller(&ctx, &headers, "video.publish") {
        Ok(t) => t,
        Err(r) => return r,
    };
    let req = match json_body(&body) {
        Ok(m) => m,
        Err(r) => return r,
    };
    let post_info = req.get("post_info").cloned().unwrap_or_else(|| json!({}));
    let Some(privacy) = post_info.get("privacy_level").and_then(Value::as_str) else {
        return invalid_params("post_info.privacy_level is required.");
    };
    if !PRIVACY_LEVELS.contains(&privacy) {
        return api(
            StatusCode::BAD_REQUEST,
            json!({}),
            "privacy_level_option_mismatch",
            "privacy_level is not one of the creator's privacy_level_options.",
        );
    }
    let title = post_info.get("title").and_then(Value::as_str).unwrap_or_default().to_owned();
    if title.chars().count() > MAX_TITLE {
        return invalid_params("post_info.title is too long.");
    }
    let Some(source) = req.get("source_info").filter(|s| s.is_object()) else {
        return invalid_params("source_info is required.");
    };
    let pull = match source.get("source").and_then(Value::as_str) {
        Some("PULL_FROM_URL") => {
            let url = source.get("video_url").and_then(Value::as_str).unwrap_or_default();
            if !matches!(url::Url::parse(url), Ok(u) if matches!(u.scheme(), "http" | "https")) {
                return invalid_params("source_info.video_url is invalid.");
            }
            true
        }
        Some("FILE_UPLOAD") => {
            let size = source.get("video_size").and_then(Value::as_u64).unwrap_or(0);
            let chunk = source.get("chunk_size").and_then(Value::as_u64).unwrap_or(0);
            let chunks = source.get("total_chunk_count").and_then(Value::as_u64).unwrap_or(0);
            if size == 0 || chunk == 0 || chunks == 0 {
                return invalid_params("source_info.video_size, chunk_size and total_chunk_count are required for FILE_UPLOAD.");
            }
            false
        }
        _ => return invalid_params("source_info.source must be FILE_UPLOAD or PULL_FROM_URL."),
    };
    if ctx.common.content_rejected(PLATFORM) {
        return api(
            StatusCode::FORBIDDEN,
            json!({}),
            "spam_risk_too_many_posts",
            "The daily post cap from the current user has been reached.",
        );
    }
    let mut s = ctx.store();
    s.next_publish += 1;
    let kind = if pull { "v_pub_url" } else { "v_pub_file" };
    let publish_id = format!("{kind}~v2-1.{}", 7_300_000_000_000_000_000u64 + s.next_publish);
    let mut p = Publish {
        user_key: t.user_key.clone(),
        title: title.clone(),
        pull,
        uploaded: pull,
        fetches: 0,
        post_id: None,
        bytes: 0,
    };
    if pull {
        let post = s
            .accounts
            .record_post(&t.user_key, &title, |n| (7_400_000_000_000_000_000u64 + n).to_string());
        p.post_id = Some(post.id);
    }
    s.publishes.insert(publish_id.clone(), p);
    drop(s);
    tracing::info!(platform = PLATFORM, publish_id, "publish initialized");
    let mut data = json!({ "publish_id": publish_id });
    if !pull {
        let token: String = random_b64(24).chars().filter(char::is_ascii_alphanumeric).collect();
        data["upload_url"] = json!(format!(
            "{}/tiktok/upload/video/?upload_id={}&upload_token={token}",
            request_base(&headers),
            url::form_urlencoded::byte_serialize(publish_id.as_bytes()).collect::<String>()
        ));
    }
    ok(data)
}

/// `PUT <upload_url>` with the video bytes (one chunk is enough here).
async fn upload(State(ctx): State<Ctx>, RawQuery(q): RawQuery, body: Bytes) -> Response {
    let params = parse_form(q.unwrap_or_default().as_bytes());
    let Some(id) = required(&params, "upload_id") else {
        return invalid_params("upload_id is required.");
    };
    if body.is_empty() {
        return api(
            StatusCode::BAD_REQUEST,
            json!({}),
            "invalid_file_upload",
            "The uploaded file is empty.",
        );
    }
    let mut s = ctx.store();
    let Some(p) = s.publishes.get(id).cloned() else {
        return invalid_params("upload_id is invalid.");
    };
    if !p.uploaded {
        let post = s
            .accounts
            .record_post(&p.user_key, &p.title, |n| (7_400_000_000_000_000_000u64 + n).to_string());
        if let Some(e) = s.publishes.get_mut(id) {
            e.uploaded = true;
            e.post_id = Some(post.id);
            e.bytes = body.len() as u64;
        }
    }
    StatusCode::CREATED.into_response()
}

/// `POST /v2/post/publish/status/fetch/` with `{"publish_id"}`: processing
/// on the first poll after the media arrived, complete afterwards.
async fn status_fetch(State(ctx): State<Ctx>, headers: HeaderMap, body: Bytes) -> Response {
    let t = match caller(&ctx, &headers, "video.publish") {
        Ok(t) => t,
        Err(r) => return r,
    };
    let req = match json_body(&body) {
        Ok(m) => m,
        Err(r) => return r,
    };
    let Some(id) = req.get("publish_id").and_then(Value::as_str) else {
        return invalid_params("publish_id is required.");
    };
    let mut s = ctx.store();
    let Some(p) = s.publishes.get_mut(id).filter(|p| p.user_key == t.user_key) else {
        return invalid_params("publish_id is invalid.");
    };
    if !p.uploaded {
        return ok(json!({ "status": "PROCESSING_UPLOAD", "uploaded_bytes": 0 }));
    }
    p.fetches += 1;
    if p.fetches == 1 {
        let status = if p.pull { "PROCESSING_DOWNLOAD" } else { "PROCESSING_UPLOAD" };
        return ok(json!({ "status": status, "downloaded_bytes": 0, "uploaded_bytes": p.bytes }));
    }
    let post_id: u64 = p.post_id.as_deref().and_then(|i| i.parse().ok()).unwrap_or_default();
    ok(
        json!({ "status": "PUBLISH_COMPLETE", "publicaly_available_post_id": [post_id], "uploaded_bytes": p.bytes }),
    )
}
